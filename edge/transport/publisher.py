"""ZeroMQ PUB/SUB endpoints for the protocol in :mod:`edge.contract.protocol`.

:class:`Publisher` is what the daemon owns: it binds a PUB socket, stamps every message with the
envelope (``v``, per-topic ``seq``, ``ts``, ``topic``) and sends without ever blocking. A slow or
dead subscriber costs the daemon nothing: ZeroMQ keeps a bounded queue (``SNDHWM`` messages) per
subscriber, and once that is full a PUB socket drops further messages *for that subscriber only*,
silently; the others keep receiving. The sender is not told, so the subscriber detects the loss
as a gap in ``seq``. (``XPUB_NODROP`` would report it as ``EAGAIN`` instead, but then one stuck
subscriber would starve every other one, so it is deliberately not used.)

:class:`Subscriber` is the small client used by ``slr-listen`` and the tests.

Optional CURVE encryption/authentication: the publisher loads a server secret key file and, when
given a directory of client public keys, accepts only those clients (ZAP via
``zmq.auth.thread.ThreadAuthenticator``). Key files are the ``zmq.auth.create_certificates`` format.
Every key file is checked before anything starts: one unparsable client key would otherwise make
ZAP refuse every client while the daemon reports itself running with CURVE, and a server secret
key that other users can read is no secret.

An ``ipc://`` path that a live process is serving is refused (binding would silently take the
socket file over and leave the other daemon running unreachable); the socket file of a dead one is
reused. ``tcp://[::1]:PORT`` binds with ZeroMQ's IPv6 option.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from edge.contract.protocol import Message, check_topic, encode, envelope
from edge.transport.keys import KeyFileError, authorized_location, load_key, others_can_read
from edge.transport.subscriptions import SubscriptionRouter

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
DEFAULT_SNDHWM = 100
DEFAULT_RCVHWM = 1000


def is_loopback(endpoint: str) -> bool:
    """True if ``endpoint`` can only be reached from this host.

    ``ipc://`` and ``inproc://`` count as local; ``tcp://`` only for 127.0.0.0/8, ::1 and
    ``localhost``. Wildcards (``*``, ``0.0.0.0``), interface names and other hosts are not, so the
    config layer must opt in explicitly before binding there.
    """
    parts = urlsplit(endpoint)
    if parts.scheme in ("ipc", "inproc"):
        return True
    if parts.scheme != "tcp":
        return False
    host = parts.netloc.rsplit(":", 1)[0] if ":" in parts.netloc else parts.netloc
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ipc_path(endpoint: str) -> str | None:
    """The socket file of an ``ipc://`` endpoint; None for other transports and abstract names."""
    if not endpoint.startswith("ipc://"):
        return None
    path = endpoint[len("ipc://") :]
    return None if not path or path.startswith("@") or path == "*" else path


