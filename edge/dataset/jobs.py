"""What ``slr-extract`` has to do: one :class:`Job` per video, from paths or a Slovo annotations file,
optionally one shard of the list (``--shard i/N``) so a dataset can be split across machines.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.camera.sources import VIDEO_EXTENSIONS
from edge.contract.annotations import AnnotationsError, read_annotations
from edge.contract.keypoint_file import KEYPOINT_SUFFIX

#: Where Slovo keeps its videos, relative to --videos.
VIDEO_SUBDIRS = ("", "train", "test")


class UsageError(Exception):
    """Bad command line or job list; reported as one line, exit status 2."""


@dataclass(frozen=True)
class Job:
    """One video to extract. ``error`` is set when the video can't even be located."""

    id: str
    video: Path | None
    expected_frames: int = 0  # for the progress bar's total and ETA; 0 when unknown
    error: str | None = None


@dataclass(frozen=True)
class JobResult:
    """What a worker reports back (arrays stay in the worker: it writes the file itself)."""

    id: str
    frames: int = 0
    error: str | None = None


def jobs_from_paths(paths: Sequence[str]) -> list[Job]:
    """One job per video path; the id is the file name without extension."""
    jobs: dict[str, Job] = {}
    for raw in paths:
        path = Path(raw)
        job_id = path.stem
        if job_id in jobs:
            raise UsageError(f"{jobs[job_id].video} and {path} would both write {job_id}{KEYPOINT_SUFFIX}")
        jobs[job_id] = Job(job_id, path, probe_frame_count(path))
    return list(jobs.values())


def jobs_from_annotations(annotations: Path, video_dir: Path) -> list[Job]:
    """One job per distinct ``attachment_id`` of a Slovo ``annotations.csv`` (TAB-separated)."""
    if not annotations.is_file():
        raise UsageError(f"annotations file {str(annotations)!r} not found")
    if not video_dir.is_dir():
        raise UsageError(f"video directory {str(video_dir)!r} not found")
    try:
        rows = read_annotations(annotations)
    except AnnotationsError as exc:
        raise UsageError(str(exc)) from None

    index = _index_videos(video_dir)
    jobs: dict[str, Job] = {}
    for line, row in enumerate(rows, start=2):
        job_id = (row.get("attachment_id") or "").strip()
        if job_id in jobs:
            continue
        if not job_id or job_id.startswith(".") or "/" in job_id or "\\" in job_id:
            jobs[f"<line {line}>"] = Job(f"<line {line}>", None, error=f"invalid attachment_id {job_id!r}")
            continue
        length = (row.get("length") or "").strip()
        expected = int(length) if length.isdigit() else 0
        video = index.get(job_id)
        error = None if video else f"no video {job_id}.* in {video_dir} (or its train/, test/)"
        jobs[job_id] = Job(job_id, video, expected, error)
    return list(jobs.values())


def _index_videos(video_dir: Path) -> dict[str, Path]:
    """Map file stem → path for the supported videos in ``video_dir`` and its Slovo subfolders."""
    index: dict[str, Path] = {}
    for sub in VIDEO_SUBDIRS:
        folder = video_dir / sub
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                if path.suffix.lower() in VIDEO_EXTENSIONS and entry.is_file():
                    index.setdefault(path.stem, path)
    return index


def probe_frame_count(path: Path) -> int:
    """The container's frame count (cheap header read), 0 if unknown; only feeds the ETA."""
    import cv2

    if not path.is_file():
        return 0
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT) if cap.isOpened() else 0
    finally:
        cap.release()
    return int(count) if count and count > 0 else 0


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` → ``(i, N)`` with ``0 <= i < N``."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected i/N such as 0/4, got {text!r}")
    index, count = (int(p) for p in parts)
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need N >= 1 and 0 <= i < N")
    return index, count


def select_shard(jobs: Iterable[Job], index: int, count: int) -> list[Job]:
    """Deterministic split: sort by id, keep positions ``p`` with ``p % count == index``."""
    ordered = sorted(jobs, key=lambda job: job.id)
    return [job for position, job in enumerate(ordered) if position % count == index]
