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
