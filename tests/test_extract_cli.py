"""``slr-extract`` end to end (real subprocesses) plus its job-list helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.contract.keypoint_file import load_keypoints
from edge.contract.layout import FACE, LEFT_HAND, NUM_LANDMARKS, POSE, RIGHT_HAND
from edge.dataset.jobs import Job, jobs_from_annotations, parse_shard, select_shard

REPO_ROOT = Path(__file__).resolve().parents[1]
SHORT_FRAMES = 15
HEADER = "attachment_id\tuser_id\twidth\theight\tlength\ttext\ttrain\tbegin\tend\n"


def run_cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.commands.extract", *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> Path:
    """The first frames of the sample, re-encoded at test time (nothing derived is committed)."""
    path = tmp_path_factory.mktemp("clips") / "short.mp4"
    cap = cv2.VideoCapture(str(sample_video))
    writer = None
    for _ in range(SHORT_FRAMES):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            height, width = frame.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
        writer.write(frame)
    writer.release()
    cap.release()
    return path


def _corrupt(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    return path


def _only_results(out_dir: Path) -> list[str]:
    names = sorted(p.name for p in out_dir.iterdir())
    assert all(name.endswith(".npz") and not name.startswith(".") for name in names), names
    return names


def test_one_video(tmp_path: Path, sample_video: Path, tiny_vectors: dict[str, np.ndarray]) -> None:
    out = tmp_path / "out"
    done = run_cli(sample_video, "-o", out, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert _only_results(out) == ["slovo_sample.npz"]
    clip = load_keypoints(out / "slovo_sample.npz")
    assert clip.landmarks.shape == (112, NUM_LANDMARKS, 3) and clip.landmarks.dtype == np.float32
    assert clip.timestamps.dtype == np.float64 and clip.timestamps[0] == 0.0
    assert np.all(np.diff(clip.timestamps) > 0)
    assert clip.fps == 30.0
    ref = tiny_vectors["case0_raw"]
    for rows in (FACE, LEFT_HAND, POSE, RIGHT_HAND):
        ours_present = ~np.isnan(clip.landmarks[:, rows]).all(axis=(1, 2))
        ref_present = ~np.isnan(ref[:, rows]).all(axis=(1, 2))
        assert (ours_present == ref_present).mean() >= 0.95
    assert "extracted 1 videos (112 frames" in done.stderr
    assert "Traceback" not in done.stderr and "W0000" not in done.stderr  # native log lines hidden


def test_bad_video_is_reported_and_skipped(tmp_path: Path, short_clip: Path) -> None:
    bad = _corrupt(tmp_path / "broken.mp4")
    missing = tmp_path / "missing.avi"
    out = tmp_path / "out"
    done = run_cli(bad, short_clip, missing, "-o", out, "--workers", "2")
    assert done.returncode == 1, done.stderr
    assert _only_results(out) == ["short.npz"]
    assert len(load_keypoints(out / "short.npz")) == SHORT_FRAMES
    failed = [line for line in done.stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 2
    assert any("broken" in line and str(bad) in line for line in failed)
    assert any("missing" in line and "file not found" in line for line in failed)
    assert "failed 2" in done.stderr and "Traceback" not in done.stderr


def test_resume_skips_done_videos_and_overwrite_redoes_them(tmp_path: Path, short_clip: Path) -> None:
    out = tmp_path / "out"
    first = run_cli(short_clip, "-o", out, "--workers", "1")
    assert first.returncode == 0, first.stderr
    written = (out / "short.npz").stat().st_mtime_ns

    again = run_cli(short_clip, "-o", out, "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert "1 already done (skipped), 0 to extract" in again.stderr
    assert (out / "short.npz").stat().st_mtime_ns == written

    redo = run_cli(short_clip, "-o", out, "--workers", "1", "--overwrite")
    assert redo.returncode == 0, redo.stderr
    assert "0 already done (skipped), 1 to extract" in redo.stderr
    assert (out / "short.npz").stat().st_mtime_ns != written
    assert _only_results(out) == ["short.npz"]


def _slovo_tree(root: Path, clip: Path, with_videos: dict[str, str], without: list[str]) -> Path:
    """A Slovo-like folder: annotations.csv (TABs) and videos under train/ and test/."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    for video_id, sub in with_videos.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / f"{video_id}.mp4").symlink_to(clip)
        lines.append(
            f"{video_id}\tu1\t720\t1280\t{SHORT_FRAMES}\tслово\t{sub == 'train'}\t0\t{SHORT_FRAMES}\n"
        )
    lines += [f"{video_id}\tu2\t720\t1280\t50\tдругое\tTrue\t0\t50\n" for video_id in without]
    (root / "annotations.csv").write_text("".join(lines), encoding="utf-8")
    return root / "annotations.csv"


