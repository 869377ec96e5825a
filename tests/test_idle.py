"""The idle duty cycle: :class:`edge.daemon.idle.IdleSampler` alone, then through the daemon.

The first half scripts frames and capture times (no MediaPipe, no model, no threads): the
schedule despite jitter, holding and its bound, the motion gate's skips and keep-alive, the
wake-up and its replay in order, and every way back to full rate. The second half runs the
daemon's real main loop with scripted extractors (tests/helpers_daemon.py): what the cycle
saves and that it loses no prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers_daemon import (
    FPS,
    IndexedSource,
    NoisyRoomSource,
    TableExtractor,
    frame_shape,
    run_daemon,
    scripted_hands,
    still_room,
)

from edge.camera.capture import CapturedFrame
from edge.camera.frame import Frame
from edge.contract.layout import empty_frame
from edge.daemon.config import DaemonConfig
from edge.daemon.idle import MAX_HELD_FRAMES, MOTION_CHECK_S, Action, IdleSampler
from edge.recognition.classify import classify_window
from edge.recognition.inference import EdgeModel, load_model
from edge.recognition.inference_worker import WindowJob

# -- the cycle alone: scripted frames and capture times ----------------------------------------------

#: A still scene (a flat wall) and the same scene with a hand-sized patch of another colour in it.
STILL = np.full((48, 64, 3), 120, np.uint8)


def with_patch(left: int = 20) -> np.ndarray:
    rgb = STILL.copy()
    rgb[14:34, left : left + 16] = (205, 160, 130)  # ~10 % of the frame
    return rgb


def captured(
    i: int, pixels: np.ndarray = STILL, *, jitter: float = 0.0, ts: float | None = None
) -> CapturedFrame:
    """Frame ``i`` of a 30 fps camera (capture time ``i / 30 + jitter`` unless ``ts``), on connection 1."""
    at = i / FPS + jitter if ts is None else ts
    return CapturedFrame(Frame(pixels, at, i, captured_at=1000.0 + at), 1)


def sampler(**settings: Any) -> IdleSampler:
    """A cycle with the daemon's settings (its defaults unless given) on a 30 fps source."""
    return IdleSampler(DaemonConfig(model="m.onnx", **settings), lambda: FPS)


def idle_at(cycle: IdleSampler, i: int, pixels: np.ndarray = STILL) -> None:
    """Frame ``i`` was used at full rate and the scene became idle: the cycle starts from it."""
    cycle.used(captured(i, pixels), idle=True)
    assert cycle.mode == "idle"


def run(cycle: IdleSampler, frames: list[CapturedFrame], hands: bool = False) -> dict[Action, list[int]]:
    """Offer ``frames`` as the daemon does (a look sees ``hands``); the frame indexes by action."""
    seen: dict[Action, list[int]] = {action: [] for action in Action}
    for item in frames:
        i = item.frame.index
        decision = cycle.offer(item, i)
        if decision.action is Action.LOOK:
            seen[Action.LOOK].append(i)
            decision = cycle.looked(item, i, hands)
        seen[decision.action].append(i)
        if decision.action in (Action.USE, Action.FULL_RATE):
            cycle.used(item, idle=True)
        if decision.action is Action.WAKE:
            break
    return seen


def test_full_rate_until_the_scene_is_idle_and_never_with_idle_fps_0() -> None:
    cycle = sampler(idle_fps=3.0)
    assert cycle.offer(captured(0), 1).action is Action.FULL_RATE
    cycle.used(captured(0), idle=False)
    assert cycle.mode == "full"
    idle_at(cycle, 1)
    assert cycle.offer(captured(2), 3).action is Action.HOLD
    never = sampler(idle_fps=0.0)
    never.used(captured(0), idle=True)
    assert never.mode == "full" and never.offer(captured(1), 2).action is Action.FULL_RATE


