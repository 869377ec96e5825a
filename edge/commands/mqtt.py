"""``slr-mqtt``: the daemon's messages on an MQTT broker, announced to Home Assistant.

Subscribes to the daemon like ``slr-listen`` (same endpoint and CURVE keys, through
:class:`edge.transport.subscriber.Subscriber`), checks each message against the protocol's schemas
and publishes it under ``PREFIX/DEVICE/`` (see :mod:`edge.mqtt.topics`). Settings live in the
``[mqtt]`` table of the daemon's config file (:mod:`edge.mqtt.config`).

Exit status: 0 on SIGTERM/Ctrl-C (after publishing ``offline``; from the first moment, start-up
included: the console script is :func:`edge.commands.scaffold.slr_mqtt`, which takes both signals
before this module is imported) or after ``--remove-discovery``, 130 when ``--remove-discovery`` is
interrupted before it is done, 1 when it cannot reach the broker or on an unexpected error, 2 on a
bad option, config, key file, refused credentials or an untrusted broker certificate. A broker that
is down is not an error: the bridge retries with backoff and says so in its log.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edge.commands.scaffold import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, add_version, run

if TYPE_CHECKING:  # imported when used: the module loads fast, so start-up takes signals at once
    from edge.mqtt.config import Settings
    from edge.transport.subscriber import Subscriber

log = logging.getLogger("edge.mqtt")

#: Seconds between two checks of the daemon's liveness and the queue when no message arrives.
TICK_S = 0.25
REMOVE_TIMEOUT_S = 15.0
#: Messages ZeroMQ may hold for the bridge before it drops new ones (counted as ``lost`` from the
#: ``seq`` gaps). Its default, 1000, is counted in messages of up to 1 MiB: 300 signs of 800 KB
#: arriving faster than the bridge checks them (~30 ms each) sat there, 200 MiB of them. 32 keep
#: that below 32 MiB and are still 16 ms of a 2,000/s flood: the rest waits in the kernel's socket
#: buffers or is dropped at the daemon's own bounded send queue.
RCVHWM_MESSAGES = 32

EPILOG = """\
configuration precedence (later wins):
  defaults < [mqtt] table of the TOML file (--config) < SLR_MQTT_* variables < flags
  {names}
  the daemon's endpoint is the file's top-level `endpoint` unless [mqtt] endpoint is set

topics (PREFIX default slovo, DEVICE default the host name):
  PREFIX/DEVICE/available  online|offline (retained; the last will)
  PREFIX/DEVICE/sign, segment    the daemon's messages (QoS 1)
  PREFIX/DEVICE/status     the latest status (retained)     PREFIX/DEVICE/bridge  counters (retained)
  PREFIX/DEVICE/prediction only with --forward-prediction
  homeassistant/...        discovery configs (retained; --remove-discovery deletes them)

examples:
  slr-mqtt --config /etc/slovo-edge/config.toml
  slr-mqtt --broker mqtt://192.168.1.10 --username slovo --password-file ~/.mqtt-password
  slr-mqtt --broker mqtts://broker.lan --ca-file ca.pem --device-id hall
  slr-mqtt --config /etc/slovo-edge/config.toml --remove-discovery
  mosquitto_sub -h broker.lan -t 'slovo/#' -v     # watch what it publishes

exit codes: 0 stopped by SIGTERM/Ctrl-C or discovery removed, 1 --remove-discovery could not reach
the broker or an unexpected error, 2 bad option/config/key file, credentials refused, untrusted certificate,
130 --remove-discovery interrupted (SIGTERM/Ctrl-C) before it was done
"""


def setting_names() -> str:
    """How TOML keys and variables are spelled, generated from the declarations (never restated)."""
    from edge.mqtt.config import ENV_PREFIX, MqttConfig
    from edge.util.settings import declared

    odd = [
        f"{item.flag} = {name} / {ENV_PREFIX}{name.upper()}"
        for name, item in declared(MqttConfig).items()
        if item.flag != "--" + name.replace("_", "-")
    ]
    rule = (
        "keys are the flag names with '_', variables SLR_MQTT_ and the key in capitals:\n"
        '  topic_prefix = "home/slovo" / SLR_MQTT_TOPIC_PREFIX=home/slovo'
    )
    return rule + ("\n  except " + ", ".join(odd) if odd else "")


def build_parser() -> argparse.ArgumentParser:
    from edge.mqtt import config

    parser = argparse.ArgumentParser(
        prog="slr-mqtt",
        description="Publish what slr-edge recognises to an MQTT broker, with Home Assistant discovery.",
        epilog=EPILOG.replace("{names}", setting_names()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    parser.add_argument("--config", metavar="FILE", help="the daemon's TOML config file ([mqtt] table)")
    parser.add_argument(
        "--remove-discovery",
        action="store_true",
        help="delete this device's Home Assistant discovery configs from the broker, then exit",
    )
    config.add_flags(parser)
    return parser


def setup_logging(level: str) -> None:
    """Journal-style lines under systemd, timestamped lines on a terminal (as ``slr-edge``)."""
    from edge.util.journal import setup_journal_logging

    if not setup_journal_logging(level):
        logging.basicConfig(
            level=logging.getLevelName(level),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,
        )
    # paho's DEBUG lines are every packet; ours say what matters.
    logging.getLogger("edge.mqtt.paho").setLevel(max(logging.getLevelName(level), logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``slr-mqtt`` (``python -m``); SIGTERM and Ctrl-C end it with 0 from here on."""
    return run("slr-mqtt", command, argv, extra="mqtt", stop_signals=True, interrupted=EXIT_OK)


