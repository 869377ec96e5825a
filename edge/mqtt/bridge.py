"""What ``slr-mqtt`` does with each daemon message: validate, then forward, keep or drop.

Every ZeroMQ message is checked by the one received-message check every subscriber uses
(:func:`edge.contract.wire.check_payload`: the schemas in ``edge/contract/schemas``, compiled once,
integers that must be JSON integers) before anything is published: a message that fails is
dropped, counted and logged (throttled), and the bridge goes on. Valid ``sign`` and ``segment``
messages go through the :class:`Outbox` (kept while the broker is away), ``status`` replaces the
retained status, ``prediction`` is forwarded only with ``forward_prediction`` and never queued.

The daemon publishes ``status`` every ``status_interval_s`` (1 s); with none for
``daemon_timeout_s`` it counts as gone: ``available`` turns ``offline`` until the next status
arrives. ``available`` is the one statement of liveness, because it is the only topic the broker
rewrites when the bridge dies (the last will): the retained ``bridge`` counters carry facts that
stay true after a kill (when the last status arrived), never "the daemon is online".

Counters: ``forwarded`` counts what reached the broker (acknowledged at QoS 1/2, written at QoS 0),
not what was accepted, so a refused connection forwards nothing; ``lost`` counts the gaps in the
daemon's per-topic ``seq`` (messages that ZeroMQ dropped before the bridge saw them, when it could
not keep up), ``dropped`` what the outbox let go to stay within its bounds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from edge import __version__
from edge.contract.protocol import TOPIC_PREDICTION, TOPIC_STATUS, ProtocolError, encode
from edge.contract.wire import Dropped, check_payload
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
        self._published: Counter[str] = Counter()  # state messages handed to the connection
        self._lock = threading.Lock()  # counters are read by the MQTT thread's announcements
        self.invalid = 0
        #: Messages missing from the daemon's ``seq`` per topic (dropped before they reached us).
        self.lost = 0
        self._last_seq: dict[str, int] = {}
        self._status_ts: float | None = None
        self._stats_sent: tuple[Any, ...] | None = None
        self._stats_at = -1e9
        self._throttled = ThrottledLog(log, every_s=30.0)

    # --- from the daemon ---------------------------------------------------------------------

    def handle(self, topic: str, payload: Mapping[str, Any]) -> bool:
        """One decoded daemon message; False if it broke its schema (dropped and counted)."""
        checked = check_payload(topic, payload)
        if isinstance(checked, Dropped):
            self.reject(checked.detail)
            return False
        try:
            body = encode(topic, payload)[1]
        except ProtocolError as exc:  # decoded from JSON, so only a bug could get here
            self.reject(f"{topic} message cannot be encoded again: {error_line(exc)}")
            return False
        self._count_gap(topic, payload["seq"])
        if topic == TOPIC_STATUS:
            self.status = body
            self._status_at = self._clock()
            self._status_ts = payload["ts"]
            self._publish(Outgoing(self.topics.of(topic), body, self.qos, retain=True), topic)
            self._set_daemon_alive(True)
        elif topic == TOPIC_PREDICTION:
            self._publish(Outgoing(self.topics.of(topic), body, 0), topic)
        else:
            if self.outbox.put(Outgoing(self.topics.of(topic), body, self.qos)):
                self._throttled(
                    logging.WARNING,
                    "dropped",
                    "queue full (%d): dropped the oldest message",
                    self.outbox.bound,
                )
            if self.link is not None:
                self.link.pump(idle_only=True)
        return True

    def _count_gap(self, topic: str, seq: int) -> None:
        last = self._last_seq.get(topic)
        self._last_seq[topic] = seq
        if last is not None and seq > last + 1:
            with self._lock:
                self.lost += seq - last - 1
        # seq <= last: the daemon restarted (its counters start again) or a stray duplicate

    @property
    def forwarded(self) -> dict[str, int]:
        """Messages per protocol topic that reached the broker (events acknowledged, state sent)."""
        with self._lock:
            counts = Counter(self._published)
        for mqtt_topic, n in self.outbox.acknowledged_counts().items():
            counts[mqtt_topic.rsplit("/", 1)[-1]] += n
        return dict(sorted(counts.items()))

    def summary(self) -> str:
        """The exit line's counters, in words."""
        forwarded = self.forwarded
        shown = ", ".join(f"{n} {topic}" for topic, n in forwarded.items()) or "nothing"
        return (
            f"forwarded {shown}; {self.invalid} invalid, {self.lost} lost before the bridge, "
            f"{self.outbox.dropped} dropped from the queue, {len(self.outbox)} not delivered"
        )

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
        return (
            tuple(self.forwarded.items()),
            self.invalid,
            self.lost,
            self.outbox.dropped,
            self.outbox.counts(),
            self._status_ts,
        )

    def stats_message(self) -> Outgoing:
        """The ``bridge`` topic: the bridge's own counters (retained; nothing in it claims liveness)."""
        waiting, inflight = self.outbox.counts()
        stats = {
            "forwarded": self.forwarded,
            "invalid": self.invalid,
            "lost": self.lost,
            "dropped": self.outbox.dropped,
            "queued": waiting + inflight,
            "queue_size": self.outbox.bound,
            "queue_bytes": self.outbox.max_bytes,
            "last_status_ts": self._status_ts,
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
                for t, body in discovery_messages(self.topics, __version__, self.qos)
            ]
        if self.status is not None:
            out.append(Outgoing(self.topics.of(TOPIC_STATUS), self.status, self.qos, True))
        out.append(self.stats_message())
        out.append(self.availability())  # last: Home Assistant sees the configs before the device is up
        return out

    def farewell(self) -> list[Outgoing]:
        """What a clean stop publishes before ``offline``: the final counters."""
        return [self.stats_message()]

    def _publish(self, item: Outgoing, counted: str | None = None) -> bool:
        sent = self.link is not None and bool(self.link.publish(item))
        if sent and counted is not None:
            with self._lock:
                self._published[counted] += 1
        return sent
