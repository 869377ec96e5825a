"""SIGINT and SIGTERM as ``KeyboardInterrupt`` within a block: how every command stops cleanly.

Below the commands, so that ``export`` (``slr-export``) and the commands share it without
``export`` importing a command module.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_on_signals(*, terminate: bool = True) -> Iterator[None]:
    """Within the block, SIGINT (even if inherited as ignored) and, with ``terminate``, SIGTERM raise
    ``KeyboardInterrupt``; previous handlers come back afterwards.

    So ``with``/``finally`` blocks run on ``kill`` too (temporary directories removed, sockets
    closed), and a command started in the background of a script, where the shell ignores SIGINT,
    still stops on it. Only in the main thread (signals cannot be handled elsewhere).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    if terminate:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
