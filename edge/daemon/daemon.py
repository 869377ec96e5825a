"""The ``slr-edge run`` pipeline: capture → extraction → ring buffer → inference → ZeroMQ.

Threads, one job each (the device has 2 cores; extraction and inference must overlap):

* **capture** (:class:`edge.camera.capture.CaptureThread`): reads the source into a one-slot box that
  always holds the newest frame (live sources drop stale frames; files are paced, never dropped).
* **main** (:meth:`Daemon.run`): Holistic extraction → ring buffer and segmenter; every ``stride``
  frames, if the window holds hands and the scene is not idle, hands the window to inference;
  hands each finished signing episode (:mod:`edge.recognition.segmenter`) to the segment thread;
  pings the systemd watchdog only while it makes progress, so a hung pipeline gets restarted.
  While idle it duty-cycles extraction (see below).
* **inference** (:class:`edge.recognition.inference_worker.InferenceWorker`): a one-slot queue; if it
  is still busy when a new window comes, the newer window replaces the pending one (counted as
  skipped), so inference can never stall capture or extraction. Classifies the window the way
  ``slr-predict`` classifies a clip (:func:`edge.recognition.classify.classify_window`) and publishes
  ``prediction`` and ``sign``.
* **segments** (:class:`edge.recognition.segment_worker.SegmentWorker`): classifies each episode as a
  whole clip (as ``slr-predict`` does) and publishes ``segment``; a FIFO, so no episode is lost to
  a pending window.
* **status** (:class:`StatusThread`): publishes ``status`` every ``status_interval_s``.
* **preview** (:class:`edge.daemon.preview.PreviewWorker`): small JPEGs + keypoints, ≤ 5/s, only
  while a client subscribes to ``preview``.

Idle duty cycle: after ``idle_after_s`` without hands, MediaPipe runs only on one frame per
``1/idle_fps`` seconds of capture time; the capture keeps reading (live sources deliver only the
newest frame anyway) and the frames since the last sample are kept, not extracted. When a sample
shows a hand the daemon wakes: the sparse idle frames are dropped from the ring buffer (they must
not shape the first window's resampling), MediaPipe's tracking is cleared with a blank frame (the
sample was seen out of order), and the kept frames plus the sample are extracted in order. So the
first frame with a hand is not lost or delayed in capture time, and for an empty scene the
keypoints, windows and segments from it on are those of a run without duty cycling.

Motion gate (:mod:`edge.camera.motion`, ``idle_motion``): a due idle sample whose scene has not
changed since MediaPipe last looked and found no hands is not looked at again (its held frames
are dropped as after a look without hands: they showed the same still scene), except once every
``idle_keepalive_s``. A still room or a person standing still with hands down then costs the
capture and ~0.4 ms per sample; a hand raised into view changes the frame, so the sample that
would have seen it without the gate still runs MediaPipe, and the wake-up and replay are as above.

Publishing goes straight through :class:`edge.transport.publisher.Publisher`, which serialises its socket
with a lock and never blocks (a stalled subscriber only loses its own messages).

systemd (``Type=notify``): ``READY=1`` after the first frame is processed, or as soon as the
pipeline is up and waiting for a camera that is not there yet (the first open failed: restarting
cannot make a camera appear, and the unit must not fail its start timeout over it);
``WATCHDOG=1`` from the main loop only while frames are being extracted or the capture is
legitimately waiting (connecting, lost, end of file), so a hung extraction or a camera that
silently stops delivering gets restarted;
``STATUS=`` mirrors each status message; ``STOPPING=1`` on shutdown.

Failure policy: everything that can be checked before start (config, model, a file source,
the endpoint) fails fast with a one-line error and exit code 2; everything that goes wrong while
running (a bad frame, an extraction or inference error, a camera unplugged) is logged
(rate-limited), counted in ``status`` and survived.

Live sources are opened by the capture thread only, after the socket is bound: a network camera
that never answers costs ``open_timeout_s`` per attempt there, while the daemon already publishes
``status`` and answers signals. SIGTERM/SIGINT end the daemon with exit code 0 in every state,
start-up included (the loading of the model and of MediaPipe is abandoned).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from types import FrameType

import numpy as np

from edge import __version__
from edge.camera.capture import CapturedFrame, CaptureThread, LatestFrameBox, ThrottledLog
from edge.camera.frame import BadFrame
from edge.camera.motion import MotionGate
from edge.camera.sources import (
    VideoSource,
    camera_path,
    check_source_path,
    is_live_spec,
    open_source,
    source_kind,
)
from edge.contract.layout import has_hands
from edge.contract.protocol import DaemonState, ErrorCounters, ExtractionMode, ModelInfo, Status
from edge.daemon.config import ConfigError, DaemonConfig
from edge.daemon.preview import PreviewWorker
from edge.keypoints.holistic import Extractor
from edge.keypoints.ring_buffer import KeypointRingBuffer
from edge.recognition.decisions import IdleTracker
from edge.recognition.inference import EdgeModel, load_model
from edge.recognition.inference_worker import InferenceWorker, WindowJob
from edge.recognition.segment_worker import SegmentWorker
from edge.recognition.segmenter import Segmenter
from edge.transport.publisher import MessageSink, is_loopback
from edge.util.redact import redact
from edge.util.sdnotify import SystemdNotifier

log = logging.getLogger(__name__)

#: Shutdown budget for joining all threads together; stays well under systemd's and the tests' 2 s.
JOIN_BUDGET_S = 1.2
#: How long an ended file waits for its last window's inference before exiting.
DRAIN_TIMEOUT_S = 30.0
#: Frames kept between two idle samples at most (a fast camera with a low ``idle_fps``).
MAX_HELD_FRAMES = 64
#: While idle and the scene is still, seconds of capture time between motion measures (~0.3 ms each
#: for 720p): how long a hand raised into a still scene waits for its look, instead of up to a
#: whole idle sample period. Every frame would cost three times as much for 67 ms less.
MOTION_CHECK_S = 0.1


class StatusThread(threading.Thread):
    """Publishes the daemon's :meth:`Daemon.status` every ``interval`` seconds (and mirrors it to systemd)."""

    def __init__(self, daemon_: Daemon, interval: float) -> None:
        super().__init__(name="status", daemon=True)
        self._daemon = daemon_
        self._interval = interval
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._daemon.publish_status()
            except Exception as exc:  # a status message must never take the daemon down
                log.error("status publishing failed: %s", exc)
            self._stop_event.wait(self._interval)


