"""ZeroMQ → Server-Sent Events: ``slr-web`` is one more subscriber of the daemon.

One asyncio task reads the daemon's ``prediction``, ``sign`` and ``status`` messages and fans
each out to every connected browser through a small per-client queue (a stalled browser loses
its own oldest events, never anyone else's, and never blocks the reader). ``preview`` is
subscribed to only while at least one browser shows the camera view, which is what makes the
daemon produce preview frames at all (see docs/PROTOCOL.md, "On-demand topics").

Every message is validated at the boundary (:func:`edge.contract.wire.decode_message`: framing,
size, JSON, version, schema); an invalid one is dropped, counted in
``slovo_messages_dropped_total{reason}`` and logged at most once per reason every 10 s. Nothing a
publisher sends can stop the reader: an unexpected error in handling one message is counted
(``slovo_web_errors_total{kind="bridge"}``) and the next message is read.

ZeroMQ reconnects by itself when the daemon restarts, and re-sends the subscriptions, so a
daemon that goes away and comes back needs nothing from here; browsers' ``EventSource``
reconnects by itself too, and gets the latest status, prediction and recent signs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio

from edge.contract.protocol import MAX_MESSAGE_BYTES, TOPIC_PREVIEW, TOPICS
from edge.contract.wire import Dropped, decode_message
from edge.util.logs import ThrottledLog, error_line
from edge.web.metrics import STATUS_STALE_S, WebMetrics

log = logging.getLogger(__name__)
#: Seconds between two log lines about one kind of dropped message (or reader error).
DROP_LOG_EVERY_S = 10.0
#: ZeroMQ closes the connection of a peer that sends a bigger frame, before it is buffered in
#: memory; frames between MAX_MESSAGE_BYTES and this are received, dropped and counted ("size").
TRANSPORT_LIMIT_BYTES = 4 * MAX_MESSAGE_BYTES

CLIENT_QUEUE = 64
PREVIEW_QUEUE = 2
RECENT_SIGNS = 50
KEEPALIVE_S = 15.0


def sse_frame(event: str, data: dict[str, Any]) -> bytes:
    """One Server-Sent Event; JSON has no raw newlines, so ``data`` is one line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


@dataclass(eq=False)  # identity hash: clients live in sets
class _Client:
    queue: asyncio.Queue[bytes]
    lost: int = 0

    def put(self, frame: bytes) -> None:
        """Queue ``frame``; when full, drop this client's oldest event (it is behind anyway)."""
        while True:
            try:
                self.queue.put_nowait(frame)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.lost += 1


