"""Sign segments through the daemon's real main loop, duty cycle on and off.

Scripted tests drive :class:`edge.daemon.daemon.Daemon` in process (tests/helpers_daemon.py). The
MediaPipe tests build streams from identical decoded frames of the sample clip plus synthetic
empty-scene frames, and compare with ``slr-predict --json`` on the clip. The idle duty cycle's own
tests, scripted and through the daemon, are in tests/test_idle.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_same_top_k, predict_json
from helpers_daemon import (
    FPS,
    IndexedSource,
    NoisyRoomSource,
    TableExtractor,
    frame_shape,
    run_daemon,
    scripted_hands,
    segment_dict,
    still_room,
)

from edge.camera.frame import Frame
from edge.camera.sources import open_source
from edge.contract.layout import has_hands
from edge.recognition.inference import EdgeModel, load_model
from tests.helpers_schema import validate

REPO = Path(__file__).resolve().parents[1]


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
    return frame_shape(sample_video)


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
