"""The daemon driven in process by scripted sources and extractors (tests/test_segments.py, test_idle.py).

Scripted frames carry their index and an extractor looks keypoints up by it (so duty cycling,
which skips frames, cannot shift what a frame "contains"); :func:`run_daemon` runs the daemon's
real main loop to the end of such a source.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.camera.frame import Frame
from edge.camera.sources import open_source
from edge.contract.layout import RIGHT_HAND, empty_frame
from edge.contract.protocol import Segment
from edge.daemon.config import DaemonConfig
from edge.daemon.daemon import Daemon
from edge.recognition.inference import EdgeModel
from edge.recognition.inference_worker import WindowJob
from tests.helpers_schema import validate

HANG_GUARD_S = 900.0
FPS = 30.0


class RecordingPublisher:
    endpoint = "inproc://test"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> bool:
        self.sent.append(message)
        return True

    def close(self) -> None:
        pass

    def of(self, topic: str) -> list[Any]:
        return [m for m in self.sent if topic == m.TOPIC]


def segment_dict(segment: Segment) -> dict[str, Any]:
    payload = segment.to_payload()
    validate("segment", {**payload, "v": 1, "seq": 0, "ts": 0.0, "topic": "segment"})
    return payload


# -- scripted: frames that carry their index ------------------------------------------------------


def tagged(i: int) -> np.ndarray:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = (*divmod(i, 256), 1)  # the 1 tells a tagged frame from the daemon's blank one
    return rgb


class IndexedSource:
    """A 30 fps "file" of ``n`` frames whose pixels encode their index."""

    is_live, fps, name = False, FPS, "indexed.mp4"

    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0

    def read(self) -> Frame | None:
        if self.i == self.n:
            return None
        self.i += 1
        return Frame(tagged(self.i - 1), (self.i - 1) / FPS, self.i - 1)

    def close(self) -> None:
        pass


class TableExtractor:
    """Keypoints looked up by the frame's index; a blank (untagged, larger) frame gives nothing.

    The index is read from the frame's first pixel, or given by ``identify`` (frames whose pixels
    can't carry a tag, such as JPEG ones): ``identify(rgb)`` is the index, or -1 for the blank.
    """

    def __init__(
        self, table: Callable[[int], np.ndarray], identify: Callable[[np.ndarray], int] | None = None
    ) -> None:
        self.table = table
        self.identify = identify
        self.calls: list[int] = []

    def extract(self, rgb: np.ndarray) -> np.ndarray:
        if self.identify is not None:
            i = self.identify(rgb)
        else:
            i = int(rgb[0, 0, 0]) * 256 + int(rgb[0, 0, 1]) if rgb[0, 0, 2] else -1
        self.calls.append(i)
        return empty_frame() if i < 0 else self.table(i)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


def scripted_hands(pattern: Callable[[int], bool]) -> Callable[[int], np.ndarray]:
    def table(i: int) -> np.ndarray:
        kp = empty_frame()
        kp[:468] = 0.5
        if pattern(i):
            kp[RIGHT_HAND] = 0.1 + (i % 50) / 200
        return kp

    return table


def run_daemon(
    model: EdgeModel, source: Any, extractor: Any, jobs: list[WindowJob] | None = None, **settings: Any
) -> tuple[Daemon, RecordingPublisher]:
    """Run the daemon to the end of ``source``; ``jobs`` collects every window offered to inference."""
    config = DaemonConfig(model="m.onnx", source=getattr(source, "name", "x.mp4"), **settings)
    publisher = RecordingPublisher()
    daemon = Daemon(config, model, extractor, publisher, source)
    if jobs is not None:
        submit = daemon.worker.submit

        def record(job: WindowJob) -> None:
            jobs.append(job)
            submit(job)

        daemon.worker.submit = record  # type: ignore[method-assign]
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(daemon.run()))
    thread.start()
    thread.join(HANG_GUARD_S)
    assert done == [0]
    return daemon, publisher


def frame_shape(video: Path) -> tuple[int, int, int]:
    """The shape of a video's decoded frames (the sample clip's, for synthetic scenes)."""
    with open_source(str(video)) as source:
        first = source.read()
        assert first is not None
        return first.rgb.shape


# -- a noisy still room, for the motion gate -------------------------------------------------------


def still_room(sample_video: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """A textured still "empty room": the sample's background (wall, table) scaled up to ``shape``."""
    import cv2

    with open_source(str(sample_video)) as clip:
        frame = next(f for f in clip if f.index == 100)
    crop = frame.rgb[820:910, 0:160]  # wall and table beside the signer
    return cv2.resize(crop, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


class NoisyRoomSource:
    """A 30 fps "file": ``room`` plus fresh temporal sensor noise each frame, then optionally the clip.

    The noise cycles through 17 fields (prime, so samples 10 frames apart never see the same one);
    each frame's first pixel carries its index (one pixel of a million: invisible to the gate).
    """

    is_live, fps, name = False, FPS, "room.mp4"

    def __init__(
        self, room: np.ndarray, n: int, clip: Path | None = None, sigma: float = 5.0, *, jpeg: bool = False
    ) -> None:
        rng = np.random.default_rng(7)
        self._noise = [rng.normal(0, sigma, room.shape).astype(np.int16) for _ in range(17)]
        self._room, self.n, self.i = room.astype(np.int16), n, 0
        self._clip = open_source(str(clip)) if clip is not None else None
        #: Deliver frames as an MJPEG camera does (JPEG bytes, decoded when used); see :meth:`index_of`.
        self.jpeg = jpeg
        self._recent: collections.deque[Frame] = collections.deque(maxlen=64)

    def paint(self, rgb: np.ndarray, i: int) -> None:
        """Subclasses draw into frame ``i`` (before it is encoded)."""

    def read(self) -> Frame | None:
        i = self.i
        if i < self.n:
            rgb = np.clip(self._room + self._noise[i % 17], 0, 255).astype(np.uint8)
            rgb[0, 0] = (*divmod(i, 256), 1)
        elif self._clip is None or (clip_frame := self._clip.read()) is None:
            return None
        else:
            rgb = clip_frame.rgb
        self.i += 1
        self.paint(rgb, i)
        if not self.jpeg:
            return Frame(rgb, i / FPS, i)
        import cv2

        data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].reshape(-1)
        frame = Frame.from_jpeg(data, rgb.shape[1], rgb.shape[0], i / FPS, i)
        self._recent.append(frame)
        return frame

    def index_of(self, rgb: np.ndarray) -> int:
        """Which recent JPEG frame ``rgb`` was decoded from (-1: none, the daemon's blank frame)."""
        return next((f.index for f in self._recent if not f.compressed and f.pixels()[0] is rgb), -1)

    def close(self) -> None:
        if self._clip is not None:
            self._clip.close()