@dataclass
class DaemonBridge:
    """Subscribes to the daemon and serves its messages to browsers."""

    endpoint: str
    metrics: WebMetrics
    curve_keys: tuple[bytes, bytes, bytes] | None = None  # server public, client public, client secret
    status: dict[str, Any] | None = None
    status_received_at: float | None = None  # monotonic
    prediction: dict[str, Any] | None = None
    signs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_SIGNS))
    #: Recent ``segment`` messages: the transcript's primary entries when the daemon publishes them.
    segments: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_SIGNS))
    _clients: set[_Client] = field(default_factory=set)
    _preview_clients: set[_Client] = field(default_factory=set)
    _socket: zmq.asyncio.Socket | None = None
    _task: asyncio.Task[None] | None = None
    _last_seq: dict[str, int] = field(default_factory=dict)
    _throttled: ThrottledLog = field(default_factory=lambda: ThrottledLog(log, DROP_LOG_EVERY_S))
    #: Called with (topic, payload) for every broadcast message, after it is recorded (the transcript).
    listeners: list[Callable[[str, dict[str, Any]], None]] = field(default_factory=list)
    #: Events a new ``/api/events`` client gets after the latest status and prediction.
    initial_events: list[Callable[[], list[tuple[str, dict[str, Any]]]]] = field(default_factory=list)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        context = zmq.asyncio.Context.instance()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.setsockopt(zmq.MAXMSGSIZE, TRANSPORT_LIMIT_BYTES)
        if self.curve_keys is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self.curve_keys
        for topic in TOPICS:
            sock.setsockopt(zmq.SUBSCRIBE, topic.encode("ascii"))
        sock.connect(self.endpoint)
        self._socket = sock
        self._task = asyncio.create_task(self._read(), name="zmq-reader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._socket is not None:
            self._socket.close(linger=0)
        for client in self._clients | self._preview_clients:
            client.put(b"")  # wake streams so they end

    # -- state --------------------------------------------------------------------------------

    def status_age(self) -> float | None:
        """Seconds since the last status message, or None if none came yet."""
        return None if self.status_received_at is None else time.monotonic() - self.status_received_at

    def healthy(self) -> tuple[bool, str]:
        """True while the daemon publishes (fresh status) and extracts frames from a working camera."""
        age = self.status_age()
        if age is None or self.status is None:
            return False, "no status received from the daemon yet"
        if age > STATUS_STALE_S:
            return False, f"no status from the daemon for {age:.0f} s"
        if self.status.get("state") == "stopping":
            return False, "the daemon is stopping"
        if self.status.get("camera") != "ok":
            return False, f"camera is {self.status.get('camera')}"
        fps = self.status.get("extraction_fps")
        if not (isinstance(fps, (int, float)) and fps > 0):
            return False, "the daemon extracts no frames"
        return True, "ok"

    # -- streams ------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[bytes]:
        """The ``/api/events`` stream: current state first, then every message as it comes."""
        client = _Client(asyncio.Queue(CLIENT_QUEUE))
        self._clients.add(client)
        self.metrics.sse_clients.set(len(self._clients))
        try:
            yield b"retry: 2000\n\n"
            if self.status is not None:  # with its age: a page must not take an old status for news
                yield sse_frame("status", {**self.status, "age_s": round(self.status_age() or 0.0, 3)})
            if self.prediction is not None:
                yield sse_frame("prediction", self.prediction)
            for initial in self.initial_events:
                for event, data in initial():
                    yield sse_frame(event, data)
            for segment in list(self.segments):  # first: a page that sees segments ignores signs
                yield sse_frame("segment", segment)
            for sign in list(self.signs):
                yield sse_frame("sign", sign)
            async for frame in self._drain(client):
                yield frame
        finally:
            self._clients.discard(client)
            self.metrics.sse_clients.set(len(self._clients))

    async def previews(self) -> AsyncIterator[bytes]:
        """The ``/api/preview`` stream; the daemon makes preview frames only while one is open."""
        client = _Client(asyncio.Queue(PREVIEW_QUEUE))
        self._preview_clients.add(client)
        if len(self._preview_clients) == 1:
            self._set_preview(True)
        try:
            yield b"retry: 2000\n\n"
            async for frame in self._drain(client):
                yield frame
        finally:
            self._preview_clients.discard(client)
            if not self._preview_clients:
                self._set_preview(False)

    def broadcast(self, event: str, data: dict[str, Any]) -> None:
        """Send a server-side event (upload progress) to every ``/api/events`` client."""
        frame = sse_frame(event, data)
        for client in list(self._clients):
            client.put(frame)

    async def _drain(self, client: _Client) -> AsyncIterator[bytes]:
        while True:
            try:
                frame = await asyncio.wait_for(client.queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if not frame:
                return
            yield frame

    def _set_preview(self, on: bool) -> None:
        if self._socket is not None and not self._socket.closed:
            self._socket.setsockopt(zmq.SUBSCRIBE if on else zmq.UNSUBSCRIBE, TOPIC_PREVIEW.encode("ascii"))
            log.info("preview %s", "requested" if on else "no longer watched")

    # -- reader -------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._socket is not None
        while True:
            try:
                frames = await self._socket.recv_multipart()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the reader die: the page would freeze
                self._reader_error(exc)
                await asyncio.sleep(0.5)
                continue
            self.receive(frames)

    def receive(self, frames: list[bytes]) -> None:
        """Validate one message and pass it on, or drop and count it; never raises."""
        result = decode_message(frames)
        if isinstance(result, Dropped):
            self.metrics.dropped.labels(result.reason).inc()
            self._throttled(
                logging.WARNING,
                result.reason,
                "dropped an invalid message (%s): %s",
                result.reason,
                result.detail,
            )
            return
        try:
            self._handle(result.topic, result.payload)
        except Exception as exc:  # a bug here must cost one message, not the dashboard
            self._reader_error(exc)

    def _reader_error(self, exc: Exception) -> None:
        self.metrics.errors.labels("bridge").inc()
        self._throttled(
            logging.ERROR, "bridge", "handling a message from the daemon failed: %s", error_line(exc)
        )

    def _handle(self, topic: str, payload: dict[str, Any]) -> None:
        self._count_gap(topic, payload)
        self.metrics.observe_message(topic, payload)
        if topic == TOPIC_PREVIEW:
            targets = self._preview_clients
        else:
            targets = self._clients
            if topic == "status":
                self.status, self.status_received_at = payload, time.monotonic()
            elif topic == "prediction":
                self.prediction = payload
            elif topic == "sign":
                self.signs.append(payload)
            elif topic == "segment":
                self.segments.append(payload)
        frame = sse_frame(topic, payload)
        for client in list(targets):
            client.put(frame)
        if topic != TOPIC_PREVIEW:
            for listener in self.listeners:
                try:
                    listener(topic, payload)
                except Exception as exc:  # one bad message must not stop the reader
                    self.metrics.errors.labels("listener").inc()
                    self._throttled(
                        logging.ERROR, "listener", "handling a %s message failed: %s", topic, error_line(exc)
                    )

    def _count_gap(self, topic: str, payload: dict[str, Any]) -> None:
        seq = payload.get("seq")
        if not isinstance(seq, int):
            return
        last = self._last_seq.get(topic)
        if last is not None and seq > last + 1:
            self.metrics.lost.labels(topic).inc(seq - last - 1)
        self._last_seq[topic] = seq
