"""``slr-edge``: run the recognition daemon, or check a model file before deploying it.

Expected failures (bad config, unusable model, missing video file, busy port) end with one line
on stderr and exit code 2; anything unexpected ends with one line, a hint to rerun with
``--log-level DEBUG`` for the traceback, and exit code 1. Tracebacks are for developers, not for
someone reading ``journalctl`` on a kiosk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from edge.commands.scaffold import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, add_version, run

if TYPE_CHECKING:
    from edge.recognition.inference import EdgeModel

RUN_EPILOG = """\
configuration precedence (later wins):
  defaults < TOML file (--config) < SLR_EDGE_* environment variables < flags
  TOML keys and variables use the field names: stride = 4 / SLR_EDGE_STRIDE=4,
  idle_after_s = 2.0 / SLR_EDGE_IDLE_AFTER_S=2 (see systemd/slovo-edge.toml.example)

examples:
  slr-edge run --model slovo.onnx                       # /dev/video0 -> tcp://127.0.0.1:5556
  slr-edge run --model slovo.onnx --source clip.mp4 --loop
  slr-edge run --config /etc/slovo-edge/config.toml --stride 4 --threshold 0.7
  SLR_EDGE_SOURCE=/dev/video2 slr-edge run --model slovo.onnx
  slr-edge run --model m.onnx --endpoint tcp://0.0.0.0:5556 --allow-remote
  slr-listen                                            # watch what the daemon publishes

exit codes: 0 stopped by SIGTERM/SIGINT or end of file, 2 bad config/model/file, 1 unexpected error
"""


def _add_run_parser(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the daemon: camera -> keypoints -> model -> ZeroMQ",
        description="Read a camera (or file/stream), recognise signs on a sliding window and publish "
        "prediction, sign and status messages over ZeroMQ.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from edge.daemon.config import add_flags

    run.add_argument("--config", metavar="FILE", help="TOML file with daemon settings")
    add_flags(run)
    run.set_defaults(handler=_cmd_run)


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (argparse reports anything else, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _add_check_parser(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check-model",
        help="validate an .onnx model, print its metadata and per-window latency per engine",
        description="Load MODEL exactly as the daemon would and print a summary; exit 2 if it is unusable. "
        "Then time one window (preprocessing + model) on every execution provider the installed "
        "onnxruntime offers, and on the int8 twin given with --int8, so you can pick "
        "execution_providers and the model file for this device.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("model", metavar="MODEL")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.add_argument(
        "--int8",
        metavar="INT8_MODEL",
        help="the int8 export of the same checkpoint (slr-export --int8), timed beside MODEL",
    )
    check.add_argument(
        "--runs",
        type=_at_least(0),
        default=20,
        metavar="N",
        help="timed windows per engine (default 20; 0 skips timing)",
    )
    check.add_argument(
        "--threads", type=_at_least(1), default=1, metavar="N", help="ORT intra-op threads (default 1)"
    )
    check.set_defaults(handler=_cmd_check_model)


CHECK_EPILOG = """\
examples:
  slr-edge check-model slovo.onnx --json
  slr-edge check-model slovo.onnx --int8 slovo-int8.onnx     # fp32 vs int8, every provider

int8 models come from 'slr-export --int8' (which checks their agreement with fp32); they are not
made here, because the device installs no onnx package and quantising needs the export's checks.

