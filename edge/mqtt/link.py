"""The connection to the broker: paho-mqtt's client, a supervisor thread, backoff, the last will.

paho's network thread (``loop_start``) does every socket read and write; this module adds what the
bridge needs around it:

* a supervisor thread that connects (TCP, TLS and CONNECT happen synchronously there, so a failure
  comes with its reason for the log), retries with exponential backoff (1 s doubling to 30 s) while
  the broker is down, and starts paho's loop once connected;
* the last will: ``available`` = ``offline``, retained, so a killed bridge or a lost connection
  reads offline; a clean stop publishes ``offline`` itself (a DISCONNECT cancels the will);
* on every (re)connection: the announcements (discovery, the latest status, availability) and the
  messages that were in flight, taken back from paho and sent again from the :class:`Outbox`;
* fatal refusals: wrong user name or password, not authorised, or a broker certificate the CA does
  not trust are configuration errors; the link stops at once (no retry storm) and says why.

The password never reaches a log line: paho logs only whether one is set.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge.mqtt.config import Broker
from edge.mqtt.outbox import Outbox, Outgoing
from edge.mqtt.topics import OFFLINE
from edge.util.logs import error_line

log = logging.getLogger(__name__)

MIN_DELAY_S = 1.0
MAX_DELAY_S = 30.0
#: CONNACK codes that retrying cannot fix: MQTT 3.1.1's 4/5 and MQTT 5's 134/135.
AUTH_REFUSALS = frozenset({4, 5, 134, 135})
CLOSE_WAIT_S = 2.0

Announce = Callable[[], list[Outgoing]]


def make_client(broker: Broker, client_id: str) -> mqtt.Client:
    """A paho client for ``broker``: MQTT 3.1.1, clean session, no automatic reconnect (ours)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
        reconnect_on_failure=False,
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls is not None:
        client.tls_set_context(broker.tls)
    client.max_inflight_messages_set(0)  # unlimited: the Outbox bounds what is in flight
    client.enable_logger(logging.getLogger("edge.mqtt.paho"))
    return client


def refusal_is_fatal(reason: ReasonCode | int) -> bool:
    value = reason.value if isinstance(reason, ReasonCode) else int(reason)
    return value in AUTH_REFUSALS


