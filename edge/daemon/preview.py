"""Camera preview frames for whoever watches: small JPEGs plus that frame's keypoints, on demand.

An installer aiming the camera wants to see what it sees and whether hands are found. Encoding
JPEGs costs CPU the extraction loop needs, so :class:`PreviewWorker` does it in its own
low-priority thread, at most :data:`MAX_FPS` times a second, and only while the publisher reports
a client subscribed to ``preview`` by name (see :mod:`edge.transport.subscriptions`). The main
loop's share is :meth:`PreviewWorker.offer`: a flag test and a clock read per frame, plus handing
over references (the frame and keypoint arrays are fresh per frame, never mutated later).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import threading
import time

import numpy as np

from edge.contract.layout import LEFT_HAND, LIPS_ROWS, POSE, RIGHT_HAND
from edge.contract.protocol import TOPIC_PREVIEW, Preview

log = logging.getLogger(__name__)

MAX_FPS = 5.0
#: Longest side of a preview JPEG (≤ 640 px wide, and portrait cameras stay small too).
MAX_SIDE = 640
JPEG_QUALITY = 70
#: How often the worker asks the publisher whether anyone watches.
WATCH_CHECK_S = 0.25
NICENESS = 10

_GROUPS = {
    "pose": np.arange(POSE.start, POSE.stop),
    "left_hand": np.arange(LEFT_HAND.start, LEFT_HAND.stop),
    "right_hand": np.arange(RIGHT_HAND.start, RIGHT_HAND.stop),
    "lips": np.asarray(LIPS_ROWS),
}


def keypoint_groups(kp: np.ndarray) -> dict[str, list[list[float]] | None]:
    """``[x, y]`` per landmark of each drawn part of a ``[543, 3]`` frame; ``None`` where not detected."""
    groups: dict[str, list[list[float]] | None] = {}
    for name, rows in _GROUPS.items():
        xy = kp[rows, :2]
        groups[name] = None if np.isnan(xy).any() else np.round(xy.astype(np.float64), 4).tolist()
    return groups


def encode_preview(rgb: np.ndarray, kp: np.ndarray, frame_ts: float) -> Preview:
    """One ``preview`` body: ``rgb`` scaled to fit :data:`MAX_SIDE` × :data:`MAX_SIDE` px, as JPEG."""
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, MAX_SIDE / width, MAX_SIDE / height)
    if scale < 1.0:
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return Preview(
        jpeg=base64.b64encode(jpeg.tobytes()).decode("ascii"),
        width=int(width),
        height=int(height),
        frame_ts=round(float(frame_ts), 4),
        keypoints=keypoint_groups(kp),
    )


class PreviewWorker(threading.Thread):
    """Publishes the newest offered frame as a ``preview`` message while someone watches."""

    def __init__(self, publisher: object, max_fps: float = MAX_FPS) -> None:
        super().__init__(name="preview", daemon=True)
        self.publisher = publisher
        self.period = 1.0 / max_fps
        self.sent = 0
        self.errors = 0
        #: Read by the main loop without a lock: a stale value costs one frame more or less.
        self.watched = False
        self._next_due = 0.0
        self._slot: tuple[np.ndarray, np.ndarray, float] | None = None
        self._cond = threading.Condition()
        self._stopping = False

    def offer(self, rgb: np.ndarray, kp: np.ndarray, frame_ts: float) -> None:
        """Called by the main loop for every extracted frame; takes one every ``period`` while watched."""
        if not self.watched:
            return
        now = time.monotonic()
        if now < self._next_due:
            return
        self._next_due = now + self.period
        with self._cond:
            self._slot = (rgb, kp, frame_ts)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or a sandbox that forbids it
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        watchers = getattr(self.publisher, "watchers", None)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slot is not None or self._stopping, WATCH_CHECK_S)
                if self._stopping:
                    return
                item, self._slot = self._slot, None
            self.watched = watchers is not None and watchers(TOPIC_PREVIEW) > 0
            if item is None or not self.watched:
                continue
            try:
                self.publisher.send(encode_preview(*item))  # type: ignore[attr-defined]
                self.sent += 1
            except Exception as exc:  # a preview must never take the daemon down
                self.errors += 1
                log.debug("preview frame not sent: %s", exc)
