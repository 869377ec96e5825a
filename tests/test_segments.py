"""Sign segments and the idle duty cycle, through the daemon's real main loop.

Scripted tests drive :class:`edge.daemon.daemon.Daemon` in process with a source whose frames
carry their index and an extractor that looks keypoints up by it (so duty cycling, which skips
frames, cannot shift what a frame "contains"). The MediaPipe tests build streams from identical
decoded frames of the sample clip plus synthetic empty-scene frames, and compare with
``slr-predict --json`` on the clip.
"""

from __future__ import annotations

import collections
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_same_top_k, predict_json

from edge.camera.frame import Frame
from edge.camera.sources import open_source
from edge.contract.layout import RIGHT_HAND, empty_frame, has_hands
from edge.contract.protocol import Segment
from edge.daemon.config import DaemonConfig
from edge.daemon.daemon import Daemon
from edge.recognition.classify import classify_window
from edge.recognition.inference import EdgeModel, load_model
from edge.recognition.inference_worker import WindowJob
from tests.helpers_schema import validate

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="module")
def model(tiny_onnx_path: Path) -> EdgeModel:
    return load_model(tiny_onnx_path)


def test_cut_open_at_eof_short_and_empty_scene(model: EdgeModel) -> None:
    # hands 10..99 (3 s: cut at max 2 s), a 2-frame flicker at 150 (dropped as short), hands from 200
    # to the end of the file (classified at EOF); frames 100..149 and 152..199 are an empty scene.
    def pattern(i: int) -> bool:
        return 10 <= i < 100 or 150 <= i < 152 or i >= 200

    daemon, pub = run_daemon(
        model,
        IndexedSource(240),
        TableExtractor(scripted_hands(pattern)),
        max_segment_s=2.0,
        gap_s=0.5,
        min_segment_frames=5,
        idle_after_s=60.0,
    )
    spans = [(round(s.start * FPS), round(s.end * FPS), s.cut) for s in pub.of("segment")]
    assert spans == [(10, 69, True), (70, 99, False), (200, 239, False)]
    for s in pub.of("segment"):
        segment_dict(s)
        assert s.hand_frames == s.frames and s.latency_ms >= 0
    assert daemon.segmenter is not None and daemon.segmenter.short == 1
    assert pub.of("status")[-1].short_segments == 1


def test_publish_setting_chooses_windows_or_segments(model: EdgeModel) -> None:
    table = scripted_hands(lambda i: 5 <= i < 60)
    _, windows = run_daemon(model, IndexedSource(90), TableExtractor(table), publish="windows")
    _, segments = run_daemon(model, IndexedSource(90), TableExtractor(table), publish="segments")
    assert windows.of("prediction") and not windows.of("segment")
    assert segments.of("segment") and not segments.of("prediction") and not segments.of("sign")


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


# -- MediaPipe: identical decoded frames of the sample clip -------------------------------------------


class ChainSource:
    """A 30 fps "file" of parts: ``("clip", path)`` decodes the clip again, ``("blank", n)`` empty frames.

    Decoding is deterministic, so every copy of the clip has exactly the frames ``slr-predict``
    decodes; timestamps run on at 1/30 s across parts.
    """

    is_live, fps, name = False, FPS, "chain.mp4"

    def __init__(self, parts: list[tuple[str, Any]], shape: tuple[int, int, int]) -> None:
        self._frames = self._iterate(parts, shape)
        self.i = 0

    @staticmethod
    def _iterate(parts: list[tuple[str, Any]], shape: tuple[int, int, int]) -> Iterator[np.ndarray]:
        blank = np.zeros(shape, np.uint8)
        for kind, arg in parts:
            if kind == "blank":
                yield from (blank for _ in range(arg))
            else:
                with open_source(str(arg)) as clip:
                    yield from (frame.rgb for frame in clip)

    def read(self) -> Frame | None:
        rgb = next(self._frames, None)
        if rgb is None:
            return None
        self.i += 1
        return Frame(rgb, (self.i - 1) / FPS, self.i - 1)

    def close(self) -> None:
        pass


def holistic() -> Any:
    from edge.keypoints.holistic import HolisticExtractor

    return HolisticExtractor(quiet=True)


@pytest.fixture(scope="module")
def clip_shape(sample_video: Path) -> tuple[int, int, int]:
    with open_source(str(sample_video)) as source:
        first = source.read()
        assert first is not None
        return first.rgb.shape