def test_samples_keep_their_schedule_despite_jitter() -> None:
    """3 samples/s of 30 fps are every 10th frame: a frame a hair early is due, not held for one more."""
    jitter = np.random.default_rng(0).uniform(-0.003, 0.003, 300)
    cycle = sampler(idle_fps=3.0, idle_motion=0.0)
    idle_at(cycle, 0)
    seen = run(cycle, [captured(i, jitter=jitter[i]) for i in range(1, 300)])
    assert seen[Action.LOOK] == list(range(10, 300, 10))  # 333 ms, never 11 frames (367 ms)
    assert seen[Action.USE] == seen[Action.LOOK] and not seen[Action.SKIP]
    assert len(seen[Action.HOLD]) == 299 - len(seen[Action.LOOK])
    assert cycle.looks == len(seen[Action.LOOK]) and cycle.gated == 0


def test_a_look_with_a_hand_wakes_and_replays_the_held_frames_and_the_sample_in_order() -> None:
    cycle = sampler(idle_fps=3.0, idle_motion=0.0)
    idle_at(cycle, 0)
    for i in range(1, 10):
        assert cycle.offer(captured(i), 100 + i).action is Action.HOLD
    assert cycle.held == 9
    sample = captured(10)
    assert cycle.offer(sample, 110).action is Action.LOOK
    wake = cycle.looked(sample, 110, hands=True)
    assert wake.action is Action.WAKE
    assert [(item.frame.index, seq) for item, seq in wake.replay] == [(i, 100 + i) for i in range(1, 11)]
    assert wake.replay[-1][0] is sample
    assert cycle.mode == "full" and cycle.held == 0
    assert cycle.offer(captured(11), 111).action is Action.FULL_RATE
    # the wake-up's figure runs from the first replayed frame with a hand (captured at 1000 + 9/30)
    cycle.woke(wake.replay[8][0], len(wake.replay), woke_at=1000.0 + 9 / FPS + 0.05)
    assert list(cycle.wake_ms) == [pytest.approx(50.0)]
    cycle.woke(None, len(wake.replay), woke_at=2000.0)  # the replay found no hand: nothing to time
    assert len(cycle.wake_ms) == 1


def test_held_frames_are_bounded_and_a_wake_replays_the_newest() -> None:
    """A fast camera and a low idle_fps: only the newest MAX_HELD_FRAMES frames are kept."""
    cycle = sampler(idle_fps=0.1, idle_motion=0.0)  # one sample per 10 s: 299 frames in between
    idle_at(cycle, 0)
    seen = run(cycle, [captured(i) for i in range(1, 301)], hands=True)
    assert seen[Action.LOOK] == seen[Action.WAKE] == [300]
    assert cycle.held == 0
    # the last WAKE's replay, taken again: the newest 64 held frames and the sample, in order
    cycle = sampler(idle_fps=0.1, idle_motion=0.0)
    idle_at(cycle, 0)
    for i in range(1, 300):
        cycle.offer(captured(i), i)
    assert cycle.held == MAX_HELD_FRAMES
    assert cycle.offer(captured(300), 300).action is Action.LOOK
    wake = cycle.looked(captured(300), 300, hands=True)
    assert [seq for _, seq in wake.replay] == list(range(300 - MAX_HELD_FRAMES, 301))


def test_a_still_scene_is_skipped_except_for_the_keep_alive() -> None:
    """Gate on: a still due sample is measured every MOTION_CHECK_S, never looked at, except every 2 s."""
    cycle = sampler(idle_fps=3.0, idle_motion=0.5, idle_keepalive_s=2.0)
    idle_at(cycle, 0)  # the last full-rate look, without hands: the gate's reference
    seen = run(cycle, [captured(i) for i in range(1, 200)])
    check = round(MOTION_CHECK_S * FPS)
    assert seen[Action.LOOK] == seen[Action.USE] == [60, 120, 180]
    # the first due sample (frame 10) and every 3rd frame after it, and after each keep-alive
    expected = [
        i for start, end in ((10, 60), (63, 120), (123, 180), (183, 200)) for i in range(start, end, check)
    ]
    assert seen[Action.SKIP] == expected
    assert cycle.gated == len(expected) and cycle.looks == 3
    assert cycle.held < check  # each skip lets the held frames go: they showed the same still scene


