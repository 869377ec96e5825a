"""The idle duty cycle: which captured frames MediaPipe looks at while nobody is signing.

After ``idle_after_s`` without hands (:class:`edge.recognition.decisions.IdleTracker` says so; the
daemon reports it with :meth:`IdleSampler.used`), MediaPipe runs only on one frame per
``1/idle_fps`` seconds of capture time; the capture keeps reading (live sources deliver only the
newest frame anyway) and the frames since the last sample are held, not extracted. When a sample
shows a hand the cycle wakes: the daemon drops the sparse idle frames from the ring buffer (they
must not shape the first window's resampling), clears MediaPipe's tracking with a blank frame (the
sample was seen out of order) and extracts the held frames plus the sample in order. So the first
frame with a hand is not lost or delayed in capture time, and for an empty scene the keypoints,
windows and segments from it on are those of a run without duty cycling.

Motion gate (:mod:`edge.camera.motion`, ``idle_motion``): a due idle sample whose scene has not
changed since MediaPipe last looked and found no hands is not looked at again (its held frames
are dropped as after a look without hands: they showed the same still scene), except once every
``idle_keepalive_s``. A still room or a person standing still with hands down then costs the
capture and ~0.4 ms per sample; a hand raised into view changes the frame, so the sample that
would have seen it without the gate still runs MediaPipe, and the wake-up and replay are as above.

The pattern is Frigate's motion gate in front of its detector, and the cycle's answers are named
decisions (:class:`Action`), as Roboflow inference's policies are: :meth:`IdleSampler.offer` takes
every captured frame and says what the daemon does with it, :meth:`IdleSampler.looked` takes what
MediaPipe saw in a sample. The cycle never extracts anything itself, so it is tested with scripted
frames and timestamps alone (tests/test_idle.py).
"""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge.camera.capture import CapturedFrame
from edge.camera.frame import BadFrame
from edge.camera.motion import MotionGate
from edge.contract.protocol import ExtractionMode

log = logging.getLogger(__name__)

#: Frames kept between two idle samples at most (a fast camera with a low ``idle_fps``).
MAX_HELD_FRAMES = 64
#: While idle and the scene is still, seconds of capture time between motion measures (~0.3 ms each
#: for 720p): how long a hand raised into a still scene waits for its look, instead of up to a
#: whole idle sample period. Every frame would cost three times as much for 67 ms less.
MOTION_CHECK_S = 0.1
#: Frames per second assumed while the source has not said (the tolerance of a due time).
DEFAULT_FPS = 30.0

#: A captured frame and its sequence number (frames taken from the capture: strides count these).
Held = tuple[CapturedFrame, int]


class Action(enum.Enum):
    """What the daemon does with a captured frame (or with a sample MediaPipe looked at)."""

    #: Full rate: extract the frame and use it.
    FULL_RATE = "full-rate"
    #: Idle, not due: the cycle keeps the frame for a possible replay; nothing to do.
    HOLD = "hold"
    #: Idle, due, but the scene is still since the last look: not looked at (held frames let go).
    SKIP = "skip"
    #: Idle and due: extract the frame and report whether it has hands with :meth:`IdleSampler.looked`.
    LOOK = "look"
    #: The sample MediaPipe looked at has no hands: use its keypoints; the cycle stays idle.
    USE = "use"
    #: The sample has a hand: back to full rate; clear the buffer and MediaPipe's tracking, then
    #: extract and use :attr:`Decision.replay` in order.
    WAKE = "wake"


@dataclass(frozen=True)
class Decision:
    """The cycle's answer for one frame; ``replay`` only for :attr:`Action.WAKE`."""

    action: Action
    #: The held frames and the sample, oldest first (a wake-up only).
    replay: tuple[Held, ...] = ()
    #: Wall time of the wake-up (the start of its ``wake_ms`` figure).
    woke_at: float = 0.0


_FULL_RATE, _HOLD, _SKIP = Decision(Action.FULL_RATE), Decision(Action.HOLD), Decision(Action.SKIP)
_LOOK, _USE = Decision(Action.LOOK), Decision(Action.USE)


class IdleSettings(Protocol):
    """The settings of the cycle (:class:`edge.daemon.config.DaemonConfig` has them)."""

    @property
    def idle_fps(self) -> float: ...
    @property
    def idle_keepalive_s(self) -> float: ...
    @property
    def idle_motion(self) -> float: ...


