"""Continuous signing in a file, end to end with MediaPipe: ``slr-predict --segments`` and captions equal
what the daemon publishes for the same file, and ``slr-speak`` speaks each of those segments.

The video is built at test time from the sample clip: the clip, about a second of empty scene
(its last frame, hands down, held still), the clip again. One ``slr-predict --segments --json
--srt --vtt`` run and one ``slr-edge run --source VIDEO --publish segments`` run, with a test
subscriber and ``slr-speak --to-dir`` both listening, serve every test here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt
from conftest import assert_same_top_k
from helpers_speech import assert_speech, free_endpoint, start_speak, summary, wavs

from edge.transport.subscriber import Subscriber
from tests.helpers_schema import validate

REPO = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 900


@pytest.fixture(scope="module")
def clip_gap_clip(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    video = tmp_path_factory.mktemp("continuous") / "clip_gap_clip.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-loglevel", "error", "-y", "-i", str(sample_video), "-i", str(sample_video)),
            "-filter_complex",
            "[0:v]fps=30,format=yuv420p,tpad=stop_mode=clone:stop_duration=1[a];"
            "[1:v]fps=30,format=yuv420p[b];[a][b]concat=n=2:v=1",
            *("-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-g", "30", str(video)),
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=HANG_GUARD_S,
    )
    return video


def predict(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.commands.predict", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=HANG_GUARD_S,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def predicted(tiny_onnx_path: Path, clip_gap_clip: Path) -> dict[str, Any]:
    """``slr-predict --segments --json`` with both subtitle files (every episode captioned)."""
    out_dir = clip_gap_clip.parent
    srt_path, vtt_path = out_dir / "captions.srt", out_dir / "captions.vtt"
    done = predict(
        *(str(clip_gap_clip), "--model", str(tiny_onnx_path), "--segments", "--json"),
        *("--srt", str(srt_path), "--vtt", str(vtt_path), "--min-confidence", "0", "--captions-top3"),
    )
    assert done.returncode == 0, done.stderr
    return {"segments": json.loads(done.stdout), "srt": srt_path, "vtt": vtt_path, "stderr": done.stderr}


@pytest.fixture(scope="module")
def daemon_run(tiny_onnx_path: Path, clip_gap_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The daemon on the same file; a test subscriber and ``slr-speak --to-dir`` listen to it."""
    tmp = tmp_path_factory.mktemp("daemon")
    endpoint, wav_dir, speak_log = free_endpoint(), tmp / "wav", tmp / "speak.log"
    speak = start_speak(
        *("--endpoint", endpoint, "--to-dir", str(wav_dir), "--min-confidence", "0", "--max-age", "600"),
        log=speak_log,
    )
    segments: list[dict[str, Any]] = []
    log = (tmp / "daemon.log").open("wb")
    try:
        with Subscriber(endpoint, ["segment"]) as sub:
            daemon = subprocess.Popen(
                [
                    *(sys.executable, "-m", "edge.commands.edge_cli", "run", "--model", str(tiny_onnx_path)),
                    *("--source", str(clip_gap_clip), "--endpoint", endpoint, "--publish", "segments"),
                ],
                cwd=REPO,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + HANG_GUARD_S
            while daemon.poll() is None and time.monotonic() < deadline:
                if (msg := sub.recv(timeout_s=0.5)) is not None:
                    segments.append(msg[1])
            drain_until = time.monotonic() + 3
            while time.monotonic() < drain_until:
                if (msg := sub.recv(timeout_s=0.5)) is not None:
                    segments.append(msg[1])
            daemon_code = daemon.wait(timeout=30)
        deadline = time.monotonic() + 120  # slr-speak speaks what it received, then it is stopped
        while len(wavs(wav_dir)) < len(segments) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        speak.send_signal(signal.SIGTERM)
        speak_code = speak.wait(timeout=30)
        log.close()
    return {
        "segments": segments,
        "code": daemon_code,
        "log": (tmp / "daemon.log").read_text(errors="replace"),
        "wav_dir": wav_dir,
        "speak_code": speak_code,
        "speak_log": speak_log,
    }


def test_two_episodes_each_like_the_clip(predicted: dict[str, Any], sample_predict_json: dict) -> None:
    segments = predicted["segments"]
    assert len(segments) == 2, predicted["stderr"]
    for segment in segments:
        validate("segment", segment)  # built with the protocol's builders: valid messages
        assert not segment["cut"] and segment["hand_frames"] >= 0.9 * sample_predict_json["hand_frames"]
    first, second = segments
    # The second clip starts 112 frames + 1 s after the first.
    assert round(first["start"] * 30) == 0 and round(second["start"] * 30) in range(140, 146)
    assert first["end"] < second["start"]


def test_json_equals_the_daemons_published_segments(predicted: dict[str, Any], daemon_run: dict) -> None:
    assert daemon_run["code"] == 0, daemon_run["log"]
    published = daemon_run["segments"]
    assert len(published) == len(predicted["segments"]) == 2, daemon_run["log"]
    for ours, theirs in zip(predicted["segments"], published, strict=True):
        validate("segment", theirs)
        assert_same_top_k(ours["top_k"], theirs["top_k"], tol=1e-6)
        for key in ("start", "end", "frames", "hand_frames", "cut", "resampled", "model"):
            assert ours[key] == theirs[key], key


def test_captions_parse_strictly_with_cues_inside_the_episodes(predicted: dict[str, Any]) -> None:
    segments = predicted["segments"]
    subtitles = list(srt.parse(predicted["srt"].read_text(encoding="utf-8"), ignore_errors=False))
    captions = list(webvtt.read(str(predicted["vtt"])))
    assert len(subtitles) == len(captions) == len(segments) == 2
    for subtitle, caption, segment in zip(subtitles, captions, segments, strict=True):
        start, end = subtitle.start.total_seconds(), subtitle.end.total_seconds()
        assert segment["start"] <= start < end <= segment["end"]
        assert (caption.start, caption.end) == (
            srt.timedelta_to_srt_timestamp(subtitle.start).replace(",", "."),
            srt.timedelta_to_srt_timestamp(subtitle.end).replace(",", "."),
        )
        gloss = segment["top_k"][0]["label"]
        assert subtitle.content.splitlines()[0] == caption.text == gloss
        assert caption.comments == [] or caption.comments[0].startswith("top 3: " + gloss)
    assert "NOTE top 3: " + segments[0]["top_k"][0]["label"] in predicted["vtt"].read_text(encoding="utf-8")


def test_speak_writes_one_nonsilent_wav_per_episode(daemon_run: dict) -> None:
    assert daemon_run["speak_code"] == 0
    counts = summary(daemon_run["speak_log"])
    files = wavs(daemon_run["wav_dir"])
    assert len(files) == len(daemon_run["segments"]) == counts["spoken"] == counts["received"] == 2
    for path in files:
        assert_speech(path)


def test_interrupted_captioning_leaves_no_subtitle_file(
    tiny_onnx_path: Path, clip_gap_clip: Path, tmp_path: Path
) -> None:
    """Ctrl-C while the file is being read: exit 130, the existing subtitle file untouched, no temporary."""
    old = tmp_path / "old.srt"
    old.write_text("1\n00:00:00,000 --> 00:00:01,000\nold\n", encoding="utf-8")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "edge.commands.predict", str(clip_gap_clip)),
            *("--model", str(tiny_onnx_path), "--srt", str(old), "--vtt", str(tmp_path / "new.vtt")),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    time.sleep(2.0)  # model, MediaPipe and the first frames; the whole run takes several times longer
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr.decode(errors="replace")
    assert sorted(os.listdir(tmp_path)) == ["old.srt"]
    assert old.read_text(encoding="utf-8").endswith("old\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--camera", "--segments"], "need a VIDEO file"),
        (["{video}", "--srt", "{tmp}/missing/x.srt"], "cannot write subtitles"),
        (["{video}", "--srt", "{tmp}/same", "--vtt", "{tmp}/same"], "same file"),
        (["{video}", "--srt", "{video}"], "is the input video"),
        (["{video}", "--segments", "--gap", "0"], "gap_s must be > 0"),
        (["{video}", "--segments", "--min-confidence", "1.5"], "--min-confidence"),
        (["{video}", "--min-confidence", "0.2"], "need --segments"),
    ],
)
def test_bad_segment_options_exit_2_with_one_line(
    tiny_onnx_path: Path, clip_gap_clip: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    done = predict(
        *[a.format(video=clip_gap_clip, tmp=tmp_path) for a in args], "--model", str(tiny_onnx_path)
    )
    assert done.returncode == 2 and done.stderr.startswith("slr-predict: error:"), done.stderr
    assert message in done.stderr and done.stderr.strip().count("\n") == 0
    assert os.listdir(tmp_path) == []
