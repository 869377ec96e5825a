"""MediaPipe Holistic → ``float32 [543, 3]`` frames in the layout of :mod:`edge.contract.layout`.

The reference keypoints (docs/MODEL.md §2) were made with MediaPipe Holistic 0.10.18 in video
mode (tracking on) at model_complexity 1, so that is what this extractor runs. The wheel bundles
only that complexity's pose model; other complexities would try to download one at start-up and
fail (or hang) on an offline device, so they are refused up front with the missing file named.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from edge.contract.layout import FACE, LEFT_HAND, NUM_COORDS, NUM_LANDMARKS, POSE, RIGHT_HAND
from edge.util.logs import error_line

#: The pose landmark model MediaPipe Holistic loads for each model_complexity.
POSE_MODEL_FILES = {
    0: "pose_landmark_lite.tflite",
    1: "pose_landmark_full.tflite",
    2: "pose_landmark_heavy.tflite",
}

#: (result attribute, rows) in layout order; face keeps the first 468 points (478 with iris).
_PARTS = (
    ("face_landmarks", FACE),
    ("left_hand_landmarks", LEFT_HAND),
    ("pose_landmarks", POSE),
    ("right_hand_landmarks", RIGHT_HAND),
)


class ExtractorError(Exception):
    """The extractor can't be created or was given an unusable image; message is one line."""


def mediapipe_dir() -> Path:
    """Where the installed mediapipe package lives, found without importing it (importing is slow)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise ExtractorError("mediapipe is not installed (pip install 'slovo-edge[edge]')")
    return Path(next(iter(spec.submodule_search_locations)))


def pose_model_path(model_complexity: int) -> Path:
    """The pose model file mediapipe would load for ``model_complexity``."""
    if model_complexity not in POSE_MODEL_FILES:
        raise ExtractorError(f"model_complexity must be 0, 1 or 2, got {model_complexity!r}")
    return mediapipe_dir() / "modules" / "pose_landmark" / POSE_MODEL_FILES[model_complexity]


def check_model_complexity(model_complexity: int) -> None:
    """Raise :class:`ExtractorError` unless the pose model for ``model_complexity`` is installed.

    Done before mediapipe is touched: mediapipe would otherwise try to download the model.
    """
    path = pose_model_path(model_complexity)
    if not path.is_file():
        available = sorted(c for c in POSE_MODEL_FILES if pose_model_path(c).is_file())
        raise ExtractorError(
            f"model_complexity={model_complexity} needs {path.name}, which is not in the installed "
            f"mediapipe ({path.parent}); available offline: {available}"
        )


#: Byte offsets of x, y, z inside one serialised NormalizedLandmark record, laid out as
#: ``0a LEN | 0d x(4) | 15 y(4) | 1d z(4) | [25 visibility(4)] ...`` (tag bytes 0x0d/0x15/0x1d).
_XYZ_BYTES = np.r_[3:7, 8:12, 13:17]
_TAG_BYTES = {0: 0x0A, 2: 0x0D, 7: 0x15, 12: 0x1D}


def _xyz(landmark_list: Any, count: int) -> np.ndarray:
    """The first ``count`` landmarks' x, y, z as ``float32 [count, 3]``.

    Reading 468 face points attribute by attribute costs ~0.6 ms a frame in Python; slicing them
    out of the serialised protobuf costs ~0.05 ms. The fast path is only taken when every record
    has the expected fixed layout (checked byte by byte), otherwise the attribute path is used.
    """
    points = landmark_list.landmark
    n = len(points)
    blob = landmark_list.SerializeToString()
    if n and len(blob) % n == 0:
        stride = len(blob) // n
        records = np.frombuffer(blob, dtype=np.uint8).reshape(n, stride)[:count]
        if (
            stride >= 17
            and (records[:, 1] == stride - 2).all()
            and all((records[:, col] == tag).all() for col, tag in _TAG_BYTES.items())
        ):
            return records[:, _XYZ_BYTES].copy().view("<f4")
    return np.array([(p.x, p.y, p.z) for p in points[:count]], dtype=np.float32)


def _blank_frame() -> np.ndarray:
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    frame.flags.writeable = False
    return frame


_BLANK = _blank_frame()  # warm-up input: nothing to detect, so it leaves no tracking state


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """Send native writes to file descriptor 2 to /dev/null; ``sys.stderr`` keeps the real stderr.

    MediaPipe and TFLite print start-up lines from their own threads whenever a graph loads,
    which no setting turns off (they would tear ``slr-extract``'s progress bar or fill the
    daemon's journal). Python's own messages (progress bar, summary, warnings, tracebacks) still
    show, through a duplicate of the original descriptor. Processes spawned inside inherit the
    silenced descriptor. Process-wide: :class:`HolisticExtractor` keeps it short (start-up, reset).
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    original = sys.stderr
    sys.stderr = open(  # noqa: SIM115 - closed in finally
        saved,
        "w",
        buffering=1,
        encoding=getattr(original, "encoding", None) or "utf-8",
        errors="backslashreplace",
        closefd=False,
    )
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)