def check_ipc_free(endpoint: str) -> None:
    """Raise ``zmq.ZMQError(EADDRINUSE)`` if a live process serves ``endpoint``'s socket file.

    ZeroMQ unlinks an existing ``ipc://`` path before binding, so without this check a second
    daemon would take the endpoint over and leave the first one running, unreachable. A socket
    file nobody listens on (a daemon killed with SIGKILL) is stale and may be reused; a path that
    is not a socket at all is refused rather than deleted.
    """
    path = _ipc_path(endpoint)
    if path is None:
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise zmq.ZMQError(exc.errno or errno.EACCES, f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISSOCK(mode):
        raise zmq.ZMQError(errno.EEXIST, f"{path} exists and is not a socket (refusing to replace it)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return  # stale: its daemon is gone
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return
        raise zmq.ZMQError(errno.EADDRINUSE, f"{path} is in use ({exc.strerror or exc})") from None
    finally:
        probe.close()
    raise zmq.ZMQError(errno.EADDRINUSE, f"{path} is in use by another running process")


def wants_ipv6(endpoint: str) -> bool:
    """``tcp://[::1]:P`` and other IPv6 hosts need ZeroMQ's IPV6 option (off by default)."""
    return endpoint.startswith("tcp://[")


class MessageSink(Protocol):
    """Where the daemon's threads send messages: a :class:`Publisher`, or a recorder in tests."""

    def send(self, message: Message) -> object: ...
    def close(self) -> None: ...


class Publisher:
    """XPUB socket (PUB behaviour plus on-demand topics) bound to ``endpoint``; sends without blocking.

    Thread-safe: an internal lock serialises ``seq`` and the socket (ZeroMQ sockets themselves
    are not thread-safe), so the inference thread and a status timer may share one publisher.

    Args:
        endpoint: where to bind; ``tcp://127.0.0.1:0`` or ``tcp://127.0.0.1:*`` picks a free port
            (read it back from :attr:`endpoint`). Non-loopback binds are the caller's decision.
        sndhwm: messages queued per subscriber before new ones are dropped.
        curve_secret_key: server ``.key_secret`` file; enables CURVE encryption.
        curve_authorized_dir: directory of client public ``.key`` files; only those may connect.
            Without it any client that knows the server public key may subscribe.
        clock: wall clock for ``ts``; injectable for tests.

    Raises:
        KeyFileError: a CURVE key file or directory is missing or bad, or the server secret key
            is readable by other users.
        zmq.ZMQError: the endpoint cannot be bound (e.g. port in use, or an ``ipc://`` path a
            running process serves).
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        sndhwm: int = DEFAULT_SNDHWM,
        curve_secret_key: Path | str | None = None,
        curve_authorized_dir: Path | str | None = None,
        context: zmq.Context | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if curve_authorized_dir is not None and curve_secret_key is None:
            raise KeyFileError("curve_authorized_dir needs curve_secret_key")
        self._clock = clock
        self._lock = threading.Lock()
        self._seq: Counter[str] = Counter()
        self._sent: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._router = SubscriptionRouter()
        self._auth: ThreadAuthenticator | None = None
        self._closed = False
        self._socket: zmq.Socket | None = None
        keys: tuple[bytes, bytes | None] | None = None
        location = ""
        if curve_secret_key is not None:  # check every file before starting anything
            if not zmq.has("curve"):
                raise KeyFileError("this libzmq was built without CURVE support")
            keys = load_key(curve_secret_key, secret=True, role="CURVE server secret")
            if others_can_read(curve_secret_key):
                raise KeyFileError(
                    f"CURVE server secret key file {curve_secret_key} is readable by other users; "
                    f"chmod 600 (or 640 for a group) it"
                )
            location = authorized_location(curve_authorized_dir)
        #: True when CURVE encrypts this endpoint (reported in ``status``).
        self.encrypted = keys is not None
        # A context of its own: ZAP (CURVE auth) is per context, and close() can terminate it.
        self._own_context = context is None
        self._context = context if context is not None else zmq.Context()
        try:
            if keys is not None:
                self._auth = ThreadAuthenticator(self._context, log=logging.getLogger(f"{__name__}.auth"))
                self._auth.start()
                self._auth.configure_curve(domain="*", location=location)
            # XPUB in manual mode: PUB behaviour for every client, plus on-demand topics (preview)
            # that are produced only while watched (edge/transport/subscriptions.py).
            self._socket = self._context.socket(zmq.XPUB)
            self._socket.setsockopt(zmq.XPUB_MANUAL, 1)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.SNDHWM, sndhwm)
            if keys is not None:
                self._socket.curve_publickey, self._socket.curve_secretkey = keys
                self._socket.curve_server = True
            if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
                endpoint = endpoint[:-2] + ":*"
            if wants_ipv6(endpoint):
                self._socket.setsockopt(zmq.IPV6, 1)
            check_ipc_free(endpoint)
            self._socket.bind(endpoint)
            self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            self.close()
            raise
        log.info("publishing on %s%s", self.endpoint, " (CURVE)" if keys else "")

    def publish(self, topic: str, payload: Mapping[str, Any] | Message) -> bool:
        """Stamp ``payload`` with the envelope and send it without blocking.

        ``payload`` is a body dict or a :mod:`edge.contract.protocol` message dataclass. ``seq`` advances
        even when the message is dropped, so subscribers see the gap; a message that cannot be
        encoded raises before it takes a ``seq``, so it never looks like a lost one.

        Returns:
            True if ZeroMQ accepted it, False if it was dropped here (publisher closed, context
            terminated, or ``EAGAIN``). Per-subscriber high-water-mark drops are silent in ZeroMQ
            and still return True; subscribers see them as ``seq`` gaps.

        Raises:
            ProtocolError: unknown topic or a body JSON cannot carry (NaN, non-serialisable).
        """
        check_topic(topic)
        body = payload.to_payload() if hasattr(payload, "to_payload") else payload
        with self._lock:
            if self._closed or self._socket is None:
                self._dropped[topic] += 1
                return False
            self._route_subscriptions()
            seq = self._seq[topic]
            frames = encode(topic, envelope(topic, body, seq=seq, ts=self._clock()))
            self._seq[topic] += 1  # only once encoded: a ProtocolError must not leave a gap
            try:
                self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                self._dropped[topic] += 1
                return False
            except zmq.ZMQError as exc:  # e.g. context terminated during shutdown
                log.debug("dropping %s message: %s", topic, exc)
                self._dropped[topic] += 1
                return False
            self._sent[topic] += 1
            return True

    def watchers(self, topic: str) -> int:
        """How many clients subscribe to the on-demand ``topic`` (e.g. ``preview``) right now."""
        with self._lock:
            if not self._closed:
                self._route_subscriptions()
            return self._router.watchers(topic)

    def _route_subscriptions(self) -> None:
        """Apply the (un)subscriptions clients sent since the last call (caller holds the lock)."""
        socket = self._socket
        if socket is None:
            return
        while True:
            try:
                message = socket.recv(zmq.NOBLOCK)
            except zmq.ZMQError:  # EAGAIN: nothing pending (or the context is going away)
                return
            for subscribe, topic in self._router.handle(message):
                socket.setsockopt(zmq.SUBSCRIBE if subscribe else zmq.UNSUBSCRIBE, topic)

    def send(self, message: Message) -> bool:
        """Publish a message dataclass on its own topic (``message.TOPIC``)."""
        return self.publish(message.TOPIC, message)

    @property
    def sent(self) -> dict[str, int]:
        """Messages handed to ZeroMQ, per topic."""
        with self._lock:
            return dict(self._sent)

    @property
    def dropped(self) -> dict[str, int]:
        """Messages this publisher could not hand to ZeroMQ (closed, shutting down), per topic."""
        with self._lock:
            return dict(self._dropped)

    def close(self) -> None:
        """Close the socket at once (``LINGER`` 0: queued messages are discarded) and stop ZAP."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._socket is not None:
                self._socket.close(linger=0)
            if self._auth is not None:
                self._auth.stop()
                self._auth = None
            if self._own_context:
                self._context.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
