"""The bounded queue of event messages (``sign``, ``segment``) on their way to the broker.

A message stays here until the broker has acknowledged it (QoS 1/2), so a broker that restarts
mid-stream loses nothing: what was in flight is taken back from the MQTT client on reconnect and
sent again, in order, ahead of what arrived meanwhile. Beyond ``bound`` messages or ``max_bytes``
of payload the *oldest* is dropped and counted (the newest sign is the one a person is waiting
for): a message may be up to 1 MiB, so a count alone would let 1000 of them hold a gigabyte while
the broker is away. Thread-safe: the ZeroMQ loop adds, the MQTT client's thread acknowledges and
takes back.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
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
    """Waiting messages plus those in flight (handed to the client, not yet acknowledged), at most
    ``bound`` messages and ``max_bytes`` of payload (one message over ``max_bytes`` is still kept alone).

    ``max_inflight`` stays below ``bound``, so a new message never displaces itself: the waiting
    queue then always holds an older one to drop. In-flight messages are kept by message id, so an
    acknowledgement costs O(1) whatever the window (a scan per message capped the bridge near
    1,000 messages/s with 100 in flight). An acknowledgement may arrive before the sender has
    recorded the handle (paho's thread is quick): paho marks the handle published before it calls
    back, so :meth:`sent` looks at the handle; and a full window is swept through the handles
    themselves, so a missed callback cannot stall it.
    """

    def __init__(self, bound: int, max_inflight: int = 100, max_bytes: int | None = None) -> None:
        if bound < 2:
            raise ValueError("bound must be at least 2")
        self.bound = bound
        self.max_bytes = max_bytes
        self.max_inflight = max(1, min(max_inflight, bound - 1))
        self._bytes = 0
        self._waiting: deque[Outgoing] = deque()
        self._inflight: dict[int, tuple[Delivery, Outgoing]] = {}  # by mid, in send order
        self._lock = threading.Lock()
        #: Messages dropped (oldest first) to keep within ``bound``, since start.
        self.dropped = 0
        #: Messages the broker acknowledged, since start (QoS 0: written to the connection).
        self.acknowledged = 0
        #: The same, per MQTT topic.
        self.acknowledged_by_topic: Counter[str] = Counter()

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._inflight)

    def put(self, item: Outgoing) -> int:
        """Queue ``item``; returns how many old messages were dropped to make room (0 or 1)."""
        with self._lock:
            self._waiting.append(item)
            self._bytes += len(item.payload)
            return self._trim(keep_newest=True)

    def _over(self) -> bool:
        count = len(self._waiting) + len(self._inflight)
        return count > self.bound or (self.max_bytes is not None and self._bytes > self.max_bytes)

    def _trim(self, *, keep_newest: bool) -> int:
        dropped = 0
        floor = 1 if keep_newest else 0
        while self._over() and len(self._waiting) > floor:
            self._bytes -= len(self._waiting.popleft().payload)
            dropped += 1
        self.dropped += dropped
        return dropped

    def take(self) -> Outgoing | None:
        """The next message to send if fewer than ``max_inflight`` are in flight, else None.

        The caller hands it to the client and then calls :meth:`sent` (or :meth:`unsent`).
        """
        with self._lock:
            if len(self._inflight) >= self.max_inflight:
                self._sweep()
            if not self._waiting or len(self._inflight) >= self.max_inflight:
                return None
            return self._waiting.popleft()

    def sent(self, delivery: Delivery, item: Outgoing) -> None:
        """``item`` was handed to the client: in flight until its delivery says published."""
        with self._lock:
            if delivery.is_published():  # acknowledged before it was recorded
                self._done(item)
            else:
                self._inflight[delivery.mid] = (delivery, item)

    def unsent(self, item: Outgoing) -> None:
        """``item`` could not be handed over: back to the front of the queue."""
        with self._lock:
            self._waiting.appendleft(item)
            self._trim(keep_newest=False)

    def ack(self, mid: int | None = None) -> int:
        """Forget the messages the broker acknowledged (``mid``: one the client just reported); how many."""
        with self._lock:
            if mid is None:
                return self._sweep()
            entry = self._inflight.pop(mid, None)
            if entry is None:  # a state message's, or one sent() will see published
                return 0
            self._done(entry[1])
            return 1

    def _done(self, item: Outgoing) -> None:
        self.acknowledged += 1
        self.acknowledged_by_topic[item.topic] += 1
        self._bytes -= len(item.payload)

    def _sweep(self) -> int:
        """Collect every in-flight message whose handle says published (O(window))."""
        done = [mid for mid, (delivery, _) in self._inflight.items() if delivery.is_published()]
        for mid in done:
            self._done(self._inflight.pop(mid)[1])
        return len(done)

    def requeue_inflight(self) -> int:
        """Move every unacknowledged in-flight message back to the front, oldest first (after a lost
        connection, whose client-side copies were discarded). Returns how many old messages were dropped
        to respect the bound."""
        with self._lock:
            self._sweep()
            self._waiting.extendleft(item for _, item in reversed(list(self._inflight.values())))
            self._inflight = {}
            return self._trim(keep_newest=False)

    def counts(self) -> tuple[int, int]:
        """``(waiting, in flight)``."""
        with self._lock:
            return len(self._waiting), len(self._inflight)

    @property
    def size_bytes(self) -> int:
        """Payload bytes held (waiting and in flight)."""
        with self._lock:
            return self._bytes

    def acknowledged_counts(self) -> dict[str, int]:
        """Acknowledged messages per MQTT topic (a copy)."""
        with self._lock:
            return dict(self.acknowledged_by_topic)
