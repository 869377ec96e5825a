"""``slr-predict`` as a real process: one clip in, top-k out, one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.recognition.classify import classify_window
from edge.recognition.inference import load_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tiny_onnx_path: Path) -> Path:
    """The real export of ``tiny_checkpoint.pt`` (10 labels), as a device would get it."""
    return tiny_onnx_path


def predict(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.commands.predict", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_json_result_matches_in_process_classification(
    model_path: Path, sample_video: Path, tiny_vectors: dict[str, np.ndarray]
) -> None:
    out = predict(str(sample_video), "--model", str(model_path), "--json", "--top-k", "3")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["frames"], result["hand_frames"], result["resampled"]) == (112, 96, False)
    assert len(result["top_k"]) == 3
    # Same answer as classifying the reference keypoints of this clip directly.
    raw = tiny_vectors["case0_raw"]
    expected = classify_window(load_model(model_path), raw, np.arange(len(raw)) / 30.0, k=3).top_k
    assert result["top_k"][0]["index"] == expected[0].index
    assert result["top_k"][0]["prob"] == pytest.approx(expected[0].prob, abs=0.05)


def test_classify_resamples_a_slow_clip(model_path: Path, tiny_vectors: dict[str, np.ndarray]) -> None:
    raw = tiny_vectors["case0_raw"]
    model = load_model(model_path)
    result = classify_window(model, raw[::3], np.arange(0, len(raw), 3) / 30.0, k=5)
    assert result.resampled is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nope.mp4"], "file not found"),
        (["{tmp}/corrupt.mp4"], "corrupt.mp4"),
        (["--camera", "/dev/video99"], "/dev/video99"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(
    model_path: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(1).bytes(20_000))
    out = predict(*[a.format(tmp=tmp_path) for a in args], "--model", str(model_path))
    assert out.returncode == 2
    assert out.stderr.startswith("slr-predict: error:") and message in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr


def test_bad_model_exits_2(model_path: Path, sample_video: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model_path.read_bytes()[:1000])
    out = predict(str(sample_video), "--model", str(bad))
    assert out.returncode == 2 and "not a usable ONNX model" in out.stderr


def test_no_hands_still_prints_and_warns(model_path: Path, tmp_path: Path) -> None:
    import cv2

    video = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for _ in range(10):
        writer.write(np.full((120, 160, 3), 128, np.uint8))
    writer.release()
    out = predict(str(video), "--model", str(model_path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["hand_frames"] == 0
    assert "warning: no hands found" in out.stderr


def test_a_bad_model_wins_over_a_bad_video_though_it_loads_beside_the_source(
    model_path: Path, tmp_path: Path
) -> None:
    """The model loads in a thread beside the source's probing; its error is still the one reported."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model_path.read_bytes()[:1000])
    out = predict(str(tmp_path / "missing.mp4"), "--model", str(bad))
    assert out.returncode == 2 and "not a usable ONNX model" in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr


def test_background_load_raises_in_the_callers_thread(model_path: Path, tmp_path: Path) -> None:
    from edge.recognition.inference import BackgroundLoad, ModelError

    assert BackgroundLoad(model_path).result().labels  # a good model arrives whole
    loading = BackgroundLoad(tmp_path / "absent.onnx")
    with pytest.raises(ModelError, match="does not exist"):
        loading.result()
    with pytest.raises(ModelError, match="does not exist"):
        loading.check()  # once failed, every frame's check raises at once
