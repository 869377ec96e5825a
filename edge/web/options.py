"""``slr-web``'s options, each declared once (:func:`edge.util.settings.setting`): flag, type,
default, help and bounds, as the daemon and ``slr-mqtt`` declare theirs.

:func:`checked` runs the declared checks and words a failure as ``slr-web`` always has (its
messages name the flag; tests and users rely on them). What is not a plain bound (loopback and
token, paired files, the endpoint, key and certificate files) is checked in
:mod:`edge.commands.web`, which turns the options into :class:`edge.web.app.WebSettings`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from edge.captions.cues import DEFAULT_MIN_CONFIDENCE
from edge.transport.publisher import DEFAULT_ENDPOINT
from edge.util import settings
from edge.util.settings import ConfigError, setting
from edge.web.uploads import DEFAULT_MAX_BYTES, DEFAULT_MIN_RATE, DEFAULT_TIMEOUT_S
from edge.web.warm_worker import DEFAULT_IDLE_S

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_SIZES = (
    "--max-upload-mb (up to 4096), --upload-timeout (up to 86400 s), --upload-min-rate and "
    "--port (below 65536) must be positive numbers"
)
#: The message for a value outside its declared bounds, by setting (the words slr-web always used).
MESSAGES = {
    "port": _SIZES,
    "max_upload_mb": _SIZES,
    "upload_timeout": _SIZES,
    "upload_min_rate": _SIZES,
    "min_confidence": "--min-confidence must be between 0 and 1",
}


@dataclass(frozen=True)
class WebOptions:
    """Every ``slr-web`` flag; the field name is the flag (``max_upload_mb`` → ``--max-upload-mb``)."""

    endpoint: str = setting(DEFAULT_ENDPOINT, "daemon's ZeroMQ endpoint")
    model: str | None = setting(None, "model for uploaded clips (without it: no uploads)", metavar="ONNX")
    host: str = setting("127.0.0.1", "address to bind")
    port: int = setting(8080, "port", ge=1, le=65535)
    allow_remote: bool = setting(False, "allow a non-loopback --host (needs --token-file)")
    token_file: str | None = setting(None, "secret every request must present", metavar="FILE")
    max_upload_mb: float = setting(DEFAULT_MAX_BYTES / 2**20, "upload size limit", gt=0.0, le=4096.0)
    upload_timeout: float = setting(DEFAULT_TIMEOUT_S, "seconds per clip", gt=0.0, le=86400.0)
    upload_min_rate: float = setting(
        DEFAULT_MIN_RATE / 1024,
        "slowest average upload rate accepted after 10 s: a stalled upload is cut off",
        gt=0.0, le=1e6, metavar="KB_PER_S",
    )  # fmt: skip
    worker_idle_s: float = setting(
        DEFAULT_IDLE_S,
        "keep the upload worker (MediaPipe and the model loaded) this long after a clip, so the next "
        "upload costs only its keypoints; 0: a new process per clip",
        ge=0.0, le=86400.0, metavar="S",
    )  # fmt: skip
    tls_cert: str | None = setting(None, "serve HTTPS (browsers record only over HTTPS)", metavar="PEM")
    tls_key: str | None = setting(None, "private key for --tls-cert", metavar="PEM")
    curve_server_key: str | None = setting(None, "daemon's public CURVE key (.key)", metavar="FILE")
    curve_client_key: str | None = setting(None, "this client's secret key (.key_secret)", metavar="FILE")
    min_confidence: float = setting(
        DEFAULT_MIN_CONFIDENCE,
        "headline says 'уверен' (confident) at or above P, and the transcript lists only those "
        "(lower ones are hidden unless the page asks to show them greyed)",
        ge=0.0, le=1.0, metavar="P",
    )  # fmt: skip
    state_dir: str | None = setting(None, "where the shared transcript is kept (see below)", metavar="DIR")
    log_level: str = setting("INFO", "logging detail", choices=LOG_LEVELS)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per option (generated from the declarations)."""
    settings.add_arguments(WebOptions, parser)


def from_args(args: argparse.Namespace) -> WebOptions:
    """The options given on the command line over the declared defaults, checked (``ValueError``)."""
    given: dict[str, Any] = {k: v for k, v in settings.flag_values(WebOptions, args).items() if v is not None}
    return checked(WebOptions(**given))


def checked(options: WebOptions) -> WebOptions:
    """:func:`edge.util.settings.check`, failing with the setting's own ``slr-web`` message."""
    for name, item in settings.declared(WebOptions).items():
        try:
            settings.check_value(item, getattr(options, name))
        except ConfigError as exc:
            raise ConfigError(MESSAGES.get(name, f"{item.flag}: {exc}")) from None
    return settings.check(options)  # the same checks, now known to pass; choices in their spelling
