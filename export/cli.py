"""``slr-export``: turn a checkpoint into the verified ``.onnx`` file the edge daemon runs.

Exit codes: 0 exported, 1 verification failed (a bug: please report it), 2 bad input or output
(one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge.contract.model_contract import DEFAULT_FPS

EXIT_VERIFY_FAILED = 1
EXIT_USAGE = 2

EPILOG = """\
examples:
  slr-export runs/best.pt -o model.onnx                     # our training checkpoint (labels inside)
  slr-export slr_slovo_500.pt --labels labels_500.json -o model.onnx --int8
  slr-export --random-init edge -o demo.onnx                # untrained demo model, no weights needed

The file carries everything the daemon needs in its metadata (labels, window, layout, config,
checkpoint sha256, fps). Every export is checked: onnx.checker, then ONNX Runtime against
PyTorch on preprocessed windows (max |logit diff| <= 1e-4), and for --int8 the top-1
agreement with fp32 on 200+ windows (warning under 99%). A model whose weights or outputs are
not finite (NaN/inf) is refused. -o must be a new path or a regular file (never a symlink, FIFO
or device); the file appears only when everything passed.

exit codes: 0 exported, 1 verification failed, 2 bad checkpoint/labels/option/output path
            (nothing written), 130 interrupted (Ctrl-C or SIGTERM; temporary files removed)
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so docs and tests can inspect it)."""
    from model_src.config import PRESETS

    parser = argparse.ArgumentParser(
        prog="slr-export",
        description="Export an SLR_SLOVO checkpoint to a self-contained, verified ONNX model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        nargs="?",
        type=Path,
        help="a slovo-edge training checkpoint (.pt) or a published SLR_SLOVO state_dict",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the .onnx file")
    parser.add_argument(
        "--labels",
        type=Path,
        help="class names (JSON list/mapping, text lines or Slovo annotations.csv); "
        "required for published state_dicts, overrides a training checkpoint's labels",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="write a dynamically int8-quantised model (MatMul weights); reports top-1 agreement with fp32",
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("auto", "published", "native"),
        default="auto",
        help="checkpoint kind; 'auto' detects it (default)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=DEFAULT_FPS,
        help=f"frame rate the model expects (default {DEFAULT_FPS:g})",
    )
    parser.add_argument(
        "--random-init",
        metavar="PRESET",
        choices=sorted(PRESETS),
        help=f"export an UNTRAINED model of this preset ({', '.join(sorted(PRESETS))}) instead of a "
        "checkpoint, with a fixed seed: for demos on machines without weights",
    )
    parser.add_argument(
        "--num-classes",
        type=int,
        help="classes of the --random-init model (default: number of --labels, else the preset's)",
    )
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads for the latency figure")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``slr-export``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="slr-export: warning: %(message)s", level=logging.WARNING, stream=sys.stderr)
    if args.num_classes is not None and args.num_classes < 1:
        parser.error(f"--num-classes must be >= 1, got {args.num_classes}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")

    from edge.util.signals import interrupt_on_signals
    from export.exporter import ParityError, export_checkpoint, format_report
    from export.sources import ExportError

    try:
        with interrupt_on_signals():  # SIGTERM too: the temporary directory is removed on the way out
            report = export_checkpoint(
                args.checkpoint,
                args.output,
                labels=args.labels,
                int8=args.int8,
                opset=args.opset,
                fps=args.fps,
                fmt=args.fmt,
                random_init=args.random_init,
                num_classes=args.num_classes,
                latency_runs=0 if args.no_latency else 50,
                threads=args.threads,
            )
    except ParityError as exc:
        print(f"slr-export: verification failed: {exc}", file=sys.stderr)
        return EXIT_VERIFY_FAILED
    except ExportError as exc:
        print(f"slr-export: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(format_report(report, threads=args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
