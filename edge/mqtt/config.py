"""The ``[mqtt]`` table of the daemon's config file: ``slr-mqtt``'s settings, checked once at start.

Precedence (later wins): defaults < ``[mqtt]`` in the TOML file < ``SLR_MQTT_*`` variables < flags,
each setting declared once with :func:`edge.util.settings.setting`. The daemon's endpoint is a
fact of the daemon's own settings: unless ``endpoint`` is given here, the bridge subscribes to the
``endpoint`` at the top of the same file (or the daemon's default).

The broker password is read from ``password_file`` (never a setting of its own, so it cannot land
in a flag, ``ps`` or an error message); a broker URL with ``user:password@`` is refused.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge.transport.publisher import DEFAULT_ENDPOINT
from edge.util import settings
from edge.util.files import read_small_regular_file
from edge.util.settings import ConfigError, setting

ENV_PREFIX = "SLR_MQTT_"
TABLE = "mqtt"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
#: MQTT 3.1.1 strings (user name, password) are a 2-byte length and at most this many UTF-8 bytes.
MAX_MQTT_STRING_BYTES = 65_535
#: Largest password file read: one MQTT string, its line end and some room for trailing lines.
MAX_PASSWORD_FILE_BYTES = 1 << 17
#: What MQTT topic levels and Home Assistant ids may contain here: no wildcards, separators or spaces.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,7}$")


@dataclass(frozen=True)
class MqttConfig:
    """Everything ``slr-mqtt`` reads from ``[mqtt]``; field names are the TOML keys and env suffixes."""

    broker: str = setting("mqtt://127.0.0.1:1883", "broker URL, mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    client_id: str = setting("", "MQTT client id (default slr-mqtt-DEVICE)", metavar="ID")
    topic_prefix: str = setting("slovo", "first topic level(s): PREFIX/DEVICE/sign ...", metavar="PREFIX")
    device_id: str = setting("", "second topic level and Home Assistant device (default: the host name)")
    qos: int = setting(1, "QoS of sign, segment and status messages", choices=(0, 1, 2))
    ca_file: str | None = setting(None, "CA certificate(s) that signed the broker's (mqtts)", metavar="FILE")
    cert_file: str | None = setting(None, "client certificate for mqtts (with key_file)", metavar="FILE")
    key_file: str | None = setting(None, "client certificate's private key", metavar="FILE")
    username: str | None = setting(None, "broker user name", metavar="USER")
    password_file: str | None = setting(
        None, "file holding the broker password (never logged)", metavar="FILE"
    )
    queue_size: int = setting(
        1000, "sign/segment messages kept while the broker is away; beyond, the oldest are dropped",
        ge=2, le=1_000_000, metavar="N",
    )  # fmt: skip
    queue_bytes: int = setting(
        16 << 20, "payload bytes of sign/segment messages kept (a message may be up to 1 MiB); "
        "beyond, the oldest are dropped", ge=2 << 20, le=1 << 30, metavar="BYTES",
    )  # fmt: skip
    discovery: bool = setting(True, "publish Home Assistant discovery configs (retained)")
    discovery_prefix: str = setting("homeassistant", "Home Assistant's discovery prefix", metavar="PREFIX")
    forward_prediction: bool = setting(False, "also forward the sliding-window predictions (3-4 per second)")
    endpoint: str | None = setting(None, "daemon endpoint (default: the file's top-level endpoint)")
    curve_server_key: str | None = setting(None, "daemon's public CURVE key file", metavar="FILE")
    curve_client_key: str | None = setting(None, "this client's secret CURVE key file", metavar="FILE")
    daemon_timeout_s: float = setting(
        5.0, "seconds without a daemon status before it counts as gone", gt=0.0, le=3600.0,
        flag="--daemon-timeout", metavar="S",
    )  # fmt: skip
    keepalive_s: int = setting(
        30, "MQTT keepalive: the broker declares the bridge offline after 1.5x this",
        ge=5, le=3600, flag="--keepalive", metavar="S",
    )  # fmt: skip
    log_level: str = setting("INFO", "logging detail", choices=LOG_LEVELS)


@dataclass(frozen=True)
class Broker:
    """Where and how to connect; ``password`` is loaded from ``password_file`` and never shown."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    username: str | None
    password: str | None = None

    def __repr__(self) -> str:  # a stray log of this object must not print the password
        return f"Broker({self.host}:{self.port}, tls={self.tls is not None}, user={self.username!r})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """The checked configuration: settings with defaults resolved, the broker, the daemon endpoint."""

    config: MqttConfig
    broker: Broker
    endpoint: str
    device_id: str
    client_id: str


def default_device_id(hostname: str | None = None) -> str:
    """The host name's first label, with anything a topic level or HA id cannot hold made ``_``."""
    name = (hostname if hostname is not None else socket.gethostname()).split(".")[0]
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]
    return cleaned or "slovo"