@pytest.mark.parametrize("idle_fps", [0.0, 3.0], ids=["duty-off", "duty-on"])
def test_clip_gap_clip_gives_two_segments_equal_to_slr_predict(
    model: EdgeModel,
    sample_video: Path,
    clip_shape: tuple[int, int, int],
    sample_predict_json: dict[str, Any],
    idle_fps: float,
) -> None:
    """Empty scene + clip + 1 s empty + clip: two segments, each what ``slr-predict`` says of the clip.

    With the duty cycle on, the 10 s empty lead is extracted at 3 frames/s once idle, and the first
    clip still gives exactly the keypoints of an uninterrupted run, so the same segment; no segment
    comes from the empty scene.
    """
    lead = 300 if idle_fps else 30  # only the duty cycle needs the long empty lead to go idle
    parts = [("blank", lead), ("clip", sample_video), ("blank", 30), ("clip", sample_video)]
    daemon, pub = run_daemon(model, ChainSource(parts, clip_shape), holistic(), idle_fps=idle_fps)
    segments = [segment_dict(s) for s in pub.of("segment")]
    assert len(segments) == 2, segments
    for segment, first in zip(segments, (lead, lead + 112 + 30), strict=True):
        assert_same_top_k(segment["top_k"], sample_predict_json["top_k"])
        assert segment["hand_frames"] == sample_predict_json["hand_frames"]
        assert round(segment["start"] * FPS) == first and not segment["cut"]
    if idle_fps:
        assert daemon.extracted < lead + 2 * 112 and len(daemon.wake_ms) == 1


# -- the motion gate: a still scene costs no MediaPipe, a sign that starts in one is not missed ---------


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


def test_motion_gate_misses_no_sign_that_starts_in_a_noisy_still_scene(
    model: EdgeModel,
    sample_video: Path,
    clip_shape: tuple[int, int, int],
    sample_predict_json: dict[str, Any],
) -> None:
    """10 s of a noisy still room, then the clip (between two samples): the segment ``slr-predict`` gives.

    Real MediaPipe throughout. While the room is still, samples are gated; the first sample of the
    clip changes the frame, MediaPipe looks, and the replay starts from the clip's first frame, so
    no hand frame is lost: the segment starts at the clip's first frame and has every hand frame.
    """
    lead = 300 + 7

    class Counting:
        def __init__(self) -> None:
            self.inner, self.calls = holistic(), 0

        def extract(self, rgb: np.ndarray) -> np.ndarray:
            self.calls += 1
            return self.inner.extract(rgb)

        def reset(self) -> None:
            self.inner.reset()

        def close(self) -> None:
            self.inner.close()

    extractor = Counting()
    source = NoisyRoomSource(still_room(sample_video, clip_shape), lead, clip=sample_video)
    daemon, pub = run_daemon(model, source, extractor, idle_fps=3.0)
    (segment,) = [segment_dict(s) for s in pub.of("segment")]
    assert_same_top_k(segment["top_k"], sample_predict_json["top_k"])
    assert segment["hand_frames"] == sample_predict_json["hand_frames"]
    assert round(segment["start"] * FPS) == lead and not segment["cut"]
    assert len(daemon.wake_ms) == 1
    # idle from 3 s to 10.2 s: 22 samples, of which only the keep-alives and the clip's were looked at
    print(f"{daemon.gated} samples gated, {daemon.idle_looks} looked at, {extractor.calls} extractions")
    assert daemon.gated >= 15 and daemon.idle_looks <= 5
    assert extractor.calls <= 91 + daemon.idle_looks + 1 + 10 + 112  # + the blank, the replay, the clip


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
    from edge.daemon.daemon import MOTION_CHECK_S

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


def test_demo_gif_segments_follow_hand_presence(model: EdgeModel, demo_gif: Path) -> None:
    """Continuous signing: segments start and end on hand frames, with >= gap_s without hands around."""

    class Recording:
        def __init__(self) -> None:
            self.inner = holistic()
            self.hands: list[bool] = []

        def extract(self, rgb: np.ndarray) -> np.ndarray:
            kp = self.inner.extract(rgb)
            self.hands.append(bool(has_hands(kp)))
            return kp

        def reset(self) -> None:
            self.inner.reset()

        def close(self) -> None:
            self.inner.close()

    extractor = Recording()
    source = open_source(str(demo_gif))
    fps = source.fps or 10.0
    gap = 0.5
    daemon, pub = run_daemon(model, source, extractor, gap_s=gap, idle_fps=0.0, min_segment_frames=3)
    hands = np.array(extractor.hands)
    segments = [segment_dict(s) for s in pub.of("segment")]
    bounds = [(round(s["start"] * fps), round(s["end"] * fps)) for s in segments]
    print(f"demo GIF ({len(hands)} frames at {fps:g} fps), segments (first, last frame):", bounds)
    print("hand presence:", "".join("1" if h else "0" for h in hands))
    assert segments, "the demo GIF holds signing"
    gap_frames = int(np.ceil(gap * fps - 1e-6))
    for (first, last), segment in zip(bounds, segments, strict=True):
        assert hands[first] and hands[last]
        assert segment["hand_frames"] == int(hands[first : last + 1].sum())
        assert not hands[max(0, first - gap_frames) : first].any() or first == 0 or segment is segments[0]
        quiet_after = hands[last + 1 : last + 1 + gap_frames]
        assert not quiet_after.any() or segment["cut"]
    # everything with hands is in a segment unless it was a dropped short flicker
    covered = np.zeros(len(hands), bool)
    for first, last in bounds:
        covered[first : last + 1] = True
    assert hands[~covered].sum() <= 3 * daemon.segmenter.short  # type: ignore[union-attr]


