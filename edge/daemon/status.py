"""The daemon's health as others see it: the ``status`` message, its thread, and the exit summary.

Status is read from the daemon's parts (capture, extraction, workers, idle cycle) by another
thread, so it only reads counters and never holds up the main loop; a failure to build or send
it is logged and survived (a status message must never take the daemon down).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from edge import __version__
from edge.contract.protocol import DaemonState, ErrorCounters, ModelInfo, Status
from edge.util.redact import redact

if TYPE_CHECKING:
    from edge.camera.capture import CaptureThread, LatestFrameBox
    from edge.daemon.config import DaemonConfig
    from edge.daemon.extraction import Extraction
    from edge.daemon.idle import IdleSampler
    from edge.daemon.systemd import SystemdLink
    from edge.keypoints.ring_buffer import KeypointRingBuffer
    from edge.recognition.decisions import IdleTracker
    from edge.recognition.inference import EdgeModel
    from edge.recognition.inference_worker import InferenceWorker
    from edge.recognition.segment_worker import SegmentWorker
    from edge.recognition.segmenter import Segmenter
    from edge.transport.publisher import MessageSink

log = logging.getLogger(__name__)


class StatusThread(threading.Thread):
    """Calls ``publish`` every ``interval`` seconds until stopped."""

    def __init__(self, publish: Callable[[], None], interval: float) -> None:
        super().__init__(name="status", daemon=True)
        self._publish = publish
        self._interval = interval
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._publish()
            except Exception as exc:  # a status message must never take the daemon down
                log.error("status publishing failed: %s", exc)
            self._stop_event.wait(self._interval)


class Rate:
    """Events per second between successive :meth:`update` calls."""

    def __init__(self) -> None:
        self._count = 0
        self._at = time.monotonic()
        self.value = 0.0

    def update(self, count: int) -> float:
        now = time.monotonic()
        if now - self._at >= 0.2:
            self.value = (count - self._count) / (now - self._at)
            self._count, self._at = count, now
        return self.value


def _ms(value: float | None) -> float | None:
    """A millisecond figure as published: 3 decimals, None stays None."""
    return None if value is None else round(value, 3)


def _ms_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class DaemonParts(Protocol):
    """What the reporter reads of the daemon (:class:`edge.daemon.daemon.Daemon` has it): the daemon
    owns a reporter and the reporter only reads, so neither module imports the other."""

    config: DaemonConfig
    model: EdgeModel
    publisher: MessageSink
    systemd: SystemdLink
    capture: CaptureThread
    box: LatestFrameBox
    extraction: Extraction
    buffer: KeypointRingBuffer
    idle: IdleTracker
    sampler: IdleSampler
    worker: InferenceWorker
    segmenter: Segmenter | None
    segments: SegmentWorker | None
    state: DaemonState
    seen: int
    extracted: int
    first_frame_at: float | None
    last_frame_at: float | None


class StatusReporter:
    """Builds the daemon's ``status`` message, publishes it (mirrored to systemd), logs the summary."""

    def __init__(self, daemon: DaemonParts) -> None:
        self._daemon = daemon
        self.started_at = time.monotonic()
        self._lock = threading.Lock()
        self._capture_rate = Rate()
        self._extract_rate = Rate()

    def status(self) -> Status:
        """A snapshot of the daemon's health for the ``status`` topic."""
        d = self._daemon
        with self._lock:
            capture_fps = self._capture_rate.update(d.capture.captured)
            extraction_fps = self._extract_rate.update(d.extracted)
        last = d.last_frame_at
        latency_p50, latency_p95 = d.worker.latency_percentiles()
        camera = d.capture.state
        state, idle = d.state, d.idle.idle
        if state != "stopping" and camera in ("connecting", "lost"):
            # No frames: not "running". Never connected yet → still "starting"; lost → "idle":
            # inference is paused and the buffer was cleared (see Daemon._forget_lost_scene).
            state, idle = (state if camera == "connecting" else "idle"), True
        return Status(
            camera=camera,
            source=redact(d.config.source),
            encrypted=bool(getattr(d.publisher, "encrypted", False)),
            capture_fps=round(max(0.0, capture_fps), 3),
            extraction_fps=round(max(0.0, extraction_fps), 3),
            dropped_frames=d.box.dropped,
            inference_p50_ms=_ms(d.worker.p50_ms),
            buffer_fill=d.buffer.fill,
            idle=idle,
            model=ModelInfo(d.model.name, d.model.sha256),
            uptime_s=round(time.monotonic() - self.started_at, 3),
            version=__version__,
            state=state,
            extraction_mode=d.sampler.mode,
            short_segments=0 if d.segmenter is None else d.segmenter.short,
            errors=ErrorCounters(
                extraction=d.extraction.errors,
                inference=d.worker.errors,
                frames=d.capture.bad_frames,
            ),
            last_frame_age_s=None if last is None else round(max(0.0, time.monotonic() - last), 3),
            latency_p50_ms=_ms(latency_p50),
            latency_p95_ms=_ms(latency_p95),
        )

    def publish(self) -> None:
        """Send one ``status`` message and mirror it to systemd's ``STATUS=``."""
        status = self.status()
        self._daemon.publisher.send(status)
        self._daemon.systemd.status(status)

    def log_summary(self) -> None:
        """The one ``summary:`` line at exit (benchmarks/bench_daemon.py parses it)."""
        d = self._daemon
        first, last = d.first_frame_at, d.last_frame_at
        elapsed = (last - first) if first is not None and last is not None else 0.0
        fps = (d.extracted - 1) / elapsed if elapsed > 0 else 0.0
        p50, p95 = d.worker.latency_percentiles()
        seg = d.segments
        s50, s95 = (None, None) if seg is None else (seg.latency_percentile(50), seg.latency_percentile(95))
        log.info(
            "summary: frames=%d extraction_fps=%.2f windows=%d skipped=%d signs=%d dropped=%d "
            "errors(extraction=%d inference=%d frames=%d) latency_ms(p50=%s p95=%s) "
            "segments=%d short=%d segment_latency_ms(p50=%s p95=%s) seen=%d wakeups=%d "
            "idle_looks=%d idle_gated=%d",
            d.extracted,
            fps,
            d.worker.completed,
            d.worker.skipped,
            d.worker.signs,
            d.box.dropped,
            d.extraction.errors,
            d.worker.errors,
            d.capture.bad_frames,
            _ms_text(p50),
            _ms_text(p95),
            0 if seg is None else seg.completed,
            0 if d.segmenter is None else d.segmenter.short,
            _ms_text(s50),
            _ms_text(s95),
            d.seen,
            len(d.sampler.wake_ms),
            d.sampler.looks,
            d.sampler.gated,
        )
