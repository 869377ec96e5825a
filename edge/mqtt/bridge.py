"""What ``slr-mqtt`` does with each daemon message: validate, then forward, keep or drop.

Every ZeroMQ message is checked against the protocol's JSON Schemas (``edge/contract/schemas``)
before anything is published: a message that fails is dropped, counted and logged (throttled),
and the bridge goes on. Valid ``sign`` and ``segment`` messages go through the :class:`Outbox`
(kept while the broker is away), ``status`` replaces the retained status, ``prediction`` is
forwarded only with ``forward_prediction`` and never queued.

The daemon publishes ``status`` every ``status_interval_s`` (1 s); with none for
``daemon_timeout_s`` it counts as gone: ``available`` turns ``offline`` and the ``bridge`` topic
says ``"daemon": "offline"``, until the next status arrives.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

from edge import __version__
from edge.contract.protocol import TOPIC_PREDICTION, TOPIC_STATUS, encode, validate
from edge.mqtt.outbox import Outbox, Outgoing
from edge.mqtt.topics import OFFLINE, ONLINE, Topics, discovery_messages
from edge.util.logs import ThrottledLog, error_line

log = logging.getLogger(__name__)

#: Seconds between two ``bridge`` messages (counters), at most.
STATS_EVERY_S = 1.0


class Bridge:
    """Routes validated daemon messages to a link (anything with ``publish``, ``pump``, ``connected``)."""

    def __init__(
        self,
        topics: Topics,
        outbox: Outbox,
        *,
        qos: int,
        discovery: bool,
        daemon_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = topics
        self.outbox = outbox
        self.qos = qos
        self.discovery = discovery
        self.daemon_timeout_s = daemon_timeout_s
        self._clock = clock
        self.link: Any = None
        self.status: bytes | None = None
        self._status_at: float | None = None
        self.daemon_alive = False
        self.forwarded: Counter[str] = Counter()
        self._lock = threading.Lock()  # counters are read by the MQTT thread's announcements
        self.invalid = 0
        self._stats_sent: tuple[Any, ...] | None = None
        self._stats_at = -1e9
        self._throttled = ThrottledLog(log, every_s=30.0)

    # --- from the daemon ---------------------------------------------------------------------

    def handle(self, topic: str, payload: Mapping[str, Any]) -> bool:
        """One decoded daemon message; False if it broke its schema (dropped and counted)."""
        try:
            validate(topic, payload)
            body = encode(topic, payload)[1]
        except (jsonschema.ValidationError, ValueError) as exc:
            self.reject(f"{topic} message breaks the protocol schema: {error_line(exc)}")
            return False
        with self._lock:
            self.forwarded[topic] += 1
        if topic == TOPIC_STATUS:
            self.status = body
            self._status_at = self._clock()
            self._publish(Outgoing(self.topics.of(topic), body, self.qos, retain=True))
            self._set_daemon_alive(True)
        elif topic == TOPIC_PREDICTION:
            self._publish(Outgoing(self.topics.of(topic), body, 0))
        else:
            if self.outbox.put(Outgoing(self.topics.of(topic), body, self.qos)):
                self._throttled(
                    logging.WARNING,
                    "dropped",
                    "queue full (%d): dropped the oldest message",
                    self.outbox.bound,
                )
            if self.link is not None:
                self.link.pump()
        return True

    def reject(self, why: str) -> None:
        """A message that could not be used (undecodable or off-schema): count it, log it (throttled)."""
        self.invalid += 1
        self._throttled(logging.WARNING, "invalid", "dropped a daemon message: %s", why)

    # --- periodic ----------------------------------------------------------------------------

    def tick(self) -> None:
        """Daemon liveness, the queue, and the counters; called a few times a second."""
        if self.daemon_alive and (
            self._status_at is None or self._clock() - self._status_at > self.daemon_timeout_s
        ):
            log.warning("no status from the daemon for %g s: publishing offline", self.daemon_timeout_s)
            self._set_daemon_alive(False)
        if self.link is not None:
            self.link.pump()
        now = self._clock()
        due = now - self._stats_at >= STATS_EVERY_S and self._stats_key() != self._stats_sent
        if due and self._publish(self.stats_message()):
            self._stats_at = now

    def _set_daemon_alive(self, alive: bool) -> None:
        if alive == self.daemon_alive:
            return
        if alive:
            log.info("the daemon publishes status: online")
        self.daemon_alive = alive
        self._publish(self.availability())
        self._publish(self.stats_message())

    # --- what the broker gets ----------------------------------------------------------------

    def availability(self) -> Outgoing:
        return Outgoing(self.topics.available, (ONLINE if self.daemon_alive else OFFLINE).encode(), 1, True)

    def _stats_key(self) -> tuple[Any, ...]:
        with self._lock:
            forwarded = tuple(sorted(self.forwarded.items()))
        return (self.daemon_alive, forwarded, self.invalid, self.outbox.dropped)

    def stats_message(self) -> Outgoing:
        """The ``bridge`` topic: the bridge's own counters (retained)."""
        waiting, inflight = self.outbox.counts()
        with self._lock:
            forwarded = dict(self.forwarded)
        stats = {
            "daemon": ONLINE if self.daemon_alive else OFFLINE,
            "forwarded": forwarded,
            "invalid": self.invalid,
            "dropped": self.outbox.dropped,
            "queued": waiting + inflight,
            "queue_size": self.outbox.bound,
            "version": __version__,
            "ts": round(time.time(), 3),
        }
        self._stats_sent = self._stats_key()
        return Outgoing(self.topics.bridge, json.dumps(stats, separators=(",", ":")).encode(), 1, True)

    def announcements(self) -> list[Outgoing]:
        """What every (re)connection publishes first: discovery, the latest status, counters, availability."""
        out = []
        if self.discovery:
            out += [
                Outgoing(t, body.encode(), 1, True)
                for t, body in discovery_messages(self.topics, __version__)
            ]
        if self.status is not None:
            out.append(Outgoing(self.topics.of(TOPIC_STATUS), self.status, self.qos, True))
        out.append(self.stats_message())
        out.append(self.availability())  # last: Home Assistant sees the configs before the device is up
        return out

    def _publish(self, item: Outgoing) -> bool:
        return self.link is not None and bool(self.link.publish(item))
