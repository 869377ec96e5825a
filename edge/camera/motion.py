"""A cheap "has the scene changed since MediaPipe last looked?" test for the idle duty cycle.

The pattern is Frigate's motion gate in front of its object detector: the expensive detector runs
only where and when something moved. Here the detector is MediaPipe Holistic (15–50 ms of CPU a
look) and the question is whether a look can be skipped because the scene is the one the last look
found without hands. A static scene (an empty room with sensor noise, a person standing still with
hands down) then costs only the capture and a fraction of a millisecond per measure.

The measure, about 0.3 ms for a decoded 720p frame (plus 1–2 ms for an MJPEG camera's 1/8 decode):

* **a small copy** (:func:`small_copy`): the frame bilinearly resized to four times the small
  size and area-averaged by four, so each small pixel averages ~64 frame pixels and temporal
  sensor noise shrinks about eightfold (a plain subsample would keep all of it); a frame an MJPEG
  camera sent is never decoded for this: its 1/8-scale decode (the JPEG's 8x8 block means, from
  :meth:`edge.camera.frame.Frame.small_pixels`) is the input, reduced the same way;
* **in colour**, each channel on its own: a hand in front of a wall of the same brightness (skin
  before a beige or bluish-grey wall, which grey alone cannot tell apart) still differs in its
  red and blue; a frame still in the decoder's BGR is measured as it is and its small copy put in
  RGB order, so it is never converted for the measure;
* **against a reference**, the small copy of the frame MediaPipe last looked at, not the previous
  frame: slow changes add up until they count, and noise does not (it never accumulates);
* **a noise-robust threshold**: each channel of the difference image loses its median (a global
  brightness or colour step such as auto-exposure or white balance is not motion), and a small
  pixel counts as changed only if one of its channels differs by more than ``min_delta`` levels
  and by more than ``noise_factor`` times the noise level estimated from the difference itself
  (1.4826 × the median of the per-pixel largest absolute difference), a threshold capped at
  ``max_threshold`` (when most of the frame changed, a scene cut or a person filling the view,
  the median difference is motion, not noise);
* **an area**: the scene changed if more than ``area`` (a fraction) of the small pixels did.

A hand raised into view changes several percent of the frame; encoder noise and sensor noise
change a handful of isolated small pixels at most. The gate can only skip looks, and the daemon
still looks at a slow keep-alive rate, so a change too small for the gate delays a wake-up by at
most that period.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Long side of the small copy, in pixels (80 x 45 for 720p): a hand is still a few pixels.
SMALL_LONG_SIDE = 80
#: A small pixel must differ by more than this many levels (0..255) in a channel to count as changed.
MIN_DELTA = 10
#: ... and by more than this many times the noise level estimated from the difference image.
NOISE_FACTOR = 4.0
#: ... but never by more than this many levels (the estimate is only noise while most pixels are still).
MAX_THRESHOLD = 3 * MIN_DELTA
#: Median absolute deviation → standard deviation for Gaussian noise.
_MAD_TO_SIGMA = 1.4826


def small_copy(image: np.ndarray, long_side: int = SMALL_LONG_SIDE, *, bgr: bool = False) -> np.ndarray:
    """A small ``int16`` RGB copy of an RGB (``bgr``: BGR) ``uint8`` frame, long side ``long_side``."""
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Bilinear to 4x the target averages 2x2 frame pixels per sample (cheap, reads little memory);
    # the integer area step then averages 4x4 of those. INTER_AREA straight from 720p costs ~2 ms.
    larger = cv2.resize(image, (4 * size[0], 4 * size[1]), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(larger, size, interpolation=cv2.INTER_AREA).astype(np.int16)
    return small[..., ::-1] if bgr else small


def changed_fraction(
    reference: np.ndarray,
    current: np.ndarray,
    min_delta: float = MIN_DELTA,
    noise_factor: float = NOISE_FACTOR,
    max_threshold: float = MAX_THRESHOLD,
) -> float:
    """The share (0..1) of pixels of two small copies that differ beyond the noise threshold."""
    diff = (current - reference).reshape(-1, current.shape[-1]).T.copy()  # channels x pixels
    middle = diff.shape[1] // 2  # medians by partition: a quarter of np.median's time here
    # a global brightness or colour step (auto-exposure, white balance) is not motion
    diff -= np.partition(diff, middle, axis=1)[:, middle : middle + 1]
    np.abs(diff, out=diff)
    magnitude = diff.max(axis=0)  # per pixel, the channel that changed most
    noise = _MAD_TO_SIGMA * float(np.partition(magnitude, middle)[middle])
    threshold = max(float(min_delta), min(noise_factor * noise, float(max_threshold)))
    return float(np.count_nonzero(magnitude > threshold)) / magnitude.size


class MotionGate:
    """Whether a frame differs from the last one MediaPipe looked at (see the module docstring).

    Args:
        area: fraction of the frame (0..1) that must change to count as motion; 0 counts any
            frame as changed (the gate is off).
        min_delta, noise_factor: the per-pixel threshold (levels in a channel; times the noise level).
    """

    def __init__(self, area: float, min_delta: float = MIN_DELTA, noise_factor: float = NOISE_FACTOR) -> None:
        if not 0.0 <= area <= 1.0:
            raise ValueError(f"area must be a fraction within [0, 1], got {area!r}")
        self.area = area
        self.min_delta = min_delta
        self.noise_factor = noise_factor
        self._reference: np.ndarray | None = None
        self._shape: tuple[int, ...] = ()
        #: The changed fraction measured by the last :meth:`changed` call (None: no reference).
        self.last_fraction: float | None = None

    def looked(self, image: np.ndarray, *, bgr: bool = False) -> None:
        """MediaPipe looked at ``image`` (RGB; ``bgr``: BGR), no hands: later frames compare with it."""
        self._reference = small_copy(image, bgr=bgr) if self.area > 0 else None
        self._shape = image.shape

    def reset(self) -> None:
        """Forget the reference (a new scene): the next frame counts as changed."""
        self._reference = None
        self.last_fraction = None

    def changed(self, image: np.ndarray, *, bgr: bool = False) -> bool:
        """Whether ``image`` (RGB; ``bgr``: BGR) differs from the reference by more than ``area``.

        True without a reference (nothing to compare with: MediaPipe must look).
        """
        reference = self._reference
        if self.area <= 0 or reference is None:
            self.last_fraction = None
            return True
        if image.shape != self._shape:  # the stream changed resolution: a new scene
            self.last_fraction = None
            return True
        current = small_copy(image, bgr=bgr)
        self.last_fraction = changed_fraction(reference, current, self.min_delta, self.noise_factor)
        return self.last_fraction > self.area
