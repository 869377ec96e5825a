"""Logging helpers for long-running processes."""

from __future__ import annotations

import logging
import threading
import time


class ThrottledLog:
    """Log a recurring problem at most once per ``every_s`` seconds, with a count of the suppressed ones.

    A camera unplugged for an hour or a model failing on every window must not flood the journal.
    """

    def __init__(self, logger: logging.Logger, every_s: float = 10.0) -> None:
        self._log = logger
        self._every = every_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, level: int, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._every:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        self._log.log(level, message, *args)


def error_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of ``str(exc)`` (at most ``limit`` characters), else the type's name.

    Library errors arrive with multi-line, or empty, messages; a one-line report must survive both
    (an empty message once turned a model error into an ``IndexError``).
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__
