"""A whole video file cut into signing episodes and classified: ``slr-predict --segments``.

The daemon's path, not a copy of it: frames are extracted as the daemon extracts a file (every
frame, a frame whose extraction fails is skipped and counted), fed to the same
:class:`edge.recognition.segmenter.Segmenter` (built from the same settings by
:meth:`~edge.recognition.segmenter.Segmenter.from_settings`), and each finished episode goes to the
daemon's own :class:`edge.recognition.segment_worker.SegmentWorker`, which classifies it with
:func:`edge.recognition.segment_worker.classify_episode` off the extraction loop, exactly as in
``slr-edge run --publish segments``. Only the sink differs: instead of a ZeroMQ socket the
messages are collected, with the envelope (:func:`edge.contract.protocol.envelope`) the publisher
would add, so each one is a valid ``segment`` message.

Unlike the daemon, nothing is ever dropped: when classification falls behind extraction the loop
waits for it (a file does not run away; a camera does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from edge.camera.frame import Frame
from edge.camera.sources import VideoSource
from edge.clips.keypoints import FrameHook, file_frames
from edge.contract.layout import has_hands
from edge.contract.protocol import Message, envelope
from edge.keypoints.holistic import Extractor
from edge.recognition.classify import WindowModel
from edge.recognition.segment_worker import MAX_PENDING, SegmentWorker
from edge.recognition.segmenter import Episode, Segmenter, SegmentSettings
from edge.util import settings as declared_settings

#: Longest wait for the last episode's classification at the end of the file.
DRAIN_TIMEOUT_S = 300.0


#: The daemon settings that shape episodes (slr-predict's flags, defaults and bounds come from them).
SEGMENT_SETTINGS = ("gap_s", "max_segment_s", "min_segment_frames")


@dataclass(frozen=True)
class SegmentOptions:
    """The segmenter's settings, as the daemon's config spells them (a :class:`SegmentSettings`)."""

    gap_s: float
    max_segment_s: float
    min_segment_frames: int


def segment_options(given: Mapping[str, Any] | None = None) -> SegmentOptions:
    """The daemon's segment settings, with ``given`` overrides, checked by its own rules (``ConfigError``).

    slr-predict's flags and slr-web's captions worker both come through here: one set of defaults.
    """
    from edge.daemon.config import DaemonConfig

    config = declared_settings.check(replace(DaemonConfig(), **dict(given or {})))
    return SegmentOptions(config.gap_s, config.max_segment_s, config.min_segment_frames)


class CollectingSink:
    """A :class:`edge.transport.publisher.MessageSink` that keeps every message as the wire carries it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._seq: dict[str, int] = {}

    def send(self, message: Message) -> bool:
        with self._lock:
            seq = self._seq.get(message.TOPIC, 0)
            self._seq[message.TOPIC] = seq + 1
            self.messages.append(envelope(message.TOPIC, message.to_payload(), seq=seq, ts=time.time()))
        return True

    def close(self) -> None:
        pass


@dataclass
class FileSegments:
    """What one file gave: its ``segment`` messages in order, and what went wrong on the way."""

    segments: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    #: Frames whose extraction raised (skipped, as the daemon skips them).
    extraction_errors: int = 0
    #: Episodes whose classification failed (non-finite model output): no message for them.
    classification_errors: int = 0
    #: Episodes shorter than ``min_segment_frames`` (dropped, as the daemon drops them).
    short: int = 0


def segment_frames(
    model: WindowModel,
    frames: Iterable[Frame],
    extractor: Extractor,
    settings: SegmentSettings,
    *,
    top_k: int,
) -> FileSegments:
    """Extract ``frames`` (a file's, in order), cut episodes, classify each; blocks until all are done."""
    sink = CollectingSink()
    worker = SegmentWorker(model, sink, top_k)
    segmenter = Segmenter.from_settings(settings, model.fps)
    out = FileSegments()
    worker.start()
    try:
        for frame in frames:
            out.frames += 1
            try:
                kp = extractor.extract(frame.rgb)
            except Exception:
                out.extraction_errors += 1
                continue
            episode = segmenter.push(kp, frame.timestamp, bool(has_hands(kp)), frame.captured_at)
            if episode is not None:
                _submit(worker, episode)
        episode = segmenter.flush(time.time())
        if episode is not None:
            _submit(worker, episode)
        if not worker.drain(DRAIN_TIMEOUT_S):
            raise RuntimeError(f"segment classification still running after {DRAIN_TIMEOUT_S:.0f} s")
    finally:
        worker.stop()
    out.segments = sink.messages
    out.classification_errors = worker.errors
    out.short = segmenter.short
    return out


def _submit(worker: SegmentWorker, episode: Episode) -> None:
    """Hand ``episode`` over, first waiting for room: the worker refuses past :data:`MAX_PENDING`."""
    if worker.backlog >= MAX_PENDING - 1:
        worker.drain(DRAIN_TIMEOUT_S)
    worker.submit(episode)


def segment_file(
    model: WindowModel,
    source: VideoSource,
    extractor: Extractor,
    settings: SegmentSettings,
    *,
    top_k: int,
    on_frame: FrameHook | None = None,
) -> FileSegments:
    """:func:`segment_frames` over an opened file's frames, decoded ahead (the caller closes ``source``)."""
    with file_frames(source, on_frame) as frames:
        return segment_frames(model, frames, extractor, settings, top_k=top_k)
