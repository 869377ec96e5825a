"""The model threads' common loop: take a job, run it off the main loop, count failures, drain, stop.

The daemon has two threads that run the model: the inference thread (sliding windows: a one-slot
queue where a newer window replaces a pending one) and the segment thread (episodes: a bounded
FIFO, every one classified). They differ only in their queue policy and in what a job produces,
so the loop, the locking, draining at the end of a file and the bounded stop live here once; a
subclass supplies the queue (:meth:`JobWorker._has_job`, :meth:`JobWorker._take_job`,
:meth:`JobWorker._clear_jobs`) and the work (:meth:`JobWorker._process`).

Both threads lower their own scheduling priority (:func:`lower_priority`): on 2 cores, capture
decoding, MediaPipe and ONNX Runtime (intra-op 1: it computes in the calling thread) compete, and
a late prediction costs little while a late extraction loses frames for every later window.
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections import deque
from typing import Generic, TypeVar

import numpy as np

from edge.util.logs import ThrottledLog

log = logging.getLogger(__name__)

#: How many recent latencies the percentiles in ``status`` and the exit summary cover.
LATENCY_SAMPLES = 200
#: Niceness added to the model threads (see :func:`lower_priority`).
INFERENCE_NICENESS = 5

Job = TypeVar("Job")


def lower_priority(niceness: int) -> None:
    """Make the calling thread yield the CPU to extraction when both want it (Linux: per-thread nice).

    Raising niceness needs no privilege; where it is unsupported nothing happens.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError) as exc:  # not Linux, or a sandbox that forbids it
        log.debug("cannot lower the model thread's priority: %s", exc)


def percentile(values: deque[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values``, or None when there are none yet.

    ``list(deque)`` is one atomic copy, so another thread appending meanwhile is harmless.
    """
    snapshot = list(values)
    return float(np.percentile(np.asarray(snapshot, dtype=float), q)) if snapshot else None


class JobWorker(threading.Thread, ABC, Generic[Job]):
    """A daemon thread running one job at a time; a failed job is counted and logged, never fatal.

    Subclasses guard their queue with :attr:`_cond` and call ``self._cond.notify_all()`` after
    adding a job. ``what`` names a job in the throttled error log ("inference", "segment").
    """

    def __init__(self, name: str, what: str) -> None:
        super().__init__(name=name, daemon=True)
        self.completed = 0
        self.errors = 0
        self._what = what
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._throttled = ThrottledLog(log)

    # -- the queue policy (called with ``_cond`` held) ---------------------------------------------

    @abstractmethod
    def _has_job(self) -> bool: ...

    @abstractmethod
    def _take_job(self) -> Job: ...

    @abstractmethod
    def _clear_jobs(self) -> None: ...

    # -- the work (called without the lock) --------------------------------------------------------

    @abstractmethod
    def _process(self, job: Job) -> None: ...

    # -- the loop ----------------------------------------------------------------------------------

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is pending or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(self._idle_or_stopping, timeout)

    def _idle_or_stopping(self) -> bool:
        return (not self._has_job() and not self._busy) or self._stopping

    def stop(self) -> None:
        """Drop pending jobs and end the thread after the running one (if any)."""
        with self._cond:
            self._stopping = True
            self._clear_jobs()
            self._cond.notify_all()

    def run(self) -> None:
        lower_priority(INFERENCE_NICENESS)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._has_job() or self._stopping)
                if self._stopping:
                    return
                job, self._busy = self._take_job(), True
            try:
                self._process(job)
                self.completed += 1
            except Exception as exc:  # a failed job is counted, never fatal
                self.errors += 1
                self._throttled(logging.ERROR, self._what, "%s failed: %s", self._what, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
