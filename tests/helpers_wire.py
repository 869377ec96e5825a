"""A rogue publisher for the subscriber tests: a raw ZeroMQ PUB socket that sends any frames at all.

``edge.transport.publisher.Publisher`` only sends what the protocol allows; a hostile or broken peer
bound to the endpoint a subscriber connects to does not, so the tests use a bare socket.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from edge.contract.protocol import ModelInfo, SignEvent, Status, envelope


def sign_message(label: str, seq: int = 0) -> dict[str, Any]:
    body = SignEvent(
        label=label, index=1, prob=0.9, windows=2, window_start=0.0, window_end=1.0, latency_ms=5.0
    )
    return envelope("sign", body.to_payload(), seq=seq, ts=time.time())


def status_message(source: str = "/dev/video0", seq: int = 0, age: float | None = 0.1) -> dict[str, Any]:
    body = Status(
        camera="ok",
        source=source,
        encrypted=False,
        capture_fps=25.0,
        extraction_fps=25.0,
        dropped_frames=0,
        inference_p50_ms=5.0,
        buffer_fill=64,
        idle=False,
        model=ModelInfo("m", "ab" * 32),
        uptime_s=1.0,
        version="0.1.0",
        state="running",
        last_frame_age_s=age,
    )
    return envelope("status", body.to_payload(), seq=seq, ts=time.time())


def frames_of(topic: str, payload: dict[str, Any]) -> list[bytes]:
    return [topic.encode("ascii"), json.dumps(payload, ensure_ascii=False).encode("utf-8")]


class RoguePublisher:
    """A PUB socket bound to a free loopback port; thread-safe ``send`` (one lock for the socket)."""

    def __init__(self) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 100_000)
        self._socket.bind("tcp://127.0.0.1:*")
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._lock = threading.Lock()

    def send(self, frames: Sequence[bytes]) -> None:
        with self._lock:
            self._socket.send_multipart(list(frames))

    def until(
        self, frames: Sequence[bytes], done: Callable[[], bool], timeout: float, every: float = 0.05
    ) -> bool:
        """Send ``frames`` every ``every`` seconds until ``done()`` (True) or ``timeout`` (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(frames)
            if done():
                return True
            time.sleep(every)
        return done()

    def close(self) -> None:
        self._socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> RoguePublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Looper(threading.Thread):
    """Sends a list of messages in a loop (a background stream a one-shot subscriber joins late)."""

    def __init__(
        self, rogue: RoguePublisher, messages: Sequence[Sequence[bytes]], every: float = 0.02
    ) -> None:
        super().__init__(daemon=True)
        self.rogue, self.messages, self.every = rogue, messages, every
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for frames in self.messages:
                self.rogue.send(frames)
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def __enter__(self) -> Looper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