def test_annotations_mode(tmp_path: Path, short_clip: Path) -> None:
    annotations = _slovo_tree(tmp_path / "slovo", short_clip, {"aaa-1": "train", "bbb-2": "test"}, ["ccc-3"])
    out = tmp_path / "out"
    done = run_cli("--annotations", annotations, "--videos", tmp_path / "slovo", "-o", out, "--workers", "1")
    assert done.returncode == 1, done.stderr
    assert _only_results(out) == ["aaa-1.npz", "bbb-2.npz"]
    assert "FAILED ccc-3: no video ccc-3.*" in done.stderr
    # --videos defaults to the annotations' folder; both are done now, the missing one fails again.
    again = run_cli("--annotations", annotations, "-o", out)
    assert again.returncode == 1 and "2 already done" in again.stderr


def test_annotations_with_missing_columns(tmp_path: Path) -> None:
    csv_path = tmp_path / "annotations.csv"
    csv_path.write_text("attachment_id,user_id,text\nabc,u,word\n", encoding="utf-8")  # commas, not TABs
    done = run_cli("--annotations", csv_path, "-o", tmp_path / "out")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert (
        lines[0].startswith("slr-extract: error:") and "missing column(s)" in lines[0] and "begin" in lines[0]
    )


def test_shards_partition_the_ids(tmp_path: Path, short_clip: Path) -> None:
    ids = [f"id{n:02d}" for n in range(10)]
    annotations = _slovo_tree(tmp_path / "slovo", short_clip, {}, ids)  # no videos: fails fast, no MediaPipe
    seen: list[str] = []
    for index in range(3):
        done = run_cli("--annotations", annotations, "-o", tmp_path / "out", "--shard", f"{index}/3")
        assert done.returncode == 1
        assert f"(shard {index}/3 of 10)" in done.stderr
        seen += [line.split()[1].rstrip(":") for line in done.stderr.splitlines() if "FAILED" in line]
    assert sorted(seen) == ids


@given(ids=st.lists(st.text(min_size=1, max_size=6), unique=True, max_size=40), count=st.integers(1, 7))
def test_select_shard_covers_every_id_exactly_once(ids: list[str], count: int) -> None:
    jobs = [Job(i, None) for i in ids]
    parts = [select_shard(jobs, index, count) for index in range(count)]
    assert sorted(j.id for part in parts for j in part) == sorted(ids)
    assert select_shard(list(reversed(jobs)), 0, count) == parts[0], "independent of input order"


@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("3/4", (3, 4))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shard", "4/4"], "0 <= i < N"),
        (["--shard", "1/0"], "0 <= i < N"),
        (["--shard", "a/b"], "expected i/N"),
        (["--shard=-1/3"], "expected i/N"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--model-complexity", "2"], "pose_landmark_heavy.tflite"),
        ([], "nothing to do"),
        (["--videos", "."], "--videos needs --annotations"),
        (["--annotations", "absent.csv"], "not found"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    extra = [] if not args or args[0] in ("--videos", "--annotations") else ["x.mp4"]
    done = run_cli(*extra, *args, "-o", tmp_path / "out", timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_inputs_and_annotations_are_exclusive(tmp_path: Path) -> None:
    done = run_cli("a.mp4", "--annotations", "b.csv", "-o", tmp_path / "out", timeout=60)
    assert done.returncode == 2 and "not both" in done.stderr


def test_output_must_be_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    done = run_cli("a.mp4", "-o", target, timeout=60)
    assert done.returncode == 2 and "not a directory" in done.stderr


def test_duplicate_ids_are_a_usage_error(tmp_path: Path) -> None:
    done = run_cli(tmp_path / "a" / "x.mp4", tmp_path / "b" / "x.gif", "-o", tmp_path / "out", timeout=60)
    assert done.returncode == 2 and "both write x.npz" in done.stderr


def test_help_explains_with_examples() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge.commands.extract", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0
    for needle in ("--annotations", "--shard", "--overwrite", "--workers", "Examples:", "Exit status"):
        assert needle in done.stdout


def test_annotation_index_finds_any_extension_and_subfolder(tmp_path: Path) -> None:
    for rel in ("top.webm", "train/tr.mp4", "test/te.gif", "train/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    rows = "".join(
        f"{i}\tu\t1\t1\t{n}\tt\tTrue\t0\t1\n" for i, n in [("top", 7), ("tr", 0), ("te", 3), ("notes", 1)]
    )
    (tmp_path / "a.csv").write_text(HEADER + rows + "tr\tu\t1\t1\t9\tt\tTrue\t0\t1\n", encoding="utf-8")
    jobs = {job.id: job for job in jobs_from_annotations(tmp_path / "a.csv", tmp_path)}
    assert list(jobs) == ["top", "tr", "te", "notes"], "one job per distinct id, first row wins"
    assert jobs["top"].video == tmp_path / "top.webm" and jobs["top"].expected_frames == 7
    assert jobs["tr"].video == tmp_path / "train" / "tr.mp4"
    assert jobs["te"].video == tmp_path / "test" / "te.gif"
    assert jobs["notes"].video is None and "no video notes.*" in (jobs["notes"].error or "")


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 32 KiB tmpfs: too small for one clip's landmarks (needs root, as CI and the deploy tests do)."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"this test mounts a small tmpfs and needs root: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_is_one_failure_line_without_a_traceback(full_disk: Path, short_clip: Path) -> None:
    result = run_cli(short_clip, "-o", full_disk)
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    assert list(full_disk.iterdir()) == []  # no partial .npz, no temporary file left behind