def read_file(
    path: str | Path | None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], str | None]:
    """``[mqtt]`` values from the config file and the daemon's top-level ``endpoint`` (or None)."""
    if path is None:
        return {}, None
    data = settings.load_toml(path)
    table = data.get(TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: {TABLE} must be a table ([{TABLE}])")
    values = settings.read_table(MqttConfig, table, f"config file {path} [{TABLE}]")
    endpoint = data.get("endpoint")
    if endpoint is not None and not isinstance(endpoint, str):
        raise ConfigError(f"config file {path}: endpoint must be str, got {endpoint!r}")
    return values, endpoint


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One ``slr-mqtt`` flag per setting (generated from the declarations)."""
    settings.add_arguments(MqttConfig, parser)


def load(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    hostname: str | None = None,
) -> Settings:
    """Merge the layers, check every value and file, read the password; :class:`ConfigError` if unusable."""
    values, daemon_endpoint = read_file(config_file)
    values.update(settings.read_env(MqttConfig, os.environ if environ is None else environ, ENV_PREFIX))
    values.update(settings.read_overrides(MqttConfig, overrides or {}))
    config = settings.check(MqttConfig(**values))
    device_id = config.device_id or default_device_id(hostname)
    if not ID_PATTERN.match(device_id):
        raise ConfigError(f"device_id must be 1-64 letters, digits, '_' or '-', got {device_id!r}")
    for name in ("topic_prefix", "discovery_prefix"):
        if not PREFIX_PATTERN.match(getattr(config, name)):
            raise ConfigError(
                f"{name} must be topic levels of letters, digits, '_' or '-' joined by '/' "
                f"(no wildcards, no empty level), got {getattr(config, name)!r}"
            )
    client_id = config.client_id or f"slr-mqtt-{device_id}"
    if len(client_id.encode("utf-8")) > 128 or any(ch in client_id for ch in "\0\n"):
        raise ConfigError("client_id must be at most 128 bytes of text")
    endpoint = config.endpoint or daemon_endpoint or DEFAULT_ENDPOINT
    check_daemon_endpoint(endpoint)
    if (config.curve_server_key is None) != (config.curve_client_key is None):
        raise ConfigError("curve_server_key and curve_client_key must be given together")
    config = replace(config, device_id=device_id, client_id=client_id, endpoint=endpoint)
    return Settings(config, broker_from(config), endpoint, device_id, client_id)


def broker_from(config: MqttConfig) -> Broker:
    """Parse the URL, build the TLS context (checks the files) and read the password file.

    Every message about the URL shows it through :func:`edge.util.settings.shown_value`: a URL that
    carries a secret (``?password=``, ``#token=``) is refused without printing it.
    """
    url = config.broker.strip()
    shown = settings.shown_value(url)  # redacted and cut short
    usage = f"broker must be an mqtt://HOST[:PORT] or mqtts://HOST[:PORT] URL, got {shown}"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # both raise ValueError on a bad host or port
    except ValueError:
        raise ConfigError(f"broker URL has a bad host or port: {shown}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ConfigError(usage)
    if "@" in parts.netloc:  # never echo it: it may hold a password
        raise ConfigError("broker URL must not contain a user or password (use username and password_file)")
    if not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(usage)
    if port is None:
        port = DEFAULT_PORTS[parts.scheme]
    elif not 1 <= port <= 65535:
        raise ConfigError(f"broker URL has a bad port (1-65535): {shown}")
    tls_files = (config.ca_file, config.cert_file, config.key_file)
    if parts.scheme == "mqtt" and any(tls_files):
        raise ConfigError("ca_file, cert_file and key_file need an mqtts:// broker URL")
    tls = tls_context(config) if parts.scheme == "mqtts" else None
    username = config.username or None
    if username is not None:
        check_mqtt_string("username", username)
    password = read_password(config.password_file) if config.password_file else None
    if password is not None and not username:
        raise ConfigError("password_file needs username")
    return Broker(host, port, tls, username, password)


def check_mqtt_string(name: str, value: str) -> None:
    """An MQTT 3.1.1 UTF-8 string field: at most 65,535 bytes, no NUL (the value itself never shown).

    paho would fail on a longer one only when it builds the CONNECT packet, in its own thread.
    """
    if len(value.encode("utf-8", "surrogatepass")) > MAX_MQTT_STRING_BYTES:
        raise ConfigError(f"{name} is longer than MQTT allows ({MAX_MQTT_STRING_BYTES} bytes in UTF-8)")
    if "\0" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise ConfigError(f"{name} holds a NUL or a lone surrogate, which MQTT does not allow")


def check_daemon_endpoint(endpoint: str) -> None:
    """The daemon endpoint to subscribe to: ``tcp://HOST:PORT`` (port 1-65535) or ``ipc://PATH``.

    ZeroMQ would accept ``tcp://127.0.0.1:99999`` and connect to nothing, silently, forever.
    """
    shown = settings.shown_value(endpoint)
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc") or not rest:
        raise ConfigError(f"endpoint must look like tcp://127.0.0.1:5556 or ipc:///run/slr.sock, got {shown}")
    if scheme == "ipc":
        return
    try:
        parts = urlsplit(endpoint)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None or not 1 <= port <= 65535 or parts.path or parts.query or parts.fragment:
        raise ConfigError(f"tcp endpoint needs a host and a port 1-65535, got {shown}")


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or ``ca_file``; a client certificate if given."""
    if (config.cert_file is None) != (config.key_file is None):
        raise ConfigError("cert_file and key_file must be given together")
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(config, name)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{name} {path} does not exist or is not a file")
    try:
        context = ssl.create_default_context(cafile=config.ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"ca_file {config.ca_file} is not a PEM CA certificate: {_ssl_reason(exc)}"
        ) from None
    if config.cert_file is not None:
        asked: list[bool] = []

        def no_passphrase() -> bytes:
            # Without a callback OpenSSL prompts on the terminal for an encrypted key: a hang.
            asked.append(True)
            return b""

        try:
            context.load_cert_chain(config.cert_file, config.key_file, password=no_passphrase)
        except (ssl.SSLError, OSError) as exc:
            if asked:
                raise ConfigError(
                    f"key_file {config.key_file} is encrypted; slr-mqtt needs an unencrypted key "
                    "(protect it with file permissions, e.g. a LoadCredential=)"
                ) from None
            raise ConfigError(
                f"cert_file/key_file {config.cert_file} are not a matching PEM certificate and key: "
                f"{_ssl_reason(exc)}"
            ) from None
    return context


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
    return str(reason)


def read_password(path: str) -> str:
    """The first line of ``path``, without its newline; the value is never part of any message.

    The file is read only up to :data:`MAX_PASSWORD_FILE_BYTES` (a password is one MQTT string of
    at most 65,535 bytes): a huge file or ``/dev/zero`` is refused, not read into memory.
    """
    try:
        raw = read_small_regular_file(path, MAX_PASSWORD_FILE_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"password_file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"password_file {path}: {exc.strerror or exc}") from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"password_file {path} is not UTF-8 text") from None
    password = lines[0] if lines else ""
    if not password:
        raise ConfigError(f"password_file {path} is empty")
    check_mqtt_string(f"the password in password_file {path}", password)
    return password


def password_file_shared(path: str) -> bool:
    """Whether users other than the owner and group may read the password file."""
    return bool(os.stat(path).st_mode & 0o004)
