"""``slr-edge``: run the recognition daemon, or check a model file before deploying it.

Expected failures (bad config, unusable model, missing video file, busy port) end with one line
on stderr and exit code 2; anything unexpected ends with one line, a hint to rerun with
``--log-level DEBUG`` for the traceback, and exit code 1. Tracebacks are for developers, not for
someone reading ``journalctl`` on a kiosk.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from edge.commands.scaffold import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, add_version, run

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
    from edge.runtime.config import add_flags

    run.add_argument("--config", metavar="FILE", help="TOML file with daemon settings")
    add_flags(run)
    run.set_defaults(handler=_cmd_run)


def _add_check_parser(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check-model",
        help="validate an .onnx model and print its metadata",
        description="Load MODEL exactly as the daemon would and print a summary; exit 2 if it is unusable.",
        epilog="example:\n  slr-edge check-model slovo.onnx --json\n\n"
        "exit codes: 0 the daemon can run it, 2 unusable (missing, not a regular file, corrupt, "
        "wrong metadata, or NaN/inf outputs), 1 unexpected error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("model", metavar="MODEL")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.set_defaults(handler=_cmd_check_model)


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
    logging.basicConfig(
        level=logging.getLevelName(level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("matplotlib", "PIL"):  # imported by mediapipe; their DEBUG output is not ours
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cmd_run(args: argparse.Namespace) -> int:
    from edge.runtime.config import flag_values, load_config
    from edge.runtime.daemon import run_daemon

    config = load_config(args.config, flag_values(args))
    setup_logging(config.log_level)
    return run_daemon(config)


def _cmd_check_model(args: argparse.Namespace) -> int:
    from edge.runtime.inference import load_model

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
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        width = max(map(len, summary))
        for key, value in summary.items():
            print(f"{key:<{width}}  {value}")
        print("OK: the daemon can run this model")
    return EXIT_OK


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's input, not our bug: one line, exit 2."""
    from edge.runtime.config import ConfigError
    from edge.runtime.inference import ModelError
    from edge.runtime.sources import SourceError

    errors: list[type[BaseException]] = [ConfigError, ModelError, SourceError]
    try:
        from edge.runtime.holistic import ExtractorError

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
        print(f"slr-edge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        raise  # the reader went away: the scaffold ends quietly
    except Exception as exc:
        logging.getLogger("edge").debug("unexpected error", exc_info=True)
        print(
            f"slr-edge: unexpected error: {type(exc).__name__}: {exc} "
            "(rerun with --log-level DEBUG for details)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