def _error(line: str) -> int:
    print(f"slr-mqtt: error: {line}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def command(argv: list[str] | None) -> int:
    """The command, inside :func:`edge.commands.scaffold.run` (console script: ``scaffold.slr_mqtt``)."""
    import paho.mqtt.client  # noqa: F401  (the 'mqtt' extra: one line naming it if missing)
    import zmq

    from edge.contract.protocol import TOPIC_PREDICTION
    from edge.mqtt import config
    from edge.mqtt.topics import FORWARDED
    from edge.transport.keys import KeyFileError
    from edge.transport.subscriber import Subscriber
    from edge.util.settings import ConfigError

    args = build_parser().parse_args(argv)
    try:
        settings = config.load(args.config, config.settings.flag_values(config.MqttConfig, args))
    except ConfigError as exc:
        return _error(str(exc))
    setup_logging(settings.config.log_level)
    if settings.config.password_file and config.password_file_shared(settings.config.password_file):
        log.warning(
            "password_file %s is readable by other users; chmod 600 it", settings.config.password_file
        )
    if args.remove_discovery:
        try:
            return _remove_discovery(settings)
        except KeyboardInterrupt:
            print("slr-mqtt: interrupted; the discovery configs may not all be removed", file=sys.stderr)
            return EXIT_INTERRUPTED
    topics = list(FORWARDED)
    if settings.config.forward_prediction:
        topics.append(TOPIC_PREDICTION)
    try:
        subscriber = Subscriber(
            settings.endpoint,
            topics,
            rcvhwm=RCVHWM_MESSAGES,
            curve_server_key=settings.config.curve_server_key,
            curve_client_key=settings.config.curve_client_key,
        )
    except (KeyFileError, ValueError, zmq.ZMQError) as exc:
        return _error(str(exc))
    try:
        return _bridge(settings, subscriber)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        subscriber.close()


def _bridge(settings: Settings, subscriber: Subscriber) -> int:
    from edge.contract.protocol import ProtocolError
    from edge.mqtt.bridge import Bridge
    from edge.mqtt.link import Link
    from edge.mqtt.outbox import Outbox
    from edge.mqtt.topics import Topics

    cfg = settings.config
    topics = Topics(cfg.topic_prefix, settings.device_id, cfg.discovery_prefix)
    outbox = Outbox(cfg.queue_size, max_bytes=cfg.queue_bytes)
    bridge = Bridge(
        topics, outbox, qos=cfg.qos, discovery=cfg.discovery, daemon_timeout_s=cfg.daemon_timeout_s
    )
    link = Link(
        settings.broker,
        settings.client_id,
        will_topic=topics.available,
        keepalive_s=cfg.keepalive_s,
        outbox=outbox,
        announce=bridge.announcements,
        farewell=bridge.farewell,
    )
    bridge.link = link
    log.info(
        "bridging %s -> %s as %s/%s/ (client id %s)",
        settings.endpoint,
        settings.broker.address,
        topics.prefix,
        topics.device,
        settings.client_id,
    )
    link.start()
    next_tick = 0.0
    try:
        while not link.failed.is_set():
            try:
                message = subscriber.recv(TICK_S)
            except ProtocolError as exc:
                bridge.reject(str(exc))
                message = None
            if message is not None:
                bridge.handle(*message)
            now = time.monotonic()
            if now >= next_tick:  # not per message: a flood must not pay for the counters each time
                bridge.tick()
                next_tick = now + TICK_S
        return _error(link.fatal or "the broker connection failed")
    finally:
        link.close()
        log.info("stopped: %s", bridge.summary())


def _remove_discovery(settings: Settings) -> int:
    """Publish an empty retained message on each discovery topic: Home Assistant deletes the entities."""
    from edge.mqtt.link import connect_error, make_client, refusal_is_fatal
    from edge.mqtt.topics import Topics, discovery_topics

    cfg = settings.config
    topics = Topics(cfg.topic_prefix, settings.device_id, cfg.discovery_prefix)
    client = make_client(settings.broker, settings.client_id + "-remove")
    outcome: dict[str, object] = {}

    def on_connect(client: object, userdata: object, flags: object, reason: object, props: object) -> None:
        outcome["reason"] = reason

    client.on_connect = on_connect
    try:
        client.connect(settings.broker.host, settings.broker.port, keepalive=cfg.keepalive_s)
    except (OSError, ValueError) as exc:
        line, fatal = connect_error(exc, settings.broker)
        print(f"slr-mqtt: error: {line}", file=sys.stderr)
        return EXIT_USAGE if fatal else EXIT_FAILURE
    client.loop_start()
    try:
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        while "reason" not in outcome and time.monotonic() < deadline:
            time.sleep(0.05)
        reason = outcome.get("reason")
        if reason is None:
            print(f"slr-mqtt: error: no answer from the broker {settings.broker.address}", file=sys.stderr)
            return EXIT_FAILURE
        if getattr(reason, "is_failure", False):
            print(f"slr-mqtt: error: the broker refused the connection: {reason}", file=sys.stderr)
            return EXIT_USAGE if refusal_is_fatal(reason) else EXIT_FAILURE  # type: ignore[arg-type]
        infos = [client.publish(topic, b"", qos=1, retain=True) for topic in discovery_topics(topics)]
        for info in infos:
            info.wait_for_publish(REMOVE_TIMEOUT_S)
        print(f"removed {len(infos)} Home Assistant discovery configs of device {topics.device}")
        return EXIT_OK
    finally:
        client.loop_stop()  # first: a network thread still running would log an ERROR about the
        client.disconnect()  # socket the DISCONNECT closed


if __name__ == "__main__":
    sys.exit(main())
