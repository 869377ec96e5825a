"""The ``slr-edge run`` pipeline: capture → extraction → ring buffer → inference → ZeroMQ.

Threads, one job each (the device has 2 cores; extraction and inference must overlap):

* **capture** (:class:`edge.camera.capture.CaptureThread`): reads the source into a one-slot box that
  always holds the newest frame (live sources drop stale frames; files are paced, never dropped).
* **main** (:meth:`Daemon.run`): asks the idle duty cycle (:class:`edge.daemon.idle.IdleSampler`)
  what to do with each frame, extracts the ones it says (:class:`edge.daemon.extraction.Extraction`),
  and feeds their keypoints to the ring buffer and segmenter; every ``stride`` frames, if the
  window holds hands and the scene is not idle, hands the window to inference; hands each
  finished signing episode (:mod:`edge.recognition.segmenter`) to the segment thread; pings the
  systemd watchdog only while it makes progress, so a hung pipeline gets restarted.
* **inference** (:class:`edge.recognition.inference_worker.InferenceWorker`): a one-slot queue; if it
  is still busy when a new window comes, the newer window replaces the pending one (counted as
  skipped), so inference can never stall capture or extraction. Classifies the window the way
  ``slr-predict`` classifies a clip (:func:`edge.recognition.classify.classify_window`) and publishes
  ``prediction`` and ``sign``.
* **segments** (:class:`edge.recognition.segment_worker.SegmentWorker`): classifies each episode as a
  whole clip (as ``slr-predict`` does) and publishes ``segment``; a FIFO, so no episode is lost to
  a pending window.
* **status** (:class:`edge.daemon.status.StatusThread`): publishes ``status`` every ``status_interval_s``.
* **preview** (:class:`edge.daemon.preview.PreviewWorker`): small JPEGs + keypoints, ≤ 5/s, only
  while a client subscribes to ``preview``.

Idle duty cycle and motion gate (:mod:`edge.daemon.idle`): after ``idle_after_s`` without hands,
MediaPipe looks at one frame per ``1/idle_fps`` seconds of capture time (and not at all while the
scene is still, except every ``idle_keepalive_s``); the frames in between are held, and when a
look finds a hand they are extracted in order, so no hand frame is lost or delayed.

The path of one frame through this module: :meth:`Daemon.run` takes it from the box,
:meth:`Daemon._process` gets the cycle's decision and extracts, :meth:`Daemon._use` feeds the
buffer, segmenter and inference.

Publishing goes straight through :class:`edge.transport.publisher.Publisher`, which serialises its socket
with a lock and never blocks (a stalled subscriber only loses its own messages). systemd
(``Type=notify``): :mod:`edge.daemon.systemd` says when ``READY=1`` and ``WATCHDOG=1`` are sent.

Failure policy: everything that can be checked before start fails fast in
:func:`edge.daemon.lifecycle.build_daemon`; everything that goes wrong while running (a bad frame,
an extraction or inference error, a camera unplugged) is logged (rate-limited), counted in
``status`` and survived.

Live sources are opened by the capture thread only, after the socket is bound: a network camera
that never answers costs ``open_timeout_s`` per attempt there, while the daemon already publishes
``status`` and answers signals (:func:`edge.daemon.lifecycle.run_daemon`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque

import numpy as np

from edge.camera.capture import CapturedFrame, CaptureThread, LatestFrameBox
from edge.camera.sources import VideoSource, is_live_spec, open_source
from edge.contract.layout import has_hands
from edge.contract.protocol import DaemonState, ExtractionMode
from edge.daemon.config import DaemonConfig
from edge.daemon.extraction import Extraction
from edge.daemon.idle import Action, IdleSampler
from edge.daemon.preview import PreviewWorker
from edge.daemon.status import StatusReporter, StatusThread
from edge.daemon.systemd import SystemdLink
from edge.keypoints.holistic import Extractor
from edge.keypoints.ring_buffer import KeypointRingBuffer
from edge.recognition.decisions import IdleTracker
from edge.recognition.inference import EdgeModel
from edge.recognition.inference_worker import InferenceWorker
from edge.recognition.segment_worker import SegmentWorker
from edge.recognition.segmenter import Segmenter
from edge.transport.publisher import MessageSink
from edge.util.sdnotify import SystemdNotifier

log = logging.getLogger(__name__)

#: Shutdown budget for joining all threads together; stays well under systemd's and the tests' 2 s.
JOIN_BUDGET_S = 1.2
#: How long an ended file waits for its last window's inference before exiting.
DRAIN_TIMEOUT_S = 30.0


class Daemon:
    """Owns the pipeline's threads and state; built by :func:`edge.daemon.lifecycle.build_daemon`."""

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
        self.extraction = Extraction(extractor)
        self.publisher = publisher
        self.endpoint: str = getattr(publisher, "endpoint", config.endpoint)
        self.systemd = SystemdLink(notifier or SystemdNotifier())
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
        self.reporter = StatusReporter(self)
        self.status_thread = StatusThread(self.reporter.publish, config.status_interval_s)
        self.preview = PreviewWorker(publisher)  # camera preview, only while a client watches
        self.buffer = KeypointRingBuffer(model.window)
        self.idle = IdleTracker(config.idle_after_s)
        self.sampler = IdleSampler(config, lambda: self.capture.fps)
        self.stop_event = threading.Event()
        self.state: DaemonState = "starting"
        #: Frames taken from the capture (extracted or skipped by the duty cycle): strides count these.
        self.seen = 0
        self.extracted = 0
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self._connection = 0

    # -- the idle cycle's and extraction's figures, under the names status and tests know ----

    @property
    def mode(self) -> ExtractionMode:
        return self.sampler.mode

    @property
    def idle_looks(self) -> int:
        return self.sampler.looks

    @property
    def gated(self) -> int:
        return self.sampler.gated

    @property
    def wake_ms(self) -> deque[float]:
        return self.sampler.wake_ms

    @property
    def extraction_errors(self) -> int:
        return self.extraction.errors

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

    # -- main loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Run until a stop request or the end of a file; returns the exit code (0; 1 if capture died)."""
        self.worker.start()
        if self.segments is not None:
            self.segments.start()
        self.capture.start()
        self.status_thread.start()
        self.preview.start()
        code = 0
        try:
            while not self.stop_event.is_set():
                item = self.box.get(timeout=0.2)
                if item is not None:
                    if item.connection != self._connection:
                        self._new_connection(item.connection)
                    self.seen += 1
                    self._process(item, self.seen)
                elif self.box.finished:  # EOF (or capture ended): flush the last window, then stop
                    if not self._finish_file():
                        code = 1  # the capture thread died: let the supervisor restart us
                    break
                if self.capture.state == "lost":  # the scene is gone: the episode ends here
                    self._end_episode()
                    if self.buffer.fill:
                        self._forget_lost_scene()
                if self.capture.state == "lost" or self.capture.failed_opens:
                    # up and waiting for a camera: systemd can't help by restarting
                    self.systemd.ready(self.endpoint)
                # a gated sample is progress too
                self.systemd.alive(self.extracted + self.sampler.gated, waiting=self.capture.state != "ok")
        finally:
            self._shutdown()
        return code

    def _new_connection(self, connection: int) -> None:
        """A reconnect: never mix the old scene's frames with the new one's."""
        if self._connection:
            self.buffer.clear()
            self.extractor.reset()
            self.worker.reset_decisions()
            self._end_episode()
            self.sampler.full_rate()
        self._connection = connection

    def _forget_lost_scene(self) -> None:
        """The camera is gone: its buffered frames are history, not a window to infer on."""
        self.buffer.clear()
        self.extractor.reset()
        self.worker.reset_decisions()

    def _process(self, item: CapturedFrame, seq: int) -> None:
        """One captured frame: the idle cycle's decision, the extraction it calls for, the use."""
        decision = self.sampler.offer(item, seq)
        if decision.action in (Action.HOLD, Action.SKIP):
            return
        kp = self.extraction.extract(item.frame)
        if kp is None:
            return
        if decision.action is Action.LOOK:
            decision = self.sampler.looked(item, seq, bool(has_hands(kp)))
        if decision.action is not Action.WAKE:  # full rate, or an idle sample without hands
            self._use(kp, item, seq)
            return
        # A sample showed a hand: back to full rate, replaying the held frames and the sample in order.
        self.buffer.clear()  # sparse idle frames would skew the first window's resampling
        self.extraction.forget(item.frame.shape)  # MediaPipe forgets the out-of-order sample
        first_hand: CapturedFrame | None = None
        for held, held_seq in decision.replay:
            kp = self.extraction.extract(held.frame)
            if kp is not None and self._use(kp, held, held_seq) and first_hand is None:
                first_hand = held
        self.sampler.woke(first_hand, len(decision.replay), decision.woke_at)

    def _use(self, kp: np.ndarray, item: CapturedFrame, seq: int) -> bool:
        """One extracted frame → ring buffer, idle tracker, segmenter, and a window every ``stride``."""
        frame = item.frame
        self.buffer.append(kp, frame.timestamp, frame.captured_at)
        self.preview.offer(frame.rgb, kp, frame.timestamp)
        hands = self.buffer.last_has_hands
        self.extracted += 1
        self.last_frame_at = time.monotonic()
        if self.first_frame_at is None:
            self.first_frame_at = self.last_frame_at
        idle = self.idle.update(hands, frame.timestamp)
        self.sampler.used(item, idle)
        self.state = "idle" if idle else "running"
        if self.segmenter is not None and self.segments is not None:
            episode = self.segmenter.push(kp, frame.timestamp, hands, frame.captured_at)
            if episode is not None:
                self.segments.submit(episode)
        self.systemd.ready(self.endpoint)
        if self.windows_on and seq % self.config.stride == 0:
            self.worker.offer(self.buffer, self.idle.idle)
        return hands

    def _end_episode(self) -> None:
        """Classify the open episode now (end of input, reconnect)."""
        if self.segmenter is not None and self.segments is not None:
            episode = self.segmenter.flush(time.time())
            if episode is not None:
                self.segments.submit(episode)

    def _finish_file(self) -> bool:
        """At the end of a file: infer on the last frames, wait for it; False if capture ended otherwise."""
        if self.stop_event.is_set():
            return True
        if self.capture.state != "eof":
            log.error("capture ended unexpectedly (camera %s)", self.capture.state)
            return False
        newest = self.sampler.newest_held()  # the last frames may hold a hand: look at the newest
        if newest is not None:
            self._process(*newest)
        if self.windows_on and self.seen % self.config.stride and self.last_frame_at is not None:
            self.worker.offer(self.buffer, self.idle.idle)
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
        self.systemd.stopping()
        self.capture.stop()
        self.worker.stop()
        if self.segments is not None:
            self.segments.stop()
        self.status_thread.stop()
        self.preview.stop()
        try:
            self.reporter.publish()
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
        self.reporter.log_summary()
