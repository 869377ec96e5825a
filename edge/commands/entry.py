"""Console entry points that take SIGTERM and Ctrl-C before anything else of the project loads.

A service stopped while it starts (systemd stopping a unit that just restarted, Ctrl-C right after
Enter) must end the way a later stop ends, not by the signal (-15) nor with a
``KeyboardInterrupt`` traceback. Python runs no code of ours before the console script imports
this module, so it imports nothing but :mod:`signal`: both handlers are installed before
:mod:`edge.commands.scaffold` (logging, argparse) and the command's own modules load, which takes
0.1-0.5 s on a loaded device. From there on :func:`edge.commands.scaffold.run` holds them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

EXIT_OK = 0
EXIT_INTERRUPTED = 130


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _guarded(start: Callable[[], Callable[[], int]], interrupted: int) -> int:
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        return start()()
    except KeyboardInterrupt:
        return interrupted


def _scaffold(name: str) -> Callable[[], int]:
    from edge.commands import scaffold

    command: Callable[[], int] = getattr(scaffold, name)
    return command


def slr_mqtt() -> int:
    """``slr-mqtt``: a service, so a stop at any moment ends it with 0."""
    return _guarded(lambda: _scaffold("slr_mqtt"), EXIT_OK)


def slr_speak() -> int:
    """``slr-speak``: a service, so a stop at any moment ends it with 0."""
    return _guarded(lambda: _scaffold("slr_speak"), EXIT_OK)


def slr_predict() -> int:
    """``slr-predict``: interrupted is 130, at any moment."""
    return _guarded(lambda: _scaffold("slr_predict"), EXIT_INTERRUPTED)