def connect_error(exc: BaseException, broker: Broker) -> tuple[str, bool]:
    """``(one line, fatal)`` for a failed connection attempt."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or error_line(exc)
        return (
            f"the broker {broker.address} presented a certificate that is not trusted ({reason}); "
            f"check ca_file and the host name in the broker URL",
            True,
        )
    if isinstance(exc, ssl.CertificateError):  # host name mismatch from paho's own check
        return (
            f"the broker {broker.address}'s certificate does not match its host name: {error_line(exc)}",
            True,
        )
    reason = getattr(exc, "strerror", None) or error_line(exc)
    return f"broker {broker.address} unreachable ({reason})", False


class Link:
    """One broker connection for the life of the bridge; thread-safe ``publish``/``pump``/``close``."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        *,
        will_topic: str,
        keepalive_s: int,
        outbox: Outbox,
        announce: Announce,
        farewell: Announce | None = None,
    ) -> None:
        self.broker = broker
        self.outbox = outbox
        self._announce = announce
        self._farewell = farewell
        self._keepalive = keepalive_s
        self._will_topic = will_topic
        self._client = make_client(broker, client_id)
        self._paho_log = logging.getLogger("edge.mqtt.paho")
        self._quiet_close = _ClosingFilter(self)
        self._client.will_set(will_topic, OFFLINE, qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._stop = threading.Event()
        self._session_over = threading.Event()
        self._connected = threading.Event()
        self.fatal: str | None = None
        self.failed = threading.Event()
        #: Successful connections since start (1 after the first, 2 after a reconnection, ...).
        self.connections = 0
        self._was_up = False  # whether the last session got past CONNACK (then backoff restarts)
        self._pump_lock = threading.Lock()
        self._pump_wanted = False
        self._thread = threading.Thread(target=self._supervise, name="mqtt-link", daemon=True)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # --- the supervisor thread ---------------------------------------------------------------

    def _supervise(self) -> None:
        delay = MIN_DELAY_S
        while not self._stop.is_set():
            log.info("connecting to the broker %s", self.broker.address)
            retry = self._connect()
            if self.failed.is_set():
                return
            if retry is not None:
                log.warning("%s; retrying in %g s", retry, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            self._session_over.clear()
            self._client.loop_start()
            while not self._session_over.wait(0.5):
                if self._stop.is_set():
                    return  # close() ends the session
            self._client.loop_stop()
            if self.fatal is not None or self._stop.is_set():
                return
            if self._was_up:
                delay = MIN_DELAY_S
            log.info("reconnecting in %g s", delay)
            self._stop.wait(delay)
            delay = min(delay * 2, MAX_DELAY_S)

    def _connect(self) -> str | None:
        """One connection attempt: None once connected, else why (to retry); a fatal one fails the link."""
        try:
            self._client.connect(self.broker.host, self.broker.port, keepalive=self._keepalive)
        except (OSError, ValueError) as exc:
            line, fatal = connect_error(exc, self.broker)
            if fatal:
                self._fail(line)
            return line
        except Exception as exc:  # anything else must end the bridge with a line, not kill this thread
            log.debug("connect failed", exc_info=exc)
            self._fail(f"cannot connect to the broker {self.broker.address}: {error_line(exc)}")
            return error_line(exc)
        return None

    def _fail(self, line: str) -> None:
        self.fatal = line
        self._stop.set()
        self.failed.set()

    # --- paho callbacks (paho's network thread) ----------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._was_up = False
            if refusal_is_fatal(reason):
                user = f" as {self.broker.username!r}" if self.broker.username else " without credentials"
                self._fail(f"the broker {self.broker.address} refused the connection{user}: {reason}")
            else:
                log.warning("the broker %s refused the connection: %s; retrying", self.broker.address, reason)
            return
        self._was_up = True
        self.connections += 1
        # paho would resend what was in flight on its own; the outbox resends it instead, so the
        # bound and the order hold across reconnections.
        client.drop_out_messages()
        dropped = self.outbox.requeue_inflight()
        if dropped:
            log.warning("dropped %d queued messages (queue_size %d)", dropped, self.outbox.bound)
        log.info(
            "connected to the broker %s%s", self.broker.address, "" if self.connections == 1 else " again"
        )
        for item in self._announce():
            self._send(item)
        self._connected.set()
        self.pump()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stop.is_set():
            waiting, inflight = self.outbox.counts()
            log.warning(
                "lost the broker %s (%s); %d messages kept for it",
                self.broker.address,
                reason,
                waiting + inflight,
            )
        self._session_over.set()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        if self.outbox.ack(mid):
            self.pump()

    # --- sending -----------------------------------------------------------------------------

    def _send(self, item: Outgoing) -> mqtt.MQTTMessageInfo:
        return self._client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)

    def publish(self, item: Outgoing) -> bool:
        """Send a state message (retained status, availability) now if connected; else False.

        State is not queued: the next connection announces the latest one instead.
        """
        if not self._connected.is_set():
            return False
        return self._send(item).rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def pump(self, *, idle_only: bool = False) -> None:
        """Hand queued messages to the client while connected and the in-flight window allows.

        Callable from any thread; a caller that finds another one pumping leaves it a note to go on
        (never blocking: paho calls ``on_publish`` with its own locks held).

        ``idle_only``: only if nothing is in flight. While messages are in flight, each
        acknowledgement pumps the next one from paho's network thread; a publish from the ZeroMQ
        thread as well would wake that thread once per message and hand the interpreter lock back
        and forth (measured: a third of the bridge's time in a flood). The periodic tick pumps
        anyway, so nothing waits on a lost acknowledgement.
        """
        if idle_only and self.outbox.counts()[1]:
            return
        while True:
            self._pump_wanted = True
            if not self._pump_lock.acquire(blocking=False):
                return
            try:
                while self._pump_wanted:
                    self._pump_wanted = False
                    self._drain()
            finally:
                self._pump_lock.release()
            if not self._pump_wanted:
                return

    def _drain(self) -> None:
        while self._connected.is_set():
            item = self.outbox.take()
            if item is None:
                return
            info = self._send(item)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
                info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and item.qos > 0
            ):
                self.outbox.sent(info, item)  # paho holds a QoS>0 copy; on reconnect it is taken back
            else:
                self.outbox.unsent(item)
                return

    def close(self, timeout: float = CLOSE_WAIT_S) -> None:
        """Publish the farewell (final counters) and ``offline`` (retained), disconnect cleanly and
        stop both threads.

        paho's network thread may run one more loop after the DISCONNECT closed the socket and log
        "Client is not connected" at ERROR: on a clean stop that line is not an error, so it is
        filtered out (only while closing).
        """
        self._stop.set()
        self._paho_log.addFilter(self._quiet_close)
        try:
            if self._connected.is_set():
                last = [*(self._farewell() if self._farewell else [])]
                last.append(Outgoing(self._will_topic, OFFLINE.encode(), qos=1, retain=True))
                infos = [self._send(item) for item in last]
                for info in infos:
                    with contextlib.suppress(RuntimeError, ValueError):  # not sent: the will says offline
                        info.wait_for_publish(timeout)
                self._client.disconnect()
            self._session_over.set()
            self._client.loop_stop()
            self._thread.join(timeout + 6.0)  # a connect() in progress gives up after paho's 5 s
        finally:
            self._paho_log.removeFilter(self._quiet_close)


class _ClosingFilter(logging.Filter):
    """Drops paho's "Client is not connected" record while the link is closing on purpose."""

    def __init__(self, link: Link) -> None:
        super().__init__()
        self._link = link

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self._link._stop.is_set() and "Client is not connected" in record.getMessage())