class Extractor(Protocol):
    """What the daemon and ``slr-predict`` need of :class:`HolisticExtractor` (tests script it)."""

    def extract(self, rgb: np.ndarray) -> np.ndarray: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...


class HolisticExtractor:
    """One MediaPipe Holistic graph in video (tracking) mode; call :meth:`reset` between videos."""

    def __init__(
        self,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        *,
        quiet: bool = False,
    ) -> None:
        """Validate the settings (model file included) before MediaPipe is imported, then build the graph.

        MediaPipe prints a dozen native log lines to file descriptor 2 whenever a graph starts
        (here and in :meth:`reset`), some from its own threads after the call returns. With
        ``quiet`` the start-up runs with descriptor 2 on /dev/null and ends with a blank warm-up
        frame, so the lines are emitted (and dropped) before it returns; results are unchanged
        (a blank frame detects nothing, so no tracking state carries over). At most one line,
        printed when a person is first found, gets through.
        """
        if isinstance(model_complexity, bool) or not isinstance(model_complexity, int):
            raise ExtractorError(f"model_complexity must be 0, 1 or 2, got {model_complexity!r}")
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ExtractorError(f"{name} must be a number within [0, 1], got {value!r}")
        check_model_complexity(model_complexity)

        from mediapipe.python.solutions.holistic import Holistic  # slow import: only when needed

        self.model_complexity = model_complexity
        self.quiet = quiet
        self._holistic: Any = None
        try:
            with native_stderr_silenced(quiet):
                self._holistic = Holistic(
                    static_image_mode=False,
                    model_complexity=model_complexity,
                    min_detection_confidence=float(min_detection_confidence),
                    min_tracking_confidence=float(min_tracking_confidence),
                )
                if quiet:
                    self._holistic.process(_BLANK)
        except (RuntimeError, ValueError, OSError) as exc:
            self.close()
            raise ExtractorError(f"cannot start MediaPipe Holistic: {error_line(exc)}") from exc

    def extract(self, rgb: np.ndarray) -> np.ndarray:
        """Landmarks of one RGB frame as ``float32 [543, 3]``; NaN rows for parts not detected.

        Frames must be fed in video order: tracking uses the previous frame's result.
        """
        if self._holistic is None:
            raise ExtractorError("extractor is closed")
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise ExtractorError(f"expected an RGB uint8 image of shape [H, W, 3], got {got}")
        # A read-only view makes MediaPipe wrap the pixels instead of copying them (its packet
        # creator copies writeable arrays); the caller's array keeps its own flags.
        image = rgb if rgb.flags.c_contiguous else np.ascontiguousarray(rgb)
        image = image.view()
        image.flags.writeable = False
        results = self._holistic.process(image)

        out = np.full((NUM_LANDMARKS, NUM_COORDS), np.nan, dtype=np.float32)
        for attr, rows in _PARTS:
            found = getattr(results, attr)
            if found is None:
                continue
            out[rows] = _xyz(found, rows.stop - rows.start)
        return out

    def extract_many(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Landmarks of consecutive frames of one video, ``float32 [N, 543, 3]``."""
        rows = [self.extract(frame) for frame in frames]
        if not rows:
            return np.empty((0, NUM_LANDMARKS, NUM_COORDS), dtype=np.float32)
        return np.stack(rows)

    def reset(self) -> None:
        """Forget tracking state so the next frame starts a new video (cheaper than a new graph)."""
        if self._holistic is not None:
            with native_stderr_silenced(self.quiet):
                self._holistic.reset()
                if self.quiet:
                    self._holistic.process(_BLANK)

    def close(self) -> None:
        """Release the graph (idempotent)."""
        if self._holistic is not None:
            self._holistic.close()
            self._holistic = None

    def __enter__(self) -> HolisticExtractor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
