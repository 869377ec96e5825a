"""The client side of :mod:`edge.transport.publisher`: a SUB socket connected to the daemon."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from edge.contract.protocol import TOPICS, check_topic, decode
from edge.transport.keys import client_keys
from edge.transport.publisher import DEFAULT_ENDPOINT, DEFAULT_RCVHWM, wants_ipv6


class Subscriber:
    """SUB socket connected to a :class:`Publisher`; used by ``slr-listen`` and tests.

    Not thread-safe: use it from one thread.

    Args:
        endpoint: the publisher's endpoint.
        topics: topics to receive; empty means all of :data:`edge.contract.protocol.TOPICS`.
        rcvhwm: messages queued locally before ZeroMQ drops new ones.
        curve_server_key: the publisher's public ``.key`` file; enables CURVE.
        curve_client_key: this client's ``.key_secret`` file (required with ``curve_server_key``).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        topics: Iterable[str] = (),
        *,
        rcvhwm: int = DEFAULT_RCVHWM,
        curve_server_key: Path | str | None = None,
        curve_client_key: Path | str | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.topics: tuple[str, ...] = tuple(check_topic(t) for t in topics) or TOPICS
        keys = client_keys(curve_server_key, curve_client_key)
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        if keys is not None:
            self._socket.curve_serverkey, self._socket.curve_publickey, self._socket.curve_secretkey = keys
        for topic in self.topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode("ascii"))
        if wants_ipv6(endpoint):
            self._socket.setsockopt(zmq.IPV6, 1)
        self._socket.connect(endpoint)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)

    def recv(self, timeout_s: float | None = None) -> tuple[str, dict[str, Any]] | None:
        """Next ``(topic, payload)`` on a subscribed topic, or None after ``timeout_s`` seconds.

        ``timeout_s=None`` waits forever. Malformed messages raise
        :class:`edge.contract.protocol.ProtocolError` so callers can report them and keep going.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._poller.poll(remaining_ms):
                return None
            frames = self._socket.recv_multipart(flags=zmq.NOBLOCK)
            # ZeroMQ filters by prefix, so a future "sign_x" topic would pass a "sign" subscription.
            if frames and bytes(frames[0]).decode("ascii", "replace") not in self.topics:
                continue
            return decode(frames)

    def close(self) -> None:
        """Close the socket without lingering."""
        self._socket.close(linger=0)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