exit codes: 0 the daemon can run it, 2 unusable (missing, not a regular file, corrupt, wrong
metadata, or NaN/inf outputs), 1 unexpected error
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slr-edge",
        description="Russian Sign Language recognition daemon for small devices.",
        epilog="run 'slr-edge run --help' for the daemon's options and examples",
    )
    add_version(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run_parser(subparsers)
    _add_check_parser(subparsers)
    return parser


def setup_logging(level: str) -> None:
    """One line per event on stderr (journald adds its own timestamps, but terminals don't)."""
    from edge.util.journal import setup_journal_logging

    if not setup_journal_logging(level):
        logging.basicConfig(
            level=logging.getLevelName(level),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,
        )
    for noisy in ("matplotlib", "PIL"):  # imported by mediapipe; their DEBUG output is not ours
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cmd_run(args: argparse.Namespace) -> int:
    from edge.daemon.config import flag_values, load_config
    from edge.daemon.lifecycle import run_daemon

    config = load_config(args.config, flag_values(args))
    setup_logging(config.log_level)
    return run_daemon(config)


def _cmd_check_model(args: argparse.Namespace) -> int:
    from edge.recognition.inference import check_threads, load_model

    check_threads(args.threads)  # before the model: a bad --threads must not look like a bad model
    from edge.models.resolve import resolve_model
    from edge.recognition.inference import ModelError

    try:
        args.model = resolve_model(args.model)  # a fetched registry name (slovo-500) or a path
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    model = load_model(args.model)
    info = model.info
    summary = {
        "name": info.name,
        "path": info.path,
        "sha256": info.sha256,
        "source_sha256": info.source_sha256,
        "classes": len(info.labels),
        "window": info.window,
        "fps": info.fps,
        "layout": info.layout,
        "exporter_version": info.metadata.get("slr.exporter_version"),
        "labels_head": list(info.labels[:5]),
    }
    int8 = _load_int8_twin(args.int8, model) if args.int8 else None
    latency = _engine_latencies(args.model, args.int8, args.runs, args.threads) if args.runs else []
    if args.json:
        print(json.dumps({**summary, "latency": latency}, ensure_ascii=False, indent=2))
        return EXIT_OK
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    if int8 is not None:
        print(f"{'int8':<{width}}  {int8}")
    if latency:
        print(f"per-window latency (preprocessing + model, {args.runs} windows, ORT threads {args.threads}):")
        for row in latency:
            figures = (
                f"p50 {row['p50_ms']:8.1f} ms  p95 {row['p95_ms']:8.1f} ms"
                if row["error"] is None
                else f"unusable: {row['error']}"
            )
            print(f"  {row['precision']:<5} {row['provider']:<28} {figures}")
    print("OK: the daemon can run this model")
    return EXIT_OK


def _load_int8_twin(path: str, model: EdgeModel) -> str:
    """Load ``path`` like the daemon would and check that it is ``model``'s int8 export; its path."""
    from edge.recognition.inference import ModelError, load_model

    twin = load_model(path).info
    if (twin.source_sha256, twin.labels, twin.window) != (
        model.info.source_sha256,
        model.info.labels,
        model.info.window,
    ):
        raise ModelError(
            f"--int8 {path} is not an export of the same checkpoint as {model.info.path} "
            "(source_sha256, labels or window differ)"
        )
    return twin.path


def _engine_latencies(fp32: str, int8: str | None, runs: int, threads: int) -> list[dict[str, Any]]:
    """p50/p95 per-window latency for each (precision, local execution provider) pair.

    A provider that cannot run the model (missing CUDA libraries, a silent fall-back to the CPU)
    is reported as unusable with the reason, not fatal: the point is to show what works here.
    """
    import numpy as np

    from edge.recognition.classify import window_latencies_ms
    from edge.recognition.inference import REMOTE_PROVIDERS, ModelError, available_providers, load_model

    rows: list[dict[str, Any]] = []
    models = [("fp32", fp32)] + ([("int8", int8)] if int8 else [])
    for provider in [p for p in available_providers() if p not in REMOTE_PROVIDERS]:
        for precision, path in models:
            row: dict[str, Any] = {"precision": precision, "path": path, "provider": provider, "error": None}
            try:
                model = load_model(path, threads=threads, providers=(provider,))
                if model.info.providers[0] != provider:
                    raise ModelError(f"onnxruntime fell back to {model.info.providers[0]}")
                timings = window_latencies_ms(model, runs)
                row.update(p50_ms=round(float(np.percentile(timings, 50)), 3))
                row.update(p95_ms=round(float(np.percentile(timings, 95)), 3))
            except (ModelError, ValueError) as exc:  # ValueError: non-finite results while timing
                row["error"] = str(exc)
            rows.append(row)
    return rows


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's input, not our bug: one line, exit 2."""
    from edge.camera.frame import SourceError
    from edge.daemon.config import ConfigError
    from edge.recognition.inference import ModelError

    errors: list[type[BaseException]] = [ConfigError, ModelError, SourceError]
    try:
        from edge.keypoints.holistic import ExtractorError

        errors.append(ExtractorError)
    except ImportError:  # pragma: no cover - mediapipe missing is reported by the extractor itself
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``slr-edge``."""
    return run("slr-edge", _main, argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        print("slr-edge: error: give a command (run or check-model)", file=sys.stderr)
        return EXIT_USAGE
    expected = _expected_errors()
    try:
        return args.handler(args)
    except expected as exc:
        _report(f"slr-edge: error: {exc}")
        return EXIT_USAGE
    except BrokenPipeError:
        raise  # the reader went away: the scaffold ends quietly
    except Exception as exc:
        logging.getLogger("edge").debug("unexpected error", exc_info=True)
        _report(
            f"slr-edge: unexpected error: {type(exc).__name__}: {exc} "
            "(rerun with --log-level DEBUG for details)"
        )
        return EXIT_FAILURE


def _report(line: str) -> None:
    """One line on stderr; if stderr cannot be written (a full disk), the exit code still tells."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
