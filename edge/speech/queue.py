"""A small bounded queue that drops the oldest utterance rather than build a backlog of stale speech.

Speaking a word takes about a second; a burst of signs (or a flood from a misbehaving publisher)
arrives far faster. Speech that comes late is worse than none (the signer has moved on), so the
queue holds at most ``size`` utterances: a new one pushes the oldest out, and one that waited
longer than ``max_age_s`` is dropped when its turn comes. Both are counted.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class SpeechQueue(Generic[Item]):
    """Thread-safe; ``put`` never blocks. Items are stored with their arrival time (monotonic)."""

    def __init__(self, size: int, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1 or not max_age_s > 0:
            raise ValueError("queue size must be >= 1 and max age > 0")
        self.size, self.max_age_s = size, max_age_s
        self._clock = clock
        self._items: deque[tuple[float, Item]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        #: Utterances pushed out by newer ones (the queue was full).
        self.dropped_full = 0
        #: Utterances that waited longer than ``max_age_s``.
        self.dropped_stale = 0

    def put(self, item: Item) -> None:
        with self._cond:
            if len(self._items) >= self.size:
                self._items.popleft()
                self.dropped_full += 1
            self._items.append((self._clock(), item))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Item | None:
        """The oldest fresh item, waiting up to ``timeout`` s; None on timeout or once closed."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                while self._items:
                    arrived, item = self._items.popleft()
                    if self._clock() - arrived <= self.max_age_s:
                        return item
                    self.dropped_stale += 1
                remaining = None if deadline is None else deadline - self._clock()
                if self._closed or (remaining is not None and remaining <= 0):
                    return None
                self._cond.wait(remaining)

    def close(self) -> None:
        """Wake every waiting ``get`` (they return None once the queue is empty)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
