"""Daemon configuration: one dataclass of declared settings, four layers, validated once at start.

Precedence (later wins): defaults < TOML file (``--config``) < ``SLR_EDGE_*`` environment
variables < command-line flags. A device is usually configured by a TOML file shipped with the
systemd unit, tweaked per host through the environment, and debugged from the shell with flags,
so each layer overrides the one before. Every bad value is reported as a one-line
:class:`ConfigError` before anything starts: a daemon that runs unattended must not discover a
typo an hour later.

Each setting is declared once, as a field of :class:`DaemonConfig` (name, type, default, bounds,
help); :mod:`edge.util.settings` derives the TOML key, the variable, the flag and the checks.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge.camera.sources import (
    MAX_FRAME_PIXELS,
    MAX_FRAME_PIXELS_LIMIT,
    STREAM_OPEN_TIMEOUT_S,
    STREAM_READ_TIMEOUT_S,
)
from edge.recognition.decisions import DEFAULT_SIGN_THRESHOLD
from edge.recognition.inference import DEFAULT_PROVIDERS, MAX_THREADS, resolve_providers
from edge.transport.publisher import DEFAULT_ENDPOINT, is_loopback
from edge.util import settings
from edge.util.settings import ConfigError, setting

__all__ = ["ENV_PREFIX", "LOG_LEVELS", "PUBLISH_MODES", "ConfigError", "DaemonConfig", "load_config"]

ENV_PREFIX = "SLR_EDGE_"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
#: What the daemon classifies and publishes: sliding windows (``prediction``/``sign``), sign
#: segments (``segment``), or both.
PUBLISH_MODES = ("windows", "segments", "both")
#: Tables of the config file that other programs read (``slr-mqtt``: ``[mqtt]``); the daemon skips them.
OTHER_TABLES = ("mqtt",)


@dataclass(frozen=True)
class DaemonConfig:
    """Everything ``slr-edge run`` needs; field names are also the TOML keys and env suffixes."""

    model: str = setting("", "model exported by slr-export (required)", metavar="ONNX")
    source: str = setting("/dev/video0", "/dev/videoN, camera index, video file or rtsp/http URL")
    #: A network camera that accepts and never answers, or freezes, must not stall start-up or stop.
    open_timeout_s: float = setting(
        STREAM_OPEN_TIMEOUT_S,
        "seconds a network camera may take to connect",
        gt=0.0,
        le=60.0,
        flag="--open-timeout",
        metavar="S",
    )
    read_timeout_s: float = setting(
        STREAM_READ_TIMEOUT_S,
        "seconds without a frame before a network camera counts as lost",
        gt=0.0,
        le=60.0,
        flag="--read-timeout",
        metavar="S",
    )
    endpoint: str = setting(
        DEFAULT_ENDPOINT, "ZeroMQ PUB endpoint, tcp://HOST:PORT or ipc://PATH", metavar="ENDPOINT"
    )
    stride: int = setting(8, "extracted frames between inferences", ge=1, metavar="N")
    threshold: float = setting(
        DEFAULT_SIGN_THRESHOLD, "probability for a sign event, 0 < P <= 1", gt=0.0, le=1.0, metavar="P"
    )
    top_k: int = setting(5, "classes per prediction message", ge=1, metavar="N")
    consecutive: int = setting(2, "agreeing windows before a sign event", ge=1, metavar="N")
    idle_after_s: float = setting(
        3.0,
        "seconds without hands before inference pauses (and extraction slows to idle_fps)",
        gt=0.0,
        flag="--idle-after",
        metavar="S",
    )
    #: While idle, MediaPipe runs on a few frames a second instead of every frame (the device is
    #: mostly watching an empty room); the first frame with a hand restores full rate.
    idle_fps: float = setting(
        3.0, "frames/s extracted while idle (0: every frame)", ge=0.0, le=1000.0, metavar="FPS"
    )
    #: The motion gate (edge.camera.motion): an idle sample whose scene has not changed since
    #: MediaPipe last found no hands in it is not looked at again (a still room costs decode only).
    idle_motion: float = setting(
        0.5,
        "percent of the frame that must change since the last look for an idle sample to run "
        "MediaPipe (0: every idle sample runs it)",
        ge=0.0,
        le=100.0,
        metavar="PCT",
    )
    idle_keepalive_s: float = setting(
        2.0,
        "while idle and the scene is still, seconds between MediaPipe looks all the same",
        gt=0.0,
        le=3600.0,
        flag="--idle-keepalive",
        metavar="S",
    )
    publish: str = setting("both", "what to classify and publish", choices=PUBLISH_MODES)
    gap_s: float = setting(
        0.5, "seconds without hands that end a sign segment", gt=0.0, flag="--gap", metavar="S"
    )
    #: Bounded: the segmenter reserves memory for the longest segment (60 s: ~25 MB at 30 fps).
    max_segment_s: float = setting(
        10.0,
        "longest sign segment; a longer one is cut and classified",
        gt=0.0,
        le=60.0,
        flag="--max-segment",
        metavar="S",
    )
    min_segment_frames: int = setting(
        5, "shorter segments are dropped (counted in status)", ge=1, metavar="N"
    )
    resample: bool = setting(True, "resample windows to the model's fps when extraction is slower")
    #: ORT intra-op threads; 1 leaves the other core to MediaPipe extraction on a 2-core device.
    threads: int = setting(1, "ONNX Runtime intra-op threads", ge=1, le=MAX_THREADS, metavar="N")
    log_level: str = setting(
        "INFO", "logging detail (DEBUG adds tracebacks of unexpected errors)", choices=LOG_LEVELS
    )
    loop: bool = setting(False, "restart a file source at its end")
    status_interval_s: float = setting(
        1.0, "seconds between status messages", gt=0.0, le=3600.0, flag="--status-interval", metavar="S"
    )
    #: Decoded frames larger than this are refused (a camera or file of 8192x8192 frames would take
    #: 200 MB per frame and GBs in the pipeline); checked from the stream's declared size before
    #: decoding, and on every frame.
    max_frame_pixels: int = setting(
        MAX_FRAME_PIXELS,
        "largest decoded frame in pixels (width x height); bigger ones are refused",
        ge=1,
        le=MAX_FRAME_PIXELS_LIMIT,
        metavar="N",
    )
    #: Binding anything but loopback exposes recognitions to the network: opt in explicitly.
    allow_remote: bool = setting(False, "allow binding a non-loopback endpoint")
    curve_secret_key: str | None = setting(
        None, "server .key_secret file: enables CURVE encryption", metavar="FILE"
    )
    curve_authorized_dir: str | None = setting(
        None, "directory of client public .key files allowed in", metavar="DIR"
    )
    model_complexity: int = setting(1, "MediaPipe Holistic complexity", choices=(0, 1, 2))
    #: Checked against the installed onnxruntime at start; Jetson: CUDA or TensorRT with onnxruntime-gpu.
    execution_providers: tuple[str, ...] = setting(
        DEFAULT_PROVIDERS,
        "ONNX Runtime execution providers, in order of preference (e.g. CUDA,CPU); "
        "'slr-edge check-model' measures each available one",
        metavar="LIST",
    )

    def validated(self) -> DaemonConfig:
        """Return a copy with choices normalised (``debug`` → ``DEBUG``), or raise :class:`ConfigError`."""
        if not self.model:
            raise ConfigError(
                "model is required (--model PATH, SLR_EDGE_MODEL or 'model' in the config file)"
            )
        if not str(self.source).strip():
            raise ConfigError("source must not be empty")
        from edge.models.resolve import resolve_model  # --model NAME: a fetched registry model

        try:
            named = replace(self, model=resolve_model(self.model))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        checked = settings.check(named)
        check_endpoint(checked.endpoint, allow_remote=checked.allow_remote)
        if (checked.curve_secret_key is None) != (checked.curve_authorized_dir is None):
            # Encryption without a client allow-list lets anyone who has the (public) server key
            # subscribe: the daemon runs CURVE only with both (docs/PROTOCOL.md).
            raise ConfigError(
                "curve_secret_key and curve_authorized_dir must be given together "
                "(CURVE runs with a client allow-list)"
            )
        return replace(checked, execution_providers=resolve_providers(checked.execution_providers))


def check_endpoint(endpoint: str, *, allow_remote: bool) -> None:
    """Accept ``tcp://host:port`` or ``ipc://path``; a non-loopback tcp host needs ``allow_remote``."""
    shown = settings.shown_value(endpoint)
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc") or not rest:
        raise ConfigError(f"endpoint must look like tcp://127.0.0.1:5556 or ipc:///run/slr.sock, got {shown}")
    if scheme == "ipc":
        return
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or not parts.hostname:
        raise ConfigError(f"tcp endpoint needs a host and a numeric port, got {shown}")
    if not allow_remote and not is_loopback(endpoint):
        raise ConfigError(
            f"endpoint {shown} is not loopback; pass --allow-remote (allow_remote = true) to expose it"
        )


def read_toml(path: str | Path) -> dict[str, Any]:
    """Setting values from a TOML file; unknown keys and syntax errors are :class:`ConfigError`."""
    return settings.read_toml(DaemonConfig, path, skip_tables=OTHER_TABLES)


def read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Setting values from ``SLR_EDGE_<SETTING>`` variables; unknown ``SLR_EDGE_*`` names are errors."""
    return settings.read_env(DaemonConfig, environ, ENV_PREFIX)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One ``slr-edge run`` flag per setting (generated from the declarations)."""
    settings.add_arguments(DaemonConfig, parser)


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags in ``args`` (None where not given), for :func:`load_config`."""
    return settings.flag_values(DaemonConfig, args)


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
    values.update(settings.read_overrides(DaemonConfig, overrides or {}))
    return DaemonConfig(**values).validated()
