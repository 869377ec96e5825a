"""What the seven commands share: ``--version``, exit codes, Ctrl-C, closed pipes, OpenCV's noise.

Every command's ``main(argv)`` runs inside :func:`run`, so they all behave alike where the user
cannot tell them apart:

* exit codes: :data:`EXIT_OK` 0, :data:`EXIT_FAILURE` 1 (something failed, or a bug),
  :data:`EXIT_USAGE` 2 (bad command line, configuration, input file or model; also a missing
  optional dependency), :data:`EXIT_INTERRUPTED` 130 (Ctrl-C);
* Ctrl-C ends with 130 and no traceback (commands that hold temporary files or a socket also
  turn SIGTERM into the same clean stop, and take Ctrl-C even when started with SIGINT ignored,
  through :func:`edge.util.signals.interrupt_on_signals`); a reader that goes away (``cmd | head``) ends the
  command quietly with 0 instead of a ``BrokenPipeError``;
* an unexpected exception is one line on stderr (exit 1), its traceback logged at DEBUG;
* OpenCV's own ``[ WARN:0@0.1] ...`` lines are off (our one-line errors already say it);
* a module of an optional extra that is not installed is one line naming the extra
  (``pip install 'slovo-edge[train]'``), not a ``ModuleNotFoundError`` traceback.

``slr-train``, ``slr-eval`` and ``slr-export`` need torch, which an edge device does not have:
their console entry points are :func:`slr_train`, :func:`slr_eval` and :func:`slr_export`, which
import the command module only inside :func:`run`. ``slr-mqtt``, ``slr-speak`` and ``slr-predict``
come through here too (:func:`slr_mqtt`, ...), from :mod:`edge.commands.entry`, which takes SIGTERM
and Ctrl-C before even this module loads. This module itself imports nothing heavy.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

from edge import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Top-level packages of this project: a missing one of these is a bug, not a missing extra.
OWN_PACKAGES = frozenset({"edge", "model_src", "export"})

log = logging.getLogger(__name__)

Main = Callable[[list[str] | None], int]


def version_text() -> str:
    return f"slovo-edge {__version__}"


def add_version(parser: argparse.ArgumentParser) -> None:
    """The ``--version`` flag every command has."""
    parser.add_argument("--version", action="version", version=version_text())


def run(
    prog: str,
    main: Main,
    argv: Sequence[str] | None = None,
    *,
    extra: str = "edge",
    stop_signals: bool = False,
    interrupted: int = EXIT_INTERRUPTED,
) -> int:
    """Run ``main(argv)`` with the shared policies above; returns the exit code.

    ``extra`` names the ``pip install 'slovo-edge[EXTRA]'`` that provides the command's
    third-party modules. ``SystemExit`` (argparse's ``--help``, ``--version`` and usage errors)
    passes through after stdout is flushed.

    ``stop_signals``: SIGINT and SIGTERM raise ``KeyboardInterrupt`` from this first moment on
    (around everything, imports and start-up included), so a stop that arrives while the command
    is still loading is the same clean stop as a later one, not a death by signal (-15) or a
    traceback; an exception after such a signal (an extension module whose initialisation it
    interrupted says ``ImportError``) is that stop too. ``interrupted`` is the exit code of such a
    stop: 130, or 0 for a service (being stopped is how a service ends).
    """
    # Read by cv2 when it is first imported, so set before any command imports it.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    signals = _stop_signals_taken() if stop_signals else contextlib.nullcontext()
    try:
        with signals:
            try:
                code = main(None if argv is None else list(argv))
            finally:
                _flush_stdout()
    except BrokenPipeError:
        return EXIT_OK  # the reader has what it wanted
    except KeyboardInterrupt:
        return interrupted
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if not top or top in OWN_PACKAGES:
            return _unexpected(prog, exc)
        print(
            f"{prog}: error: this command needs the '{extra}' extra (module {top!r} is not installed): "
            f"pip install 'slovo-edge[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except Exception as exc:
        if stop_signals and _STOP_REQUESTED.is_set():
            # A stop that arrived inside a C extension's initialisation surfaces as that module's
            # ImportError ("initialization failed"), not as KeyboardInterrupt: still the stop.
            log.debug("failed after a stop signal", exc_info=exc)
            return interrupted
        return _unexpected(prog, exc)
    return code


#: Set by :func:`_request_stop`: SIGINT/SIGTERM arrived while :func:`run` held them.
_STOP_REQUESTED = threading.Event()


def _request_stop(signum: int, frame: object) -> None:
    _STOP_REQUESTED.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_signals_taken() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` and are remembered (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _unexpected(prog: str, exc: BaseException) -> int:
    log.debug("unexpected error", exc_info=exc)
    print(f"{prog}: unexpected error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
    return EXIT_FAILURE


def _flush_stdout() -> None:
    """Flush stdout now; if the reader is gone, point stdout at /dev/null and say so by raising.

    Without this, Python's own flush at exit would fail again and print "Exception ignored".
    """
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise
    except (OSError, ValueError):  # stdout closed or not a stream: nothing to flush
        pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout has no file descriptor (e.g. captured in tests)
        pass


def run_module(
    prog: str,
    target: str,
    argv: Sequence[str] | None = None,
    *,
    extra: str,
    stop_signals: bool = False,
    interrupted: int = EXIT_INTERRUPTED,
) -> int:
    """Import ``target`` (``"package.module:function"``) inside :func:`run` and call it with ``argv``.

    ``--version`` is answered before the import, so it works even where the extra is missing.
    With ``stop_signals`` the import itself runs with SIGINT/SIGTERM taken (see :func:`run`): a
    command's imports take 0.2-0.5 s on a loaded device, and a stop in that time must not be a
    death by signal or a ``KeyboardInterrupt`` traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    module_name, _, function = target.partition(":")

    def main(argv_: list[str] | None) -> int:
        if "--version" in args:
            print(version_text())
            return EXIT_OK
        command: Main = getattr(importlib.import_module(module_name), function)
        return command(argv_)

    return run(prog, main, args, extra=extra, stop_signals=stop_signals, interrupted=interrupted)


def slr_mqtt() -> int:
    """Console entry point of ``slr-mqtt``: a service, so SIGTERM/Ctrl-C end it with 0 from the start."""
    return run_module(
        "slr-mqtt", "edge.commands.mqtt:command", extra="mqtt", stop_signals=True, interrupted=EXIT_OK
    )


def slr_speak() -> int:
    """Console entry point of ``slr-speak``: a service, so SIGTERM/Ctrl-C end it with 0 from the start."""
    return run_module(
        "slr-speak", "edge.commands.speak:command", extra="edge", stop_signals=True, interrupted=EXIT_OK
    )


def slr_predict() -> int:
    """Console entry point of ``slr-predict``: SIGTERM/Ctrl-C end it with 130 from the start."""
    return run_module("slr-predict", "edge.commands.predict:command", extra="edge", stop_signals=True)


def slr_train() -> int:
    """Console entry point of ``slr-train`` (torch is imported only past this point)."""
    return run_module("slr-train", "model_src.train:main", extra="train")


def slr_eval() -> int:
    """Console entry point of ``slr-eval``."""
    return run_module("slr-eval", "model_src.evaluate:main", extra="train")


def slr_export() -> int:
    """Console entry point of ``slr-export``."""
    return run_module("slr-export", "export.cli:main", extra="train")