def test_a_change_in_a_still_scene_is_looked_at_within_a_motion_check() -> None:
    """A hand raised between two measures: looked at on the next one, the frames since the last replayed."""
    cycle = sampler(idle_fps=3.0, idle_motion=0.5)
    idle_at(cycle, 0)
    frames = [captured(i, STILL if i < 25 else with_patch()) for i in range(1, 60)]
    seen = run(cycle, frames, hands=True)
    assert seen[Action.SKIP] == [10, 13, 16, 19, 22]
    assert seen[Action.LOOK] == seen[Action.WAKE] == [25]
    # replayed: the frames held since the last still measure (22), then the sample
    cycle2 = sampler(idle_fps=3.0, idle_motion=0.5)
    idle_at(cycle2, 0)
    for item in frames[:24]:
        cycle2.offer(item, item.frame.index)
    assert cycle2.offer(frames[24], 25).action is Action.LOOK
    wake = cycle2.looked(frames[24], 25, hands=True)
    assert [item.frame.index for item, _ in wake.replay] == [23, 24, 25]


def test_a_scene_that_keeps_changing_is_looked_at_once_per_period() -> None:
    cycle = sampler(idle_fps=3.0, idle_motion=0.5)
    idle_at(cycle, 0)
    # the patch moves every 10 frames: each sample differs from the look before it
    seen = run(cycle, [captured(i, with_patch(left=4 + 4 * ((i // 10) % 10))) for i in range(1, 100)])
    assert seen[Action.LOOK] == list(range(10, 100, 10)) and not seen[Action.SKIP]


def test_a_failed_look_spends_nothing_and_the_next_frame_is_due() -> None:
    cycle = sampler(idle_fps=3.0, idle_motion=0.0)
    idle_at(cycle, 0)
    for i in range(1, 10):
        cycle.offer(captured(i), i)
    assert cycle.offer(captured(10), 10).action is Action.LOOK  # ... and its extraction fails
    assert cycle.offer(captured(11), 11).action is Action.LOOK
    assert cycle.looks == 0 and cycle.held == 9


def test_a_frame_the_gate_cannot_measure_is_looked_at() -> None:
    """A JPEG frame whose data does not decode: no motion measure, MediaPipe looks (and counts it)."""
    cycle = sampler(idle_fps=3.0, idle_motion=0.5)
    idle_at(cycle, 0)
    for i in range(1, 10):
        cycle.offer(captured(i), i)
    broken = CapturedFrame(Frame.from_jpeg(np.zeros(64, np.uint8), 64, 48, 10 / FPS, 10), 1)
    assert cycle.offer(broken, 10).action is Action.LOOK


def test_every_way_back_to_full_rate_forgets_the_idle_state() -> None:
    # the scene is no longer idle (the tracker says so)
    cycle = sampler(idle_fps=3.0, idle_motion=0.5)
    idle_at(cycle, 0)
    run(cycle, [captured(i) for i in range(1, 12)])
    assert cycle.held
    cycle.used(captured(12), idle=False)
    assert cycle.mode == "full" and cycle.held == 0
    assert cycle.offer(captured(13), 13).action is Action.FULL_RATE
    # a reconnect (the daemon's call), then idle again: a fresh schedule from that frame, no stale reference
    cycle = sampler(idle_fps=3.0, idle_motion=0.5)
    idle_at(cycle, 0)
    run(cycle, [captured(i) for i in range(1, 40)])
    cycle.full_rate()
    assert cycle.mode == "full" and cycle.held == 0 and cycle.motion.last_fraction is None
    idle_at(cycle, 100, with_patch())
    seen = run(cycle, [captured(i, with_patch()) for i in range(101, 115)])
    assert seen[Action.SKIP] == [110, 113]  # the reference is frame 100's scene, the schedule from 100


def test_time_going_back_makes_a_sample_due_and_looked_at() -> None:
    """A looped file restarts its capture times: the next frame is due and its keep-alive too."""
    cycle = sampler(idle_fps=3.0, idle_motion=0.5)
    idle_at(cycle, 100)
    run(cycle, [captured(i) for i in range(101, 125)])
    assert cycle.offer(captured(0), 200).action is Action.LOOK  # still, but time went back


def test_the_end_of_a_file_looks_at_the_newest_held_frame() -> None:
    cycle = sampler(idle_fps=3.0, idle_motion=0.5)
    assert cycle.newest_held() is None  # full rate: nothing held
    idle_at(cycle, 0)
    for i in range(1, 8):
        cycle.offer(captured(i, with_patch()), i)
    newest = cycle.newest_held()
    assert newest is not None and newest[1] == 7 and cycle.held == 6
    assert cycle.offer(*newest).action is Action.LOOK  # due at once (the still scene changed)
    wake = cycle.looked(*newest, hands=True)
    assert [seq for _, seq in wake.replay] == list(range(1, 8))


# -- through the daemon: scripted extractors, the real main loop ---------------------------------------


@pytest.fixture(scope="module")
def model(tiny_onnx_path: Path) -> EdgeModel:
    return load_model(tiny_onnx_path)


@pytest.fixture(scope="module")
def clip_keypoints(tiny_vectors: dict[str, np.ndarray]) -> np.ndarray:
    """The reference extraction of the sample clip (hands in frames 0..95)."""
    return tiny_vectors["case0_raw"]


def test_duty_cycle_loses_no_prediction_scripted(model: EdgeModel, clip_keypoints: np.ndarray) -> None:
    """10 s of empty scene, then the clip: from the first hand frame on, the same windows and segment."""
    lead = 300 + 7  # the clip starts between two idle samples

    def table(i: int) -> np.ndarray:
        if i < lead:
            kp = empty_frame()
            kp[:468] = 0.4
            return kp
        return clip_keypoints[i - lead]

    n = lead + len(clip_keypoints)
    off_jobs: list[WindowJob] = []
    on_jobs: list[WindowJob] = []
    off, off_pub = run_daemon(model, IndexedSource(n), TableExtractor(table), off_jobs, idle_fps=0.0)
    on_extractor = TableExtractor(table)
    # the frames' pixels only carry their index, not what the table says they show: no motion gate
    on, on_pub = run_daemon(model, IndexedSource(n), on_extractor, on_jobs, idle_fps=3.0, idle_motion=0.0)
    # idle from 3 s to 10.2 s: 3 frames/s instead of 30; then the clip and the replayed frames
    assert off.extracted == n and on.extracted <= 90 + 23 + len(clip_keypoints) + 11
    assert len(on.wake_ms) == 1
    # waking: the sample with a hand, a blank frame (MediaPipe forgets it), then the frames held
    # since the previous sample and everything after, in order
    blank = on_extractor.calls.index(-1)
    replay = on_extractor.calls[blank + 1 :]
    assert lead <= on_extractor.calls[blank - 1] < lead + 10
    assert replay == list(range(replay[0], n)) and lead - 10 < replay[0] <= lead

    # The windows offered to inference (the worker may skip some when busy, so compare offers).
    def from_first_hand(jobs: list[WindowJob]) -> list[WindowJob]:
        return [job for job in jobs if job.ts[-1] >= lead / FPS]

    got, expected = from_first_hand(on_jobs), from_first_hand(off_jobs)
    assert len(expected) == len(clip_keypoints) // 8 + 1  # every 8th frame, and the one at the end
    assert [job.ts[-1] for job in got] == [job.ts[-1] for job in expected]
    for a, b in zip(got, expected, strict=True):
        ra, rb = (classify_window(model, j.raw, j.ts, k=5, max_frames=model.window) for j in (a, b))
        assert ra.resampled is rb.resampled is False  # sparse idle frames do not make it resample
        assert [(e.label, e.index) for e in ra.top_k] == [(e.label, e.index) for e in rb.top_k]
        assert np.allclose([e.prob for e in ra.top_k], [e.prob for e in rb.top_k], rtol=0, atol=1e-6)
        assert ra.hand_frames == rb.hand_frames
    (seg_on,), (seg_off,) = on_pub.of("segment"), off_pub.of("segment")
    assert seg_on.start == seg_off.start == round(lead / FPS, 4)  # the first hand frame was not delayed
    assert list(seg_on.top_k) == list(seg_off.top_k)
    assert {s.extraction_mode for s in on_pub.of("status")} <= {"full", "idle"}


class JitteredSource(IndexedSource):
    """Like :class:`IndexedSource`, with capture times that jitter by up to 3 ms (a live camera's)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        super().__init__(n)
        self.jitter = np.random.default_rng(seed).uniform(-0.003, 0.003, n)

    def read(self) -> Frame | None:
        frame = super().read()
        if frame is None:
            return None
        return Frame(frame.rgb, frame.timestamp + self.jitter[frame.index], frame.index)


def test_idle_samples_keep_their_schedule_despite_jitter(model: EdgeModel) -> None:
    """3 samples/s of 30 fps are every 10th frame: a frame a hair early is due, not held for one more."""
    extractor = TableExtractor(scripted_hands(lambda i: False))
    run_daemon(model, JitteredSource(20 * 30), extractor, idle_fps=3.0, idle_motion=0.0)
    idle = [i for i in extractor.calls if i > 4 * 30][:-1]  # idle from 3 s on; the last is EOF's
    gaps = np.diff(idle)
    assert set(gaps.tolist()) == {10}, gaps  # 333 ms, never 11 frames (367 ms)


@pytest.fixture(scope="module")
def clip_shape(sample_video: Path) -> tuple[int, int, int]:
    return frame_shape(sample_video)


@pytest.fixture
def full_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts full-size JPEG decodes (``cv2.imdecode`` with ``IMREAD_COLOR``) while the test runs."""
    import cv2

    count = [0]
    real = cv2.imdecode

    def counting(buf: Any, flags: int) -> Any:
        count[0] += flags == cv2.IMREAD_COLOR
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", counting)
    return count


@pytest.mark.parametrize("jpeg", [False, True], ids=["decoded", "mjpeg"])
def test_motion_gate_keeps_mediapipe_off_a_noisy_still_scene(
    model: EdgeModel,
    sample_video: Path,
    clip_shape: tuple[int, int, int],
    jpeg: bool,
    full_decodes: list[int],
) -> None:
    """20 s of a noisy still room: once idle, MediaPipe looks only at the keep-alive (every 2 s).

    From an MJPEG camera (frames kept as JPEG), the gate measures 1/8-scale decodes, noise included,
    and only the frames MediaPipe looks at are ever decoded in full.
    """
    source = NoisyRoomSource(still_room(sample_video, clip_shape), 20 * 30, jpeg=jpeg)
    extractor = TableExtractor(scripted_hands(lambda i: False), source.index_of if jpeg else None)
    daemon, pub = run_daemon(model, source, extractor, idle_fps=3.0, idle_keepalive_s=2.0)
    idle_from = 3 * 30 + 1  # idle_after_s 3: frames 0..90 at full rate
    assert extractor.calls[:idle_from] == list(range(idle_from))
    looks = extractor.calls[idle_from:]
    print(f"idle looks at frames {looks}; {daemon.gated} samples gated, {daemon.idle_looks} looked at")
    assert len(looks) == daemon.idle_looks and looks, looks
    assert set(np.diff([idle_from - 1, *looks]).tolist()) == {60}  # only keep-alives: none from noise
    assert daemon.gated >= 5 * len(looks)  # between two keep-alives, 5 of the 6 samples were skipped
    assert not daemon.wake_ms and not pub.of("segment")
    if jpeg:  # 600 frames, of which the 91 at full rate and the looks were decoded: nothing else
        assert full_decodes[0] == len(extractor.calls) == idle_from + len(looks)
        return
    # the same scene without the gate: every sample is looked at
    plain = TableExtractor(scripted_hands(lambda i: False))
    run_daemon(model, NoisyRoomSource(still_room(sample_video, clip_shape), 20 * 30), plain, idle_motion=0.0)
    assert set(np.diff(plain.calls[idle_from - 1 : -1]).tolist()) == {10}  # the last: EOF looks at the newest


class HandRaisedSource(NoisyRoomSource):
    """The noisy still room; from frame ``raised`` on, a hand-sized skin-coloured patch is in view."""

    def __init__(self, room: np.ndarray, n: int, raised: int, *, jpeg: bool = False) -> None:
        super().__init__(room, n, jpeg=jpeg)
        self.raised = raised

    def paint(self, rgb: np.ndarray, i: int) -> None:
        if i >= self.raised:
            # ~3.5 % of a 720x1280 frame, skin as bright as the bluish-grey wall behind it (grey
            # 170 against 168): only its colour tells it from the wall
            rgb[500:700, 300:460] = (205, 160, 130)


@pytest.mark.parametrize(
    ("raised", "jpeg"),
    [(151, False), (163, False), (205, False), (163, True)],
    ids=["after-keep-alive", "between-samples", "later", "between-samples-mjpeg"],
)
def test_a_hand_raised_into_a_still_scene_is_looked_at_within_a_motion_check(
    model: EdgeModel,
    sample_video: Path,
    clip_shape: tuple[int, int, int],
    raised: int,
    jpeg: bool,
    full_decodes: list[int],
) -> None:
    """A still room does not spend the idle schedule: the first changed frame is looked at within 0.1 s.

    Frame 151 comes right after a keep-alive look (frame 150), where the next scheduled sample would
    be 9 frames later. Whatever the phase, MediaPipe looks at most 3 frames (MOTION_CHECK_S) after
    the hand appeared, the replay starts at or before it, and the segment starts at its first frame.
    The same from an MJPEG camera, whose frames the gate sees as 1/8-scale decodes: held frames
    that a still measure lets go are never decoded, the replayed ones are.
    """
    source = HandRaisedSource(still_room(sample_video, clip_shape), raised + 60, raised, jpeg=jpeg)
    extractor = TableExtractor(scripted_hands(lambda i: i >= raised), source.index_of if jpeg else None)
    daemon, pub = run_daemon(model, source, extractor, idle_fps=3.0)
    blank = extractor.calls.index(-1)
    woke_on = extractor.calls[blank - 1]  # the idle look that found the hand
    replay = extractor.calls[blank + 1 :]
    print(f"looks before the hand {extractor.calls[91:blank]}, {daemon.gated} still, woke on {woke_on}")
    assert raised <= woke_on <= raised + round(MOTION_CHECK_S * FPS)
    assert replay == list(range(replay[0], raised + 60)) and replay[0] <= raised
    assert len(daemon.wake_ms) == 1
    # before the hand, only the keep-alives (every 60 frames from the last full-rate frame, 90) were looked at
    assert [i for i in extractor.calls[91:blank] if i < raised] == list(range(150, raised, 60))
    (segment,) = pub.of("segment")
    assert segment.start == round(raised / FPS, 4)
    if jpeg:  # each frame MediaPipe saw was decoded once (the woken sample twice seen), none other
        seen = set(extractor.calls) - {-1}
        assert full_decodes[0] == len(seen) < raised + 60
