"""Start and end of the ``slr-edge run`` process: what can fail fast, signals, and the exit.

Everything that can be checked before start (config, model, a file source, MediaPipe, the
endpoint) is opened by :func:`build_daemon` and fails fast with a one-line error (the command
exits 2); whatever was opened before the failure is closed again. SIGTERM/SIGINT end the daemon
with exit code 0 in every state, start-up included (the loading of the model and of MediaPipe is
abandoned). The process then leaves without interpreter teardown (:func:`_exit_now`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from types import FrameType

from edge.camera.sources import VideoSource, camera_path, check_source_path, open_source, source_kind
from edge.daemon.config import ConfigError, DaemonConfig
from edge.daemon.daemon import Daemon
from edge.recognition.inference import load_model
from edge.transport.publisher import MessageSink, is_loopback
from edge.util.sdnotify import SystemdNotifier

log = logging.getLogger(__name__)


def build_daemon(config: DaemonConfig, notifier: SystemdNotifier | None = None) -> Daemon:
    """Load and open everything that can fail fast, in order: model, file source, extractor, socket.

    Raises :class:`edge.recognition.inference.ModelError`, :class:`edge.camera.frame.SourceError`,
    :class:`edge.daemon.config.ConfigError` (endpoint) or ``ExtractorError`` with one-line messages;
    whatever was opened before the failure is closed again.
    """
    model = load_model(config.model, threads=config.threads, providers=config.execution_providers)
    log.info(
        "model %s: %d classes, window %d, %.0f fps, sha256 %s, providers %s",
        model.name,
        len(model.labels),
        model.window,
        model.fps,
        model.sha256[:12],
        ",".join(model.info.providers),
    )
    source: VideoSource | None = None
    kind = source_kind(config.source)
    if kind == "file":
        # a missing/corrupt file, or one of giant frames, is fatal
        source = open_source(config.source, loop=config.loop, max_frame_pixels=config.max_frame_pixels)
    elif kind == "camera" and os.path.exists(camera_path(config.source)):
        check_source_path(config.source)  # a FIFO or regular file at /dev/... won't become a camera
    # A live source is first opened by the capture thread, after the socket is bound.
    extractor = None
    try:
        from edge.keypoints.holistic import HolisticExtractor

        extractor = HolisticExtractor(model_complexity=config.model_complexity, quiet=True)
        publisher = _open_publisher(config)
    except BaseException:
        if extractor is not None:
            extractor.close()
        if source is not None:
            source.close()
        raise
    return Daemon(config, model, extractor, publisher, source, notifier)


def _open_publisher(config: DaemonConfig) -> MessageSink:
    import zmq

    from edge.transport.keys import KeyFileError
    from edge.transport.publisher import Publisher

    try:
        publisher = Publisher(
            config.endpoint,
            curve_secret_key=config.curve_secret_key,
            curve_authorized_dir=config.curve_authorized_dir,
        )
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from None
    except zmq.ZMQError as exc:
        raise ConfigError(f"cannot bind {config.endpoint}: {exc}") from None
    warn_if_plaintext(publisher.endpoint, encrypted=publisher.encrypted)
    return publisher


def warn_if_plaintext(endpoint: str, *, encrypted: bool) -> bool:
    """Log a loud warning if ``endpoint`` is reachable from the network without CURVE; True if so."""
    if encrypted or is_loopback(endpoint):
        return False
    log.warning(
        "endpoint %s is reachable from the network and NOT encrypted: anyone who can connect "
        "receives every recognition; configure CURVE (curve_secret_key, curve_authorized_dir)",
        endpoint,
    )
    return True


class StartupInterrupted(BaseException):
    """SIGTERM/SIGINT arrived while the daemon was still being built (BaseException: nothing catches it)."""


def run_daemon(config: DaemonConfig) -> int:
    """Build the daemon and run it, SIGTERM/SIGINT handled from the first moment; returns the exit code.

    A signal during start-up abandons it (whatever was opened is closed) and exits 0, like a
    signal later on: stopping is what was asked for.
    """
    built: list[Daemon] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if built:
            built[0].request_stop(name)
        else:
            raise StartupInterrupted(name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            built.append(build_daemon(config))
        except StartupInterrupted as stop:
            log.info("stopped during start-up (%s)", stop)
            return 0
        code = built[0].run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # Daemon.run returned: every thread is stopped or abandoned, the socket closed (ZeroMQ has
    # handed the last messages to the kernel), MediaPipe closed, the summary logged. Nothing is
    # left to save, and the interpreter's own teardown is what the exit would wait on.
    _exit_now(code, stuck=built[0].capture.is_alive())
    return code  # pragma: no cover - _exit_now does not return


def _exit_now(code: int, *, stuck: bool = False) -> None:
    """End the process without interpreter teardown, once the daemon has closed what it opened.

    Measured (SIGTERM during inference, tiny model, 2-core box): the summary is logged 0.15 s
    after the signal, then the interpreter's finalisation took 0.3 s idle and 2.8-5.5 s at load
    ~15 before the process ended: almost all of it tearing down the modules MediaPipe imports
    (``python -c "import mediapipe"`` alone spends 0.49 s in finalisation here; cv2 0.05,
    onnxruntime 0.08, zmq 0.02), none of it work of ours. systemd and the tests wait for the
    process, so the daemon flushes its logs and streams and leaves with ``os._exit``.

    It is also the only safe exit while the capture thread (``stuck``) is blocked inside a camera
    open or read (a network camera that went silent; bounded by ``open_timeout_s``/
    ``read_timeout_s``): tearing the interpreter down under it runs FFmpeg's and OpenCV's
    destructors concurrently with that call, which aborted the process (SIGABRT) in the fault tests.
    """
    if stuck:
        log.debug("capture thread still inside OpenCV; exiting without interpreter teardown")
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a full disk or closed stream: nothing to save
            stream.flush()
    os._exit(code)
