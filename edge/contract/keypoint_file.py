"""The keypoint file format: ``<id>.npz`` with ``landmarks``, ``timestamps`` and ``fps``.

``slr-extract`` writes these and training reads them; this module is the one place that knows
the keys and shapes. Writes are atomic (temp file + ``os.replace``) so an interrupted batch never
leaves a half-written ``.npz`` that resume logic would mistake for a finished video.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.contract.layout import NUM_COORDS, NUM_LANDMARKS
from edge.util.files import new_file_mode

KEYPOINT_SUFFIX = ".npz"
#: Temp files end with this (never ``.npz``), so globbing for finished files can't see them.
TEMP_SUFFIX = ".npz.part"


class KeypointFileError(ValueError):
    """A keypoint file or array is malformed; the message is one line naming the file."""


@dataclass(frozen=True)
class KeypointClip:
    """One video's keypoints."""

    landmarks: np.ndarray  #: float32 [N, 543, 3], NaN = not detected
    timestamps: np.ndarray  #: float64 [N], seconds from the start of the video
    fps: float  #: the video's nominal frame rate

    def __len__(self) -> int:
        return len(self.landmarks)


def _validated(landmarks: object, timestamps: object, fps: object, where: str) -> KeypointClip:
    lm = np.asarray(landmarks)
    ts = np.asarray(timestamps)
    if lm.ndim != 3 or lm.shape[1:] != (NUM_LANDMARKS, NUM_COORDS) or lm.shape[0] == 0:
        raise KeypointFileError(
            f"{where}: landmarks must be [N>=1, {NUM_LANDMARKS}, 3], got {list(lm.shape)}"
        )
    if not np.issubdtype(lm.dtype, np.floating):
        raise KeypointFileError(f"{where}: landmarks must be floating point, got {lm.dtype}")
    if ts.shape != (lm.shape[0],) or not np.issubdtype(ts.dtype, np.number):
        raise KeypointFileError(
            f"{where}: timestamps must be numbers of shape [{lm.shape[0]}], got {ts.dtype} {list(ts.shape)}"
        )
    fps_arr = np.asarray(fps)
    if fps_arr.shape != () or not np.issubdtype(fps_arr.dtype, np.number):
        raise KeypointFileError(f"{where}: fps must be a number, got {fps_arr.dtype} {list(fps_arr.shape)}")
    fps_value = float(fps_arr)
    if not (np.isfinite(fps_value) and fps_value > 0):
        raise KeypointFileError(f"{where}: fps must be a positive number, got {fps_value}")
    return KeypointClip(
        landmarks=lm.astype(np.float32, copy=False),
        timestamps=ts.astype(np.float64, copy=False),
        fps=fps_value,
    )


def save_keypoints(
    path: str | os.PathLike[str], landmarks: np.ndarray, timestamps: np.ndarray, fps: float
) -> Path:
    """Validate and atomically write one clip to ``path`` (which should end in ``.npz``)."""
    path = Path(path)
    clip = _validated(landmarks, timestamps, fps, f"cannot save {str(path)!r}")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=TEMP_SUFFIX)
    try:
        # The archive is built in memory and written in one go: a zip writer on the file itself
        # leaves a half-closed ZipFile behind on a full disk, whose finaliser prints a traceback.
        archive = io.BytesIO()
        np.savez(archive, landmarks=clip.landmarks, timestamps=clip.timestamps, fps=np.float64(clip.fps))
        with os.fdopen(fd, "wb") as handle:
            handle.write(archive.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, new_file_mode())  # mkstemp makes 0600; follow the umask like open() does
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):  # cleanup must not mask the original error
            os.unlink(tmp_name)
        raise
    return path


def load_keypoints(path: str | os.PathLike[str]) -> KeypointClip:
    """Read and validate one clip; :class:`KeypointFileError` (one line) if it is not a keypoint file."""
    where = f"bad keypoint file {os.fspath(path)!r}"
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise KeypointFileError(f"{where}: not an .npz archive")
        with data:
            missing = [key for key in ("landmarks", "timestamps", "fps") if key not in data.files]
            if missing:
                raise KeypointFileError(f"{where}: missing {', '.join(missing)}")
            return _validated(data["landmarks"], data["timestamps"], data["fps"], where)
    except FileNotFoundError:
        raise KeypointFileError(f"{where}: file not found") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, KeypointFileError):
            raise
        raise KeypointFileError(f"{where}: {exc}") from None
