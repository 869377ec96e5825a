"""The bounded queue of event messages (``sign``, ``segment``) on their way to the broker.

A message stays here until the broker has acknowledged it (QoS 1/2), so a broker that restarts
mid-stream loses nothing: what was in flight is taken back from the MQTT client on reconnect and
sent again, in order, ahead of what arrived meanwhile. Beyond ``bound`` messages the *oldest* is
dropped and counted (the newest sign is the one a person is waiting for). Thread-safe: the ZeroMQ
loop adds, the MQTT client's thread acknowledges and takes back.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Outgoing:
    """One message to publish."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False


class Delivery(Protocol):
    """What the MQTT client returns for a publish (paho's ``MQTTMessageInfo``)."""

    mid: int

    def is_published(self) -> bool: ...


class Outbox:
    """Waiting messages plus those in flight (handed to the client, not yet acknowledged), at most ``bound``.

    ``max_inflight`` stays below ``bound``, so a new message never displaces itself: the waiting
    queue then always holds an older one to drop. In-flight messages are tracked by the client's
    delivery handle, not by a callback alone: an acknowledgement may arrive before the sender has
    recorded the handle, and the handle still says so afterwards.
    """

    def __init__(self, bound: int, max_inflight: int = 10) -> None:
        if bound < 2:
            raise ValueError("bound must be at least 2")
        self.bound = bound
        self.max_inflight = max(1, min(max_inflight, bound - 1))
        self._waiting: deque[Outgoing] = deque()
        self._inflight: list[tuple[Delivery, Outgoing]] = []
        self._lock = threading.Lock()
        #: Messages dropped (oldest first) to keep within ``bound``, since start.
        self.dropped = 0
        #: Messages the broker acknowledged, since start.
        self.acknowledged = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._inflight)

    def put(self, item: Outgoing) -> int:
        """Queue ``item``; returns how many old messages were dropped to make room (0 or 1)."""
        with self._lock:
            self._waiting.append(item)
            return self._trim(keep_newest=True)

    def _trim(self, *, keep_newest: bool) -> int:
        dropped = 0
        floor = 1 if keep_newest else 0
        while len(self._waiting) + len(self._inflight) > self.bound and len(self._waiting) > floor:
            self._waiting.popleft()
            dropped += 1
        self.dropped += dropped
        return dropped

    def take(self) -> Outgoing | None:
        """The next message to send if fewer than ``max_inflight`` are in flight, else None.

        The caller hands it to the client and then calls :meth:`sent` (or :meth:`unsent`).
        """
        with self._lock:
            self._collect(None)
            if not self._waiting or len(self._inflight) >= self.max_inflight:
                return None
            return self._waiting.popleft()

    def sent(self, delivery: Delivery, item: Outgoing) -> None:
        """``item`` was handed to the client: in flight until its delivery says published."""
        with self._lock:
            self._inflight.append((delivery, item))
            self._collect(None)

    def unsent(self, item: Outgoing) -> None:
        """``item`` could not be handed over: back to the front of the queue."""
        with self._lock:
            self._waiting.appendleft(item)
            self._trim(keep_newest=False)

    def ack(self, mid: int | None = None) -> int:
        """Forget the messages the broker acknowledged (``mid``: one the client just reported); how many."""
        with self._lock:
            return self._collect(mid)

    def _collect(self, mid: int | None) -> int:
        kept = [(d, item) for d, item in self._inflight if not (d.mid == mid or d.is_published())]
        done = len(self._inflight) - len(kept)
        self._inflight = kept
        self.acknowledged += done
        return done

    def requeue_inflight(self) -> int:
        """Move every unacknowledged in-flight message back to the front, oldest first (after a lost
        connection, whose client-side copies were discarded). Returns how many old messages were dropped
        to respect the bound."""
        with self._lock:
            self._collect(None)
            self._waiting.extendleft(item for _, item in reversed(self._inflight))
            self._inflight = []
            return self._trim(keep_newest=False)

    def counts(self) -> tuple[int, int]:
        """``(waiting, in flight)``."""
        with self._lock:
            return len(self._waiting), len(self._inflight)
