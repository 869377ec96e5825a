"""Run many command lines of the torch-based commands in ONE interpreter (``python -m tests.helpers_batch``).

Importing torch, ONNX Runtime and OpenCV costs seconds per process, minutes on a loaded machine,
and the hostile corpus has a hundred cases that fail at start-up. Each case here goes through the very
entry point of its console script (:func:`edge.commands.scaffold.run_module`, the same exit-code
mapping), with file descriptors 1 and 2 redirected to its own files, and a SIGALRM deadline so a
hang is reported instead of blocking the batch.

stdin: JSON list of ``{"argv": [...], "timeout": s}`` (``argv[0]`` a console script name);
stdout: JSON list of ``{"code": int | null, "out": str, "err": str, "seconds": float}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from typing import Any

#: Console script → (function behind it, the extra it needs), as in ``pyproject.toml``.
TARGETS = {
    "slr-eval": ("model_src.evaluate:main", "train"),
    "slr-train": ("model_src.train:main", "train"),
    "slr-export": ("export.cli:main", "train"),
    "slr-edge": ("edge.commands.edge_cli:_main", "edge"),
    "slr-predict": ("edge.commands.predict:command", "edge"),
}


class Deadline(BaseException):
    """Raised by SIGALRM: not an Exception, so the command's own handlers cannot swallow it."""


def _alarm(signum: int, frame: object) -> None:
    raise Deadline


def run_case(argv: list[str], timeout: float) -> dict[str, Any]:
    from edge.commands.scaffold import run_module

    prog = os.path.basename(argv[0])
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        started = time.monotonic()
        code: int | None
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            target, extra = TARGETS[prog]
            code = run_module(prog, target, argv[1:], extra=extra)
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Deadline:
            code = None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        seconds = time.monotonic() - started
        texts = []
        for handle in (out, err):
            handle.seek(0)
            texts.append(handle.read().decode("utf-8", "replace"))
    for fd in saved:
        os.close(fd)
    return {"code": code, "out": texts[0], "err": texts[1], "seconds": seconds}


def main() -> None:
    import importlib

    # Imports first, outside every case's deadline: they are the cost this runner exists to share.
    for target, _ in TARGETS.values():
        importlib.import_module(target.partition(":")[0])
    signal.signal(signal.SIGALRM, _alarm)
    cases = json.load(sys.stdin)
    results = [run_case(case["argv"], case["timeout"]) for case in cases]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main()