# -- live: ffmpeg -re into a local MPEG-TS socket -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("transport", ["mpegts", "mjpeg"])
def test_live_stream_of_the_clip_gives_one_segment_with_the_same_top1(
    tiny_onnx_path: Path, sample_video: Path, tmp_path: Path, transport: str
) -> None:
    """The clip after 1.5 s of empty scene, served live: one segment, top-1 as ``slr-predict`` on that file.

    The lead-in is what a camera shows before someone signs, and it absorbs the burst of frames
    buffered while the daemon probes the new stream (a live source keeps only the newest of
    those, so a clip served from its first frame would lose its first ~20 frames). Served as
    H.264 in MPEG-TS, and as Motion-JPEG over HTTP (an MJPEG camera: the daemon keeps its frames
    as JPEG and decodes those it uses with libjpeg, ``slr-predict`` decodes the file with FFmpeg).
    """
    from edge.transport.subscriber import Subscriber

    mjpeg = transport == "mjpeg"
    stream = tmp_path / ("lead_in_and_clip.mkv" if mjpeg else "lead_in_and_clip.mp4")
    x264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "16")
    codec = ("-c:v", "mjpeg", "-q:v", "3") if mjpeg else x264
    subprocess.run(
        [
            *("ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=black:s=720x1280:r=30:d=1.5"),
            *("-i", str(sample_video), "-filter_complex"),
            "[0:v]format=yuv420p[a];[1:v]format=yuv420p,fps=30[b];[a][b]concat=n=2:v=1",
            *codec,
            *("-g", "30", str(stream)),
        ],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    expected = predict_json(tiny_onnx_path, stream)
    port = free_port()
    url = f"http://127.0.0.1:{port}/cam.mjpg" if mjpeg else f"tcp://127.0.0.1:{port}"
    serve = ("-f", "mpjpeg", "-listen", "1", url) if mjpeg else ("-f", "mpegts", f"{url}?listen=1")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    log = (tmp_path / "daemon.log").open("wb")
    # The daemon starts first and waits for the stream (retrying), so that once ffmpeg serves it
    # the clip plays at 30 fps to a daemon that is up: nothing piles up in the socket meanwhile.
    daemon = subprocess.Popen(
        [
            *(sys.executable, "-m", "edge.commands.edge_cli", "run", "--model", str(tiny_onnx_path)),
            *("--source", url, "--endpoint", endpoint, "--publish", "segments"),
        ],
        cwd=REPO,
        stdout=log,
        stderr=log,
    )
    ffmpeg: subprocess.Popen[bytes] | None = None
    segments: list[dict[str, Any]] = []
    try:
        with Subscriber(endpoint, ["segment", "status"]) as sub:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and (msg := sub.recv(timeout_s=1.0)) is None:
                pass  # until the daemon is up (its first status)
            ffmpeg = subprocess.Popen(
                [
                    *("ffmpeg", "-loglevel", "error", "-re", "-i", str(stream), "-c", "copy", *serve),
                ],
                stdin=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 120  # the clip lasts 3.7 s; the daemon retries within 10 s
            while time.monotonic() < deadline:
                msg = sub.recv(timeout_s=0.5)
                if msg is not None and msg[0] == "segment":
                    segments.append(msg[1])
                elif msg is not None and ffmpeg.poll() is not None and msg[1]["camera"] == "lost":
                    break  # the stream ended: the open episode has been handed to the segment thread
            # The episode is classified after the stream ends; status keeps coming, so drain for a
            # bounded time rather than until silence.
            drain_until = time.monotonic() + 15
            while time.monotonic() < drain_until:
                msg = sub.recv(timeout_s=0.5)
                if msg is not None and msg[0] == "segment":
                    segments.append(msg[1])
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        if ffmpeg is not None and ffmpeg.poll() is None:
            ffmpeg.kill()
        log.close()
    text = (tmp_path / "daemon.log").read_text(errors="replace")
    assert len(segments) == 1, text
    (segment,) = segments
    validate("segment", segment)
    assert segment["top_k"][0]["label"] == expected["top_k"][0]["label"], (segment, expected, text)
    # A live stream is extracted at whatever rate the machine allows (about 28 of 30 frames/s when
    # quiet, a handful when it is busy): the segment holds at least min_segment_frames of them.
    assert segment["hand_frames"] >= 5 and segment["frames"] >= segment["hand_frames"]