class IdleSampler:
    """The duty cycle's state machine: the schedule, the held frames, the keep-alive and the motion gate.

    Full rate until :meth:`used` reports an idle scene (and ``idle_fps`` > 0); then samples on a
    fixed schedule of capture time until a sample shows a hand (:meth:`looked`), the source
    reconnects (:meth:`full_rate`) or the scene stops being idle (:meth:`used`). Every way back to
    full rate forgets the whole idle state in one place, :meth:`full_rate`.

    Args:
        settings: ``idle_fps``, ``idle_keepalive_s`` and ``idle_motion`` (percent of the frame).
        source_fps: the source's frame rate once known (None or 0 before): a frame within half a
            frame period of a due time counts as due.
    """

    def __init__(self, settings: IdleSettings, source_fps: Callable[[], float | None] = lambda: None) -> None:
        self._settings = settings
        self._source_fps = source_fps
        self.motion = MotionGate(settings.idle_motion / 100.0)
        self.mode: ExtractionMode = "full"
        #: Idle samples MediaPipe looked at / skipped because the scene had not changed.
        self.looks = 0
        self.gated = 0
        #: Wake-ups: wall time from the first frame with a hand reaching extraction to full rate.
        self.wake_ms: deque[float] = deque(maxlen=1000)
        self._held: deque[Held] = deque(maxlen=MAX_HELD_FRAMES)
        #: Capture time at which the next sample is due (None: the next frame).
        self._next_sample_ts: float | None = None
        #: Capture time of the next motion measure while the scene is still (None: the next due frame).
        self._next_check_ts: float | None = None
        #: Capture time of MediaPipe's last look without hands while idle (None: none yet).
        self._last_look_ts: float | None = None

    @property
    def held(self) -> int:
        """Frames held since the last sample."""
        return len(self._held)

    # -- the daemon's calls, in the order a frame meets them ---------------------------------

    def offer(self, item: CapturedFrame, seq: int) -> Decision:
        """A captured frame: extract it (full rate), hold it, skip it as still, or look at it.

        Looks follow a fixed schedule (:meth:`_sample_due`). With the motion gate, a due frame is
        first measured: a still scene (unchanged since the last look) is not looked at, unless
        ``idle_keepalive_s`` have passed since that look, and its held frames are let go. A still
        scene does not spend the schedule (nor does the keep-alive look), so the frames after it
        are measured every :data:`MOTION_CHECK_S` and the first that changed is looked at at once:
        a hand raised into a still room wakes the daemon within that interval plus one look, not
        up to a whole sample period later. A scene that keeps changing (a person moving, a screen)
        is looked at once per period, as without the gate.

        :attr:`Action.LOOK` changes nothing yet: if the extraction fails, the next frame is due.
        """
        if self.mode == "full":
            return _FULL_RATE
        ts = item.frame.timestamp
        keepalive = self._keepalive_due(ts)
        if not self._sample_due(ts) or not (keepalive or self._check_due(ts)):
            self._held.append((item, seq))
            return _HOLD
        if not keepalive and not self._changed(item):
            # Still: the schedule is not spent, the next measure comes soon and a change is looked at.
            self._next_check_ts = ts + MOTION_CHECK_S
            self._held.clear()  # the still scene the last look found without hands
            self.gated += 1
            return _SKIP
        return _LOOK

    def looked(self, item: CapturedFrame, seq: int, hands: bool) -> Decision:
        """MediaPipe looked at the sample ``offer`` asked for: use it (no hands) or wake up."""
        ts = item.frame.timestamp
        self.looks += 1
        if self._keepalive_due(ts) and self.motion.area > 0:  # a look on time, not on a change: not spent
            self._next_check_ts = ts + MOTION_CHECK_S
        else:
            self._schedule_next_sample(ts)
        if not hands:
            self._held.clear()  # nothing to replay: the scene was still empty when they were taken
            self._remember_look(item)
            return _USE
        replay = (*self._held, (item, seq))
        self.full_rate()
        return Decision(Action.WAKE, replay, time.time())

    def used(self, item: CapturedFrame, idle: bool) -> None:
        """The daemon used a frame and the scene is ``idle`` (or not) now: enter or leave the cycle."""
        if not idle:
            if self.mode == "idle":
                self.full_rate()
        elif self.mode == "full" and self._settings.idle_fps > 0:
            self.mode, self._next_sample_ts = "idle", item.frame.timestamp + self._period
            self._next_check_ts = None
            self._remember_look(item)  # the last full-rate look, without hands: the gate's first reference

    def woke(self, first_hand: CapturedFrame | None, replayed: int, woke_at: float) -> None:
        """The replay of a wake-up is done; ``first_hand`` is its first frame with a hand (if any)."""
        if first_hand is None:
            return
        self.wake_ms.append((woke_at - first_hand.frame.captured_at) * 1000.0)
        log.info(
            "awake: full-rate extraction %.0f ms after the first frame with a hand (%d frames replayed)",
            self.wake_ms[-1],
            replayed,
        )

    def newest_held(self) -> Held | None:
        """At the end of a file: the newest held frame, due at once (the last frames may hold a hand).

        The daemon offers it again; the older held frames stay held for its replay.
        """
        if self.mode != "idle" or not self._held:
            return None
        self._next_sample_ts = self._next_check_ts = None
        return self._held.pop()

    def full_rate(self) -> None:
        """Back to full rate (a wake-up, a reconnect, a scene no longer idle): forget the idle state."""
        self.mode = "full"
        self._held.clear()
        self._next_sample_ts = self._next_check_ts = self._last_look_ts = None
        self.motion.reset()

    # -- the schedule ------------------------------------------------------------------------

    @property
    def _period(self) -> float:
        """Seconds of capture time between idle samples (only read while ``idle_fps`` > 0)."""
        return 1.0 / self._settings.idle_fps

    def _tolerance(self) -> float:
        """Half a frame period: a frame that close before a due time counts as due (timestamps jitter)."""
        return 0.5 / (self._source_fps() or DEFAULT_FPS)

    def _sample_due(self, ts: float) -> bool:
        """Whether the idle sampler takes the frame captured at ``ts``.

        Samples follow a fixed schedule (one per ``1/idle_fps`` s) and a frame within half a frame
        period of the due time counts as due. Comparing with the last sample's timestamp instead
        would skip the frame that arrives a hair early (timestamps jitter): at 30 fps and 3 samples
        per second every interval would become 11 frames, and a wake-up a frame later.
        """
        return _due(self._next_sample_ts, self._period, self._tolerance(), ts)

    def _check_due(self, ts: float) -> bool:
        """Whether a due frame gets the motion measure (every :data:`MOTION_CHECK_S` in a still scene)."""
        return _due(self._next_check_ts, MOTION_CHECK_S, self._tolerance(), ts)

    def _keepalive_due(self, ts: float) -> bool:
        """Whether MediaPipe must look at the idle sample at ``ts`` whatever the motion gate says."""
        last = self._last_look_ts
        # no look yet, keep-alive due, or time went back (a file looped)
        return last is None or not 0.0 <= ts - last < self._settings.idle_keepalive_s - self._tolerance()

    def _schedule_next_sample(self, ts: float) -> None:
        due, period = self._next_sample_ts, self._period
        self._next_check_ts = None  # the next due frame is measured (or looked at) at once
        if due is not None and abs(ts - due) < period / 2:  # on schedule: keep it
            self._next_sample_ts = due + period
        else:  # the first sample, one after a still spell, or time jumped (a loop, a stall): from here
            self._next_sample_ts = ts + period

    # -- the motion gate ---------------------------------------------------------------------

    def _changed(self, item: CapturedFrame) -> bool:
        """The motion gate on a due sample: whether it differs from the last look's frame."""
        try:  # a still sample is never converted to RGB (nor, from a JPEG stream, decoded)
            pixels, bgr = item.frame.small_pixels()
        except BadFrame:
            return True  # MediaPipe looks, and the frame's failure is counted there
        return self.motion.changed(pixels, bgr=bgr)

    def _remember_look(self, item: CapturedFrame) -> None:
        """MediaPipe found no hands in this frame: the motion gate compares later samples with it."""
        self._last_look_ts = item.frame.timestamp
        try:
            pixels, bgr = item.frame.small_pixels()
        except BadFrame:
            self.motion.reset()  # no reference: the next due sample is looked at
            return
        self.motion.looked(pixels, bgr=bgr)


def _due(at: float | None, period: float, tolerance: float, ts: float) -> bool:
    """Whether ``ts`` has reached ``at`` (None: at once) within ``tolerance``, or time went back."""
    return at is None or not at - period - tolerance <= ts < at - tolerance
