"""Daemon configuration: one dataclass, four layers, validated once at start.

Precedence (later wins): dataclass defaults < TOML file (``--config``) < ``SLR_EDGE_*``
environment variables < command-line flags. A device is usually configured by a TOML file shipped
with the systemd unit, tweaked per host through the environment, and debugged from the shell with
flags, so each layer overrides the one before. Every bad value is reported as a one-line
:class:`ConfigError` before anything starts: a daemon that runs unattended must not discover a
typo an hour later.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge.runtime.publisher import is_loopback

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6): the tomli backport, a dependency there
    import tomli as tomllib

ENV_PREFIX = "SLR_EDGE_"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class ConfigError(ValueError):
    """A configuration value or file that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class DaemonConfig:
    """Everything ``slr-edge run`` needs; field names are also the TOML keys and env suffixes."""

    model: str = ""
    source: str = "/dev/video0"
    endpoint: str = "tcp://127.0.0.1:5556"
    stride: int = 8
    threshold: float = 0.6
    top_k: int = 5
    consecutive: int = 2
    idle_after_s: float = 3.0
    resample: bool = True
    #: ORT intra-op threads; 1 leaves the other core to MediaPipe extraction on a 2-core device.
    threads: int = 1
    log_level: str = "INFO"
    loop: bool = False
    status_interval_s: float = 1.0
    #: Binding anything but loopback exposes recognitions to the network: opt in explicitly.
    allow_remote: bool = False
    curve_secret_key: str | None = None
    curve_authorized_dir: str | None = None
    model_complexity: int = 1

    def validated(self) -> DaemonConfig:
        """Return a copy with the log level normalised, or raise :class:`ConfigError` for a bad value."""
        if not self.model:
            raise ConfigError(
                "model is required (--model PATH, SLR_EDGE_MODEL or 'model' in the config file)"
            )
        if not str(self.source):
            raise ConfigError("source must not be empty")
        _check(self.stride >= 1, f"stride must be >= 1, got {self.stride}")
        _check(0.0 < self.threshold <= 1.0, f"threshold must be in (0, 1], got {self.threshold}")
        _check(self.top_k >= 1, f"top_k must be >= 1, got {self.top_k}")
        _check(self.consecutive >= 1, f"consecutive must be >= 1, got {self.consecutive}")
        _check(self.idle_after_s > 0, f"idle_after_s must be > 0, got {self.idle_after_s}")
        _check(self.threads >= 1, f"threads must be >= 1, got {self.threads}")
        _check(self.status_interval_s > 0, f"status_interval_s must be > 0, got {self.status_interval_s}")
        _check(
            self.model_complexity in (0, 1, 2),
            f"model_complexity must be 0, 1 or 2, got {self.model_complexity}",
        )
        _check(
            self.log_level.upper() in LOG_LEVELS,
            f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}",
        )
        check_endpoint(self.endpoint, allow_remote=self.allow_remote)
        if (self.curve_secret_key is None) != (self.curve_authorized_dir is None):
            raise ConfigError("curve_secret_key and curve_authorized_dir must be given together")
        return replace(self, log_level=self.log_level.upper())

    @property
    def log_level_number(self) -> int:
        """The ``logging`` level for :attr:`log_level`."""
        return logging.getLevelName(self.log_level.upper())


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_endpoint(endpoint: str, *, allow_remote: bool) -> None:
    """Accept ``tcp://host:port`` or ``ipc://path``; a non-loopback tcp host needs ``allow_remote``."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc") or not rest:
        raise ConfigError(
            f"endpoint must look like tcp://127.0.0.1:5556 or ipc:///run/slr.sock, got {endpoint!r}"
        )
    if scheme == "ipc":
        return
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or not parts.hostname:
        raise ConfigError(f"tcp endpoint needs a host and a numeric port, got {endpoint!r}")
    if not allow_remote and not is_loopback(endpoint):
        raise ConfigError(
            f"endpoint {endpoint!r} is not loopback; pass --allow-remote (allow_remote = true) to expose it"
        )


_FIELDS = {f.name: f for f in fields(DaemonConfig)}
_TYPES: dict[str, type] = {
    "model": str,
    "source": str,
    "endpoint": str,
    "stride": int,
    "threshold": float,
    "top_k": int,
    "consecutive": int,
    "idle_after_s": float,
    "resample": bool,
    "threads": int,
    "log_level": str,
    "loop": bool,
    "status_interval_s": float,
    "allow_remote": bool,
    "curve_secret_key": str,
    "curve_authorized_dir": str,
    "model_complexity": int,
}
assert set(_TYPES) == set(_FIELDS)


def _coerce(key: str, value: Any, origin: str) -> Any:
    """Convert one value to the field's type, or raise a :class:`ConfigError` saying where it came from."""
    kind = _TYPES[key]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif kind is str and isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{origin}: {key} must be {kind.__name__}, got {value!r}")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML config file into field values; unknown keys and syntax errors are :class:`ConfigError`."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    values: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in _FIELDS:
            raise ConfigError(f"config file {path}: unknown key {raw_key!r} (known: {', '.join(_FIELDS)})")
        values[key] = _coerce(key, value, f"config file {path}")
    return values


def read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Field values from ``SLR_EDGE_<FIELD>`` variables; unknown ``SLR_EDGE_*`` names are errors."""
    values: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in _FIELDS:
            raise ConfigError(
                f"unknown environment variable {name} (known: SLR_EDGE_<{'|'.join(_FIELDS).upper()}>)"
            )
        values[key] = _coerce(key, value, f"environment {name}")
    return values


def load_config(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> DaemonConfig:
    """Merge defaults < ``config_file`` < ``environ`` (default ``os.environ``) < ``overrides`` and validate.

    ``overrides`` are command-line values; ``None`` entries mean "flag not given" and are skipped.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(read_toml(config_file))
    values.update(read_env(os.environ if environ is None else environ))
    for key, value in (overrides or {}).items():
        if key not in _FIELDS:
            raise ConfigError(f"unknown option {key!r}")
        if value is not None:
            values[key] = _coerce(key, value, f"option --{key.replace('_', '-')}")
    return DaemonConfig(**values).validated()
