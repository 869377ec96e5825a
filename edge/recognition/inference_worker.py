"""The daemon's inference thread: newest window in, ``prediction`` and ``sign`` messages out.

A one-slot queue: if the worker is still busy when a new window comes, the newer window replaces
the pending one (counted as skipped), so inference can never stall capture or extraction. Each
window goes through :func:`edge.recognition.classify.classify_window`, the same path ``slr-predict``
takes, and its top class feeds :class:`edge.recognition.decisions.SignDecider`.

Every ``prediction`` and ``sign`` carries ``latency_ms``: wall time from the moment the window's
newest frame was read from the source (:attr:`edge.camera.frame.Frame.captured_at`, carried
through extraction and the ring buffer in :class:`WindowJob`) to the moment the message is handed
to ZeroMQ. It includes waiting in the capture box, extraction, waiting for this thread, resampling,
preprocessing and the model, so it is what a subscriber actually experiences (plus transport).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.contract.protocol import Prediction, SignEvent
from edge.keypoints.ring_buffer import KeypointRingBuffer
from edge.recognition.classify import PROB_DECIMALS, WindowModel, classify_window
from edge.recognition.decisions import SignDecider
from edge.recognition.job_worker import LATENCY_SAMPLES, JobWorker, percentile
from edge.transport.publisher import MessageSink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowJob:
    """A copy of the buffer handed to inference, plus when its newest frame was read from the source."""

    raw: np.ndarray
    ts: np.ndarray
    #: Wall-clock ``time.time()`` of the newest frame's capture (the start of ``latency_ms``).
    captured_at: float


def latency_ms_since(captured_at: float) -> float:
    """Milliseconds from ``captured_at`` (wall clock) to now, as published (3 decimals, never negative)."""
    return round(max(0.0, (time.time() - captured_at) * 1000.0), 3)


class WindowSettings(Protocol):
    """The settings that shape window decisions (:class:`edge.daemon.config.DaemonConfig` has them)."""

    @property
    def threshold(self) -> float: ...
    @property
    def consecutive(self) -> int: ...
    @property
    def top_k(self) -> int: ...
    @property
    def resample(self) -> bool: ...


class InferenceWorker(JobWorker[tuple[WindowJob, bool]]):
    """Runs the model on the newest submitted window and publishes the results.

    A job is the window and whether the sign decisions restart before it (a window without hands,
    or idle, came in between), taken together under the lock.
    """

    def __init__(self, model: WindowModel, publisher: MessageSink, config: WindowSettings) -> None:
        super().__init__(name="inference", what="inference")
        self.model = model
        self.publisher = publisher
        self.config = config
        self.decider = SignDecider(config.threshold, config.consecutive)
        self.skipped = 0
        self.signs = 0
        self.inference_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        #: ``latency_ms`` of the last predictions (capture of the newest frame → handed to ZeroMQ).
        self.latency_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._pending: WindowJob | None = None
        self._reset_requested = False

    def submit(self, job: WindowJob) -> None:
        """Queue ``job``; a job still pending is replaced (and counted as skipped)."""
        with self._cond:
            if self._pending is not None:
                self.skipped += 1
            self._pending = job
            self._cond.notify_all()

    def offer(self, buffer: KeypointRingBuffer, idle: bool) -> bool:
        """The buffer's window at a stride point: submitted, unless the scene is idle or shows no hands.

        A window that is not submitted restarts the sign decisions (:meth:`reset_decisions`).
        """
        if idle or buffer.hand_frames == 0:
            self.reset_decisions()
            return False
        raw, ts = buffer.window()
        self.submit(WindowJob(raw, ts, buffer.newest_captured_at))
        return True

    def reset_decisions(self) -> None:
        """A window without hands (or idle): the next decision streak starts from scratch."""
        with self._cond:
            self._reset_requested = True

    @property
    def p50_ms(self) -> float | None:
        """Median time in the model over the last :data:`LATENCY_SAMPLES` windows."""
        return percentile(self.inference_ms, 50)

    def latency_percentiles(self) -> tuple[float | None, float | None]:
        """p50 and p95 of ``latency_ms`` over the last :data:`LATENCY_SAMPLES` predictions."""
        return percentile(self.latency_ms, 50), percentile(self.latency_ms, 95)

    def _has_job(self) -> bool:
        return self._pending is not None

    def _take_job(self) -> tuple[WindowJob, bool]:
        assert self._pending is not None
        job, self._pending = self._pending, None
        reset, self._reset_requested = self._reset_requested, False
        return job, reset

    def _clear_jobs(self) -> None:
        self._pending = None

    def _process(self, job_and_reset: tuple[WindowJob, bool]) -> None:
        job, reset = job_and_reset
        if reset:
            self.decider.reset()
        result = classify_window(
            self.model,
            job.raw,
            job.ts,
            k=self.config.top_k,
            resample=self.config.resample,
            max_frames=self.model.window,
        )
        prediction = Prediction(
            top_k=result.rounded_top_k(),
            window_start=round(result.window_start, 4),
            window_end=round(result.window_end, 4),
            frames_used=result.hand_frames,
            inference_ms=round(result.inference_ms, 3),
            resampled=result.resampled,
            model=self.model.name,
            latency_ms=latency_ms_since(job.captured_at),
        )
        self.publisher.send(prediction)
        self.latency_ms.append(prediction.latency_ms)
        self.inference_ms.append(result.inference_ms)
        decision = self.decider.update(result.best, result.window_start, result.window_end)
        if decision is not None:
            self.signs += 1
            log.info("sign %s (p=%.2f, %d windows)", decision.label, decision.prob, decision.windows)
            self.publisher.send(
                SignEvent(
                    label=decision.label,
                    index=decision.index,
                    prob=round(decision.prob, PROB_DECIMALS),
                    windows=decision.windows,
                    window_start=round(decision.window_start, 4),
                    window_end=round(decision.window_end, 4),
                    latency_ms=latency_ms_since(job.captured_at),
                )
            )
