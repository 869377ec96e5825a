"""The daemon's segment thread: finished episodes in, ``segment`` messages out.

Episodes are classified off the main loop (extraction must never wait for the model) and in a
thread of their own, so a segment never competes with the sliding-window queue, whose one slot
drops stale windows by design: every episode is classified, in order. Episodes end at most every
``gap_s`` or so and take one inference each, so the queue stays short; a bound guards it anyway.

Each episode goes through :func:`edge.recognition.classify.classify_window` with the arguments
``slr-predict`` uses for a whole clip (resampling to the model's rate included), so the published
top-k is the one ``slr-predict --json`` prints for the same keypoints.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from edge.contract.protocol import Segment
from edge.recognition.classify import WindowModel, classify_window
from edge.recognition.job_worker import LATENCY_SAMPLES, JobWorker, percentile
from edge.recognition.segmenter import Episode
from edge.transport.publisher import MessageSink

log = logging.getLogger(__name__)

#: Episodes waiting for the model before new ones are refused (never reached in practice).
MAX_PENDING = 16


class SegmentWorker(JobWorker[Episode]):
    """Classifies each submitted :class:`Episode` and publishes it as a ``segment``."""

    def __init__(self, model: WindowModel, publisher: MessageSink, top_k: int) -> None:
        super().__init__(name="segments", what="segment classification")
        self.model = model
        self.publisher = publisher
        self.top_k = top_k
        self.refused = 0
        #: Wall time from an episode's end being seen to its message being handed to ZeroMQ.
        self.latency_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._pending: deque[Episode] = deque()

    def submit(self, episode: Episode) -> None:
        """Queue ``episode`` (FIFO); refused and counted only if :data:`MAX_PENDING` are waiting."""
        with self._cond:
            if len(self._pending) >= MAX_PENDING:
                self.refused += 1
                self._throttled(logging.WARNING, "refused", "segment queue full; episode dropped")
                return
            self._pending.append(episode)
            self._cond.notify_all()

    def latency_percentile(self, q: float) -> float | None:
        return percentile(self.latency_ms, q)

    def _has_job(self) -> bool:
        return bool(self._pending)

    def _take_job(self) -> Episode:
        return self._pending.popleft()

    def _clear_jobs(self) -> None:
        self._pending.clear()

    def _process(self, episode: Episode) -> None:
        segment = classify_episode(self.model, episode, self.top_k)
        self.publisher.send(segment)
        self.latency_ms.append(segment.latency_ms)
        best = segment.top_k[0]
        log.info(
            "segment %.2f-%.2f s: %s (p=%.2f)%s",
            episode.ts[0],
            episode.ts[-1],
            best.label,
            best.prob,
            " [cut]" if episode.cut else "",
        )

    @property
    def backlog(self) -> int:
        """Episodes waiting (not counting the one being classified)."""
        with self._cond:
            return len(self._pending)


def classify_episode(model: WindowModel, episode: Episode, top_k: int) -> Segment:
    """One episode → its ``segment`` message body: the one path from an episode to a result.

    The daemon's segment thread and ``slr-predict --segments`` (:mod:`edge.clips.file_segments`)
    both call this, so a file and the daemon fed the same file publish the same segments.
    ``latency_ms`` is measured up to the moment the message is built (it is sent right after).
    """
    result = classify_window(model, episode.raw, episode.ts, k=top_k, hands=episode.hands)
    latency_ms = (time.time() - episode.ended_at) * 1000.0
    return Segment(
        top_k=result.rounded_top_k(),
        start=round(float(episode.ts[0]), 4),
        end=round(float(episode.ts[-1]), 4),
        frames=len(episode.raw),
        hand_frames=int(episode.hands.sum()),
        cut=episode.cut,
        resampled=result.resampled,
        inference_ms=round(result.inference_ms, 3),
        latency_ms=round(max(0.0, latency_ms), 3),
        model=model.name,
    )