class _Rate:
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


class Daemon:
    """Owns the pipeline's threads and state; construct with :func:`build_daemon`, then :meth:`run`."""

    def __init__(
        self,
        config: DaemonConfig,
        model: EdgeModel,
        extractor: Extractor,
        publisher: MessageSink,
        source: VideoSource | None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.extractor = extractor
        self.publisher = publisher
        self.notifier = notifier or SystemdNotifier()
        self.live = is_live_spec(config.source)
        self.box = LatestFrameBox(drop_stale=self.live)
        opener = functools.partial(
            open_source,
            open_timeout_s=config.open_timeout_s,
            read_timeout_s=config.read_timeout_s,
            max_frame_pixels=config.max_frame_pixels,
        )
        self.capture = CaptureThread(config.source, self.box, source=source, loop=config.loop, opener=opener)
        self.worker = InferenceWorker(model, publisher, config)
        self.windows_on = config.publish != "segments"
        self.segmenter: Segmenter | None = None
        self.segments: SegmentWorker | None = None
        if config.publish != "windows":
            self.segmenter = Segmenter.from_settings(config, model.fps)
            self.segments = SegmentWorker(model, publisher, config.top_k)
        self.status_thread = StatusThread(self, config.status_interval_s)
        self.preview = PreviewWorker(publisher)  # camera preview, only while a client watches
        self.buffer = KeypointRingBuffer(model.window)
        self.idle = IdleTracker(config.idle_after_s)
        self.stop_event = threading.Event()
        self.state: DaemonState = "starting"
        self.mode: ExtractionMode = "full"
        #: Frames taken from the capture (extracted or skipped by the duty cycle): strides count these.
        self.seen = 0
        self.extracted = 0
        #: Wake-ups: wall time from the first frame with a hand reaching extraction to full rate.
        self.wake_ms: deque[float] = deque(maxlen=1000)
        self._held: deque[tuple[CapturedFrame, int]] = deque(maxlen=MAX_HELD_FRAMES)
        #: Capture time at which the idle sampler takes its next frame (None: the next frame).
        self._next_sample_ts: float | None = None
        #: Capture time of the next motion measure while the scene is still (None: the next due frame).
        self._next_check_ts: float | None = None
        self._blank: np.ndarray | None = None
        self.motion = MotionGate(config.idle_motion / 100.0)
        #: Capture time of MediaPipe's last look without hands while idle (None: none yet).
        self._looked_ts: float | None = None
        #: Idle samples MediaPipe looked at / skipped because the scene had not changed.
        self.idle_looks = 0
        self.gated = 0
        self.extraction_errors = 0
        self.started_at = time.monotonic()
        self._status_lock = threading.Lock()
        self._capture_rate = _Rate()
        self._extract_rate = _Rate()
        self._throttled = ThrottledLog(log)
        self._connection = 0
        self._ready_sent = False
        self._first_frame_at: float | None = None
        self._last_frame_at: float | None = None

    # -- control ----------------------------------------------------------------------------

    def request_stop(self, reason: str = "") -> None:
        """Ask the pipeline to stop (signal handlers call this); returns at once."""
        if not self.stop_event.is_set():
            log.info("stopping%s", f" ({reason})" if reason else "")
        self.stop_event.set()
        self.box.finish()
        self.worker.stop()  # also ends a drain at the end of a file at once
        if self.segments is not None:
            self.segments.stop()

    def status(self) -> Status:
        """A snapshot of the daemon's health for the ``status`` topic."""
        with self._status_lock:
            capture_fps = self._capture_rate.update(self.capture.captured)
            extraction_fps = self._extract_rate.update(self.extracted)
        p50 = self.worker.p50_ms
        last = self._last_frame_at
        latency_p50, latency_p95 = self.worker.latency_percentiles()
        camera = self.capture.state
        state, idle = self.state, self.idle.idle
        if state != "stopping" and camera in ("connecting", "lost"):
            # No frames: not "running". Never connected yet → still "starting"; lost → "idle":
            # inference is paused and the buffer was cleared (see _forget_lost_scene).
            state, idle = (state if camera == "connecting" else "idle"), True
        return Status(
            camera=camera,
            source=redact(self.config.source),
            encrypted=bool(getattr(self.publisher, "encrypted", False)),
            capture_fps=round(max(0.0, capture_fps), 3),
            extraction_fps=round(max(0.0, extraction_fps), 3),
            dropped_frames=self.box.dropped,
            inference_p50_ms=_ms(p50),
            buffer_fill=self.buffer.fill,
            idle=idle,
            model=ModelInfo(self.model.name, self.model.sha256),
            uptime_s=round(time.monotonic() - self.started_at, 3),
            version=__version__,
            state=state,
            extraction_mode=self.mode,
            short_segments=0 if self.segmenter is None else self.segmenter.short,
            errors=ErrorCounters(
                extraction=self.extraction_errors,
                inference=self.worker.errors,
                frames=self.capture.bad_frames,
            ),
            last_frame_age_s=None if last is None else round(max(0.0, time.monotonic() - last), 3),
            latency_p50_ms=_ms(latency_p50),
            latency_p95_ms=_ms(latency_p95),
        )

    def publish_status(self) -> None:
        status = self.status()
        self.publisher.send(status)
        self.notifier.status(
            f"{status.state}, camera {status.camera}, {status.extraction_fps:.1f} frames/s extracted"
            f"{' (idle duty cycle)' if status.extraction_mode == 'idle' else ''}, "
            f"{status.dropped_frames} dropped, inference p50 "
            f"{'-' if status.inference_p50_ms is None else f'{status.inference_p50_ms:.0f} ms'}"
        )

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Run until a stop request or the end of a file; returns the exit code (0; 1 if capture died)."""
        self.worker.start()
        if self.segments is not None:
            self.segments.start()
        self.capture.start()
        self.status_thread.start()
        self.preview.start()
        watchdog = self.notifier.watchdog_interval()
        last_ping = 0.0
        pinged_progress = 0
        code = 0
        try:
            while not self.stop_event.is_set():
                item = self.box.get(timeout=0.2)
                if item is not None:
                    self._process(item)
                elif self.box.finished:  # EOF (or capture ended): flush the last window, then stop
                    if not self._finish_file():
                        code = 1  # the capture thread died: let the supervisor restart us
                    break
                if self.capture.state == "lost":  # the scene is gone: the episode ends here
                    self._end_episode()
                    if self.buffer.fill:
                        self._forget_lost_scene()
                if not self._ready_sent and (self.capture.state == "lost" or self.capture.failed_opens):
                    # Up and waiting for a camera: tell systemd we started (it can't help by restarting).
                    self._send_ready()
                if watchdog is not None and time.monotonic() - last_ping >= watchdog / 2:
                    waiting = self.capture.state != "ok"
                    progress = self.extracted + self.gated  # a gated sample is progress too
                    if progress > pinged_progress or waiting:
                        self.notifier.watchdog()
                        last_ping, pinged_progress = time.monotonic(), progress
        finally:
            self._shutdown()
        return code

    def _forget_lost_scene(self) -> None:
        """The camera is gone: its buffered frames are history, not a window to infer on."""
        self.buffer.clear()
        self.extractor.reset()
        self.worker.reset_decisions()

    def _send_ready(self) -> None:
        self._ready_sent = True
        self.notifier.ready()
        log.info("ready: publishing on %s", getattr(self.publisher, "endpoint", self.config.endpoint))

    def _process(self, item: CapturedFrame) -> None:
        if item.connection != self._connection:
            if self._connection:  # a reconnect: never mix the old scene's frames with the new one's
                self.buffer.clear()
                self.extractor.reset()
                self.worker.reset_decisions()
                self._end_episode()
                self._held.clear()
                self.mode, self._next_sample_ts, self._next_check_ts = "full", None, None
                self._forget_look()
            self._connection = item.connection
        self.seen += 1
        if self.mode == "idle":
            self._sample(item, self.seen)
        else:
            self._extract_and_use(item, self.seen)

    def _sample(self, item: CapturedFrame, seq: int) -> None:
        """Idle: look at most once per ``1/idle_fps`` s of capture time, hold the others; wake on a hand.

        Looks follow a fixed schedule (:meth:`_sample_due`). With the motion gate, a due frame is
        first measured: a still scene (unchanged since the last look) is not looked at, unless
        ``idle_keepalive_s`` have passed since that look, and its held frames are let go. A still
        scene does not spend the schedule (nor does the keep-alive look), so the frames after it
        are measured every :data:`MOTION_CHECK_S` and the first that changed is looked at at once:
        a hand raised into a still room wakes the daemon within that interval plus one look, not
        up to a whole sample period later. A scene that keeps changing (a person moving, a screen)
        is looked at once per period, as without the gate.
        """
        ts = item.frame.timestamp
        keepalive = self._keepalive_due(ts)
        if not self._sample_due(ts) or not (keepalive or self._check_due(ts)):
            self._held.append((item, seq))
            return
        if not keepalive and not self._changed(item):
            # Still: the schedule is not spent, the next measure comes soon and a change is looked at.
            self._next_check_ts = ts + MOTION_CHECK_S
            self._held.clear()  # the still scene the last look found without hands
            self.gated += 1
            return
        kp = self._extract(item)
        if kp is None:
            return
        self.idle_looks += 1
        if keepalive and self.motion.area > 0:  # a look on time, not on a change: nor spent
            self._next_check_ts = ts + MOTION_CHECK_S
        else:
            self._schedule_next_sample(ts)
        if not has_hands(kp):
            self._held.clear()  # nothing to replay: the scene was still empty when they were taken
            self._looked(item)
            self._use(kp, item, seq)
            return
        self._wake(item, seq)

    def _keepalive_due(self, ts: float) -> bool:
        """Whether MediaPipe must look at the idle sample at ``ts`` whatever the motion gate says."""
        last = self._looked_ts
        tolerance = 0.5 / (self.capture.fps or 30.0)
        # no look yet, keep-alive due, or time went back (a file looped)
        return last is None or not 0.0 <= ts - last < self.config.idle_keepalive_s - tolerance

    def _check_due(self, ts: float) -> bool:
        """Whether a due frame gets the motion measure (every :data:`MOTION_CHECK_S` in a still scene)."""
        at = self._next_check_ts
        tolerance = 0.5 / (self.capture.fps or 30.0)
        return at is None or not at - MOTION_CHECK_S - tolerance <= ts < at - tolerance

    def _changed(self, item: CapturedFrame) -> bool:
        """The motion gate on a due sample: whether it differs from the last look's frame."""
        try:  # a still sample is never converted to RGB (nor, from a JPEG stream, decoded)
            pixels, bgr = item.frame.small_pixels()
        except BadFrame:
            return True  # MediaPipe looks, and the frame's failure is counted there
        return self.motion.changed(pixels, bgr=bgr)

    def _looked(self, item: CapturedFrame) -> None:
        """MediaPipe found no hands in this frame: the motion gate compares later samples with it."""
        self._looked_ts = item.frame.timestamp
        try:
            pixels, bgr = item.frame.small_pixels()
        except BadFrame:
            self.motion.reset()  # no reference: the next due sample is looked at
            return
        self.motion.looked(pixels, bgr=bgr)

    def _forget_look(self) -> None:
        self._looked_ts = None
        self.motion.reset()

    def _sample_due(self, ts: float) -> bool:
        """Whether the idle sampler takes the frame captured at ``ts``.

        Samples follow a fixed schedule (one per ``1/idle_fps`` s) and a frame within half a frame
        period of the due time counts as due. Comparing with the last sample's timestamp instead
        would skip the frame that arrives a hair early (timestamps jitter): at 30 fps and 3 samples
        per second every interval would become 11 frames, and a wake-up a frame later.
        """
        due = self._next_sample_ts
        if due is None:
            return True
        period, tolerance = self._idle_period, 0.5 / (self.capture.fps or 30.0)
        return not due - period - tolerance <= ts < due - tolerance  # earlier: time went back

    def _schedule_next_sample(self, ts: float) -> None:
        due, period = self._next_sample_ts, self._idle_period
        self._next_check_ts = None  # the next due frame is measured (or looked at) at once
        if due is not None and abs(ts - due) < period / 2:  # on schedule: keep it
            self._next_sample_ts = due + period
        else:  # the first sample, one after a still spell, or time jumped (a loop, a stall): from here
            self._next_sample_ts = ts + period

    @property
    def _idle_period(self) -> float:
        """Seconds of capture time between idle samples (only read while ``idle_fps`` > 0)."""
        return 1.0 / self.config.idle_fps

    def _wake(self, item: CapturedFrame, seq: int) -> None:
        """A sample showed a hand: back to full rate, replaying the held frames and the sample in order."""
        woke_at = time.time()
        replay = [*self._held, (item, seq)]
        self._held.clear()
        self.mode, self._next_sample_ts, self._next_check_ts = "full", None, None
        self._forget_look()
        self.buffer.clear()  # sparse idle frames would skew the first window's resampling
        shape = item.frame.shape
        if self._blank is None or self._blank.shape != shape:
            self._blank = np.zeros(shape, np.uint8)
        try:  # a blank frame detects nothing, so MediaPipe forgets the out-of-order sample
            self.extractor.extract(self._blank)
        except Exception as exc:
            self._throttled(logging.WARNING, "extract", "extraction failed on a blank frame: %s", exc)
        first_hand: CapturedFrame | None = None
        for held, held_seq in replay:
            hands = self._extract_and_use(held, held_seq)
            if hands and first_hand is None:
                first_hand = held
        if first_hand is not None:
            self.wake_ms.append((woke_at - first_hand.frame.captured_at) * 1000.0)
            log.info(
                "awake: full-rate extraction %.0f ms after the first frame with a hand (%d frames replayed)",
                self.wake_ms[-1],
                len(replay),
            )

    def _extract(self, item: CapturedFrame) -> np.ndarray | None:
        try:
            return self.extractor.extract(item.frame.rgb)
        except Exception as exc:
            self.extraction_errors += 1
            self._throttled(
                logging.WARNING, "extract", "extraction failed on frame %d: %s", item.frame.index, exc
            )
            return None

    def _extract_and_use(self, item: CapturedFrame, seq: int) -> bool:
        """Extract one frame at full rate and use it; whether it had hands."""
        kp = self._extract(item)
        return False if kp is None else self._use(kp, item, seq)

    def _use(self, kp: np.ndarray, item: CapturedFrame, seq: int) -> bool:
        """One extracted frame → ring buffer, idle tracker, segmenter, and a window every ``stride``."""
        frame = item.frame
        self.buffer.append(kp, frame.timestamp, frame.captured_at)
        self.preview.offer(frame.rgb, kp, frame.timestamp)
        hands = self.buffer.last_has_hands
        self.extracted += 1
        if self._first_frame_at is None:
            self._first_frame_at = time.monotonic()
        self._last_frame_at = time.monotonic()
        idle = self.idle.update(hands, frame.timestamp)
        if not idle:
            self.mode = "full"
        elif self.mode == "full" and self.config.idle_fps > 0:
            self.mode, self._next_sample_ts = "idle", frame.timestamp + self._idle_period
            self._next_check_ts = None
            self._looked(item)  # the last full-rate look, without hands: the gate's first reference
        self.state = "idle" if idle else "running"
        if self.segmenter is not None and self.segments is not None:
            episode = self.segmenter.push(kp, frame.timestamp, hands, frame.captured_at)
            if episode is not None:
                self.segments.submit(episode)
        if not self._ready_sent:
            self._send_ready()
        if self.windows_on and seq % self.config.stride == 0:
            self._offer_window()
        return hands

    def _end_episode(self) -> None:
        """Classify the open episode now (end of input, reconnect)."""
        if self.segmenter is not None and self.segments is not None:
            episode = self.segmenter.flush(time.time())
            if episode is not None:
                self.segments.submit(episode)

    def _offer_window(self) -> bool:
        if self.idle.idle or self.buffer.hand_frames == 0:
            self.worker.reset_decisions()
            return False
        raw, ts = self.buffer.window()
        self.worker.submit(WindowJob(raw, ts, self.buffer.newest_captured_at))
        return True

    def _finish_file(self) -> bool:
        """At the end of a file: infer on the last frames, wait for it; False if capture ended otherwise."""
        if self.stop_event.is_set():
            return True
        if self.capture.state != "eof":
            log.error("capture ended unexpectedly (camera %s)", self.capture.state)
            return False
        if self.mode == "idle" and self._held:  # the last frames may hold a hand: look at the newest
            self._next_sample_ts = self._next_check_ts = None
            self._sample(*self._held.pop())
        if self.windows_on and self.seen % self.config.stride and self._last_frame_at is not None:
            self._offer_window()
        self._end_episode()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        drained = self.worker.drain(DRAIN_TIMEOUT_S)
        if self.segments is not None:
            drained &= self.segments.drain(max(0.0, deadline - time.monotonic()))
        if not drained:
            log.warning("last window or segment still running after %.0f s; exiting anyway", DRAIN_TIMEOUT_S)
        log.info(
            "end of input: %d frames extracted, %d windows inferred", self.extracted, self.worker.completed
        )
        return True

    def _shutdown(self) -> None:
        """Bounded shutdown: every join has a timeout, sockets close without lingering."""
        self.state = "stopping"
        self.notifier.stopping()
        self.capture.stop()
        self.worker.stop()
        if self.segments is not None:
            self.segments.stop()
        self.status_thread.stop()
        self.preview.stop()
        try:
            self.publish_status()
        except Exception as exc:
            log.debug("final status not sent: %s", exc)
        threads: list[threading.Thread] = [self.capture, self.worker, self.status_thread, self.preview]
        if self.segments is not None:
            threads.append(self.segments)
        deadline = time.monotonic() + JOIN_BUDGET_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s thread did not stop within %.1f s", thread.name, JOIN_BUDGET_S)
        time.sleep(0.1)  # let ZeroMQ's I/O thread hand the last messages to the kernel
        try:
            self.extractor.close()
        finally:
            self.publisher.close()
        self._log_summary()

    def _log_summary(self) -> None:
        elapsed = (
            (self._last_frame_at - self._first_frame_at)
            if self._first_frame_at is not None and self._last_frame_at is not None
            else 0.0
        )
        fps = (self.extracted - 1) / elapsed if elapsed > 0 else 0.0
        p50, p95 = self.worker.latency_percentiles()
        seg = self.segments
        s50, s95 = (None, None) if seg is None else (seg.latency_percentile(50), seg.latency_percentile(95))
        log.info(
            "summary: frames=%d extraction_fps=%.2f windows=%d skipped=%d signs=%d dropped=%d "
            "errors(extraction=%d inference=%d frames=%d) latency_ms(p50=%s p95=%s) "
            "segments=%d short=%d segment_latency_ms(p50=%s p95=%s) seen=%d wakeups=%d "
            "idle_looks=%d idle_gated=%d",
            self.extracted,
            fps,
            self.worker.completed,
            self.worker.skipped,
            self.worker.signs,
            self.box.dropped,
            self.extraction_errors,
            self.worker.errors,
            self.capture.bad_frames,
            _ms_text(p50),
            _ms_text(p95),
            0 if seg is None else seg.completed,
            0 if self.segmenter is None else self.segmenter.short,
            _ms_text(s50),
            _ms_text(s95),
            self.seen,
            len(self.wake_ms),
            self.idle_looks,
            self.gated,
        )


def _ms_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


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
