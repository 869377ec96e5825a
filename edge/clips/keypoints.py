"""A whole video file → its keypoints: the one extraction loop of every whole-file reader.

``slr-predict`` (a clip), ``slr-extract`` (a dataset) and the dashboard's upload worker read a file
the same way: frames decoded ahead in a thread (:func:`edge.camera.prefetch.prefetched`, so
decoding overlaps MediaPipe instead of adding to it), every frame extracted in order, and the
source's own verdict on completeness kept beside the keypoints. Progress bars, poster frames and
progress lines hang on the ``on_frame`` hook instead of each caller writing its own loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from edge.camera.frame import Frame
from edge.camera.prefetch import prefetched
from edge.camera.sources import VideoSource
from edge.keypoints.holistic import Extractor

#: Called with the 1-based count and each frame, before it is extracted (progress, poster frames).
FrameHook = Callable[[int, Frame], None]


@dataclass(frozen=True)
class ClipKeypoints:
    """Every frame's landmarks of one file, their timestamps, and what the source says of the file."""

    #: ``float32 [N, 543, 3]`` in the layout of :mod:`edge.contract.layout`.
    raw: np.ndarray
    #: Seconds, ``float64 [N]``.
    stamps: np.ndarray
    #: The container's frame rate (None when it declares none).
    fps: float | None
    #: The container's frame count (None when unknown).
    declared_frames: int | None
    #: Why the file counts as truncated (one line), or None when it was decoded whole.
    truncation: str | None

    @property
    def complete(self) -> bool:
        return self.truncation is None


@contextlib.contextmanager
def file_frames(source: VideoSource, on_frame: FrameHook | None = None) -> Iterator[Iterable[Frame]]:
    """The frames of ``source``, decoded ahead; the decode thread stops when the block ends."""
    with contextlib.closing(prefetched(source)) as frames:
        yield frames if on_frame is None else _hooked(frames, on_frame)


def _hooked(frames: Iterable[Frame], on_frame: FrameHook) -> Iterator[Frame]:
    for count, frame in enumerate(frames, 1):
        on_frame(count, frame)
        yield frame


def extract_clip(
    source: VideoSource, extractor: Extractor, on_frame: FrameHook | None = None
) -> ClipKeypoints:
    """Extract every frame of an opened ``source`` (the caller closes it); ``ValueError`` if it had none."""
    landmarks: list[np.ndarray] = []
    stamps: list[float] = []
    with file_frames(source, on_frame) as frames:
        for frame in frames:
            landmarks.append(extractor.extract(frame.rgb))
            stamps.append(frame.timestamp)
    if not landmarks:
        raise ValueError(f"{source.name}: no frame could be decoded")
    return ClipKeypoints(
        raw=np.stack(landmarks),
        stamps=np.asarray(stamps, dtype=np.float64),
        fps=source.fps,
        declared_frames=source.expected_frames,
        truncation=source.truncation(),
    )
