"""The daemon's inference thread: newest window in, ``prediction`` and ``sign`` messages out.

A one-slot queue: if the worker is still busy when a new window comes, the newer window replaces
the pending one (counted as skipped), so inference can never stall capture or extraction. Each
window goes through :func:`edge.runtime.classify.classify_window`, the same path ``slr-predict``
takes, and its top class feeds :class:`edge.runtime.decisions.SignDecider`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.contract.protocol import Prediction, SignEvent
from edge.runtime.capture import ThrottledLog
from edge.runtime.classify import PROB_DECIMALS, WindowModel, classify_window
from edge.runtime.config import DaemonConfig
from edge.runtime.decisions import SignDecider
from edge.runtime.publisher import MessageSink

log = logging.getLogger(__name__)

LATENCY_SAMPLES = 200
#: Niceness added to the inference thread (see :func:`_lower_priority`).
INFERENCE_NICENESS = 5


@dataclass(frozen=True)
class WindowJob:
    """A copy of the buffer handed to inference, plus when its newest frame reached extraction."""

    raw: np.ndarray
    ts: np.ndarray
    available_at: float


def _lower_priority(niceness: int) -> None:
    """Make the calling thread yield the CPU to extraction when both want it (Linux: per-thread nice).

    On 2 cores, capture decoding, MediaPipe and ONNX Runtime (intra-op 1: it computes in this
    thread) compete. A late prediction costs little; a late extraction loses frames for every
    later window. Raising niceness needs no privilege; where it is unsupported nothing happens.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError) as exc:  # not Linux, or a sandbox that forbids it
        log.debug("cannot lower inference priority: %s", exc)


def percentile(values: deque[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values``, or None when there are none yet."""
    return float(np.percentile(np.fromiter(values, float), q)) if values else None


class InferenceWorker(threading.Thread):
    """Runs the model on the newest submitted window and publishes the results."""

    def __init__(self, model: WindowModel, publisher: MessageSink, config: DaemonConfig) -> None:
        super().__init__(name="inference", daemon=True)
        self.model = model
        self.publisher = publisher
        self.config = config
        self.decider = SignDecider(config.threshold, config.consecutive)
        self.errors = 0
        self.skipped = 0
        self.completed = 0
        self.signs = 0
        self.inference_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        #: Wall time from the window's newest frame reaching extraction to its prediction being sent.
        self.publish_latency_ms: deque[float] = deque(maxlen=10_000)
        self._cond = threading.Condition()
        self._pending: WindowJob | None = None
        self._busy = False
        self._stopping = False
        self._reset_requested = False
        self._throttled = ThrottledLog(log)

    def submit(self, job: WindowJob) -> None:
        """Queue ``job``; a job still pending is replaced (and counted as skipped)."""
        with self._cond:
            if self._pending is not None:
                self.skipped += 1
            self._pending = job
            self._cond.notify_all()

    def reset_decisions(self) -> None:
        """A window without hands (or idle): the next decision streak starts from scratch."""
        with self._cond:
            self._reset_requested = True

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is pending or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (self._pending is None and not self._busy) or self._stopping, timeout
            )

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._pending = None
            self._cond.notify_all()

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.inference_ms, 50)

    def run(self) -> None:
        _lower_priority(INFERENCE_NICENESS)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping or self._pending is None:
                    return
                job, self._pending, self._busy = self._pending, None, True
                reset, self._reset_requested = self._reset_requested, False
            try:
                if reset:
                    self.decider.reset()
                self._process(job)
            except Exception as exc:  # a failed window is counted, never fatal
                self.errors += 1
                self._throttled(logging.ERROR, "infer", "inference failed: %s", exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _process(self, job: WindowJob) -> None:
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
        )
        self.publisher.send(prediction)
        self.publish_latency_ms.append((time.time() - job.available_at) * 1000.0)
        self.inference_ms.append(result.inference_ms)
        self.completed += 1
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
                )
            )
