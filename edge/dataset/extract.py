"""``slr-extract``: videos → MediaPipe Holistic keypoint files (``OUTDIR/<id>.npz``), in parallel.

Batch extraction of a dataset takes hours, so the command is built to be interrupted and rerun:
each finished video is written atomically and skipped next time, a bad video is reported and
skipped instead of stopping the batch, and ``--shard`` splits one job list across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.commands.scaffold import add_version, run
from edge.contract.annotations import ANNOTATION_COLUMNS, AnnotationsError, read_annotations
from edge.contract.keypoint_file import KEYPOINT_SUFFIX, KeypointFileError, save_keypoints
from edge.contract.model_contract import DEFAULT_FPS
from edge.runtime.holistic import ExtractorError, HolisticExtractor, check_model_complexity
from edge.runtime.sources import (
    VIDEO_EXTENSIONS,
    Frame,
    SourceError,
    VideoSource,
    open_source,
    quiet_opencv_warnings,
)

PROG = "slr-extract"
#: Where Slovo keeps its videos, relative to --videos.
VIDEO_SUBDIRS = ("", "train", "test")
#: A job may take a worker process down with it (native crash); it is retried once, then failed.
MAX_ATTEMPTS = 2
#: Frames decoded ahead of MediaPipe (720p RGB: 2.7 MB each).
PREFETCH_FRAMES = 4
_END = object()

EPILOG = f"""\
Output: one OUTDIR/<id>.npz per video with
  landmarks   float32 [N, 543, 3]  MediaPipe Holistic (model_complexity 1, video mode) per frame,
                                   rows: face 0-467, left hand 468-488, pose 489-521,
                                   right hand 522-542; x, y, z; NaN where a part was not found
  timestamps  float64 [N]          seconds from the start of the video (stream pts)
  fps         float                the video's frame rate
Read them with edge.contract.keypoint_file.load_keypoints().

Resuming: videos whose OUTDIR/<id>.npz exists are skipped (files are written atomically, so an
interrupted run never leaves a partial .npz); rerun the same command to continue, or pass
--overwrite to redo them. A video that cannot be read is reported at the end and skipped.

Exit status: 0 all videos done, 1 some videos failed, 2 usage error, 130 interrupted.

Supported inputs: {", ".join(VIDEO_EXTENSIONS)} (anything FFmpeg decodes works by path).

Examples:
  {PROG} clip1.mp4 clip2.gif -o keypoints/            # ids: clip1, clip2
  {PROG} --annotations slovo/annotations.csv --videos slovo -o keypoints/
  {PROG} --annotations slovo/annotations.csv -o kp/ --shard 0/4   # machine 1 of 4
  {PROG} videos/*.mp4 -o kp/ --workers 1 --overwrite
"""


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


# -- job lists ---------------------------------------------------------------------------------


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


# -- the work (runs in worker processes, or in-process with --workers 1) -------------------------

_extractor: HolisticExtractor | None = None
_init_error: str | None = None


def init_worker(model_complexity: int = 1) -> None:
    """Create this process's extractor once; every video it handles reuses it.

    A failure is kept and reported by each job instead of raised: an initializer that raises
    breaks the whole pool with a message nobody sees.
    """
    global _extractor, _init_error
    quiet_opencv_warnings()
    try:
        _extractor = HolisticExtractor(model_complexity)
    except Exception as exc:
        _init_error = f"cannot start MediaPipe Holistic: {exc}".splitlines()[0]


def extract_source(extractor: HolisticExtractor, source: VideoSource) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks ``[N, 543, 3]`` and timestamps ``[N]`` of all frames of ``source``; tracking starts fresh."""
    extractor.reset()
    landmarks: list[np.ndarray] = []
    timestamps: list[float] = []
    with contextlib.closing(prefetched(source)) as frames:  # closing: stop the decode thread on errors
        for frame in frames:
            landmarks.append(extractor.extract(frame.rgb))
            timestamps.append(frame.timestamp)
    return np.stack(landmarks), np.asarray(timestamps, dtype=np.float64)


def prefetched(frames: Iterable[Frame], depth: int = PREFETCH_FRAMES) -> Iterator[Frame]:
    """Iterate ``frames`` while a thread decodes up to ``depth`` frames ahead.

    OpenCV and MediaPipe both release the GIL, so decoding (about a quarter of MediaPipe's time
    for 720p H.264) overlaps extraction instead of adding to it. Exceptions from the decoding
    side are re-raised here; stopping early stops the thread.
    """
    slots: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=produce, name="slr-extract-decode", daemon=True)
    thread.start()
    try:
        while (item := slots.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def extract_video(job_id: str, video: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> JobResult:
    """Extract one video into ``out_path``; any failure becomes ``JobResult.error`` (one line)."""
    if _extractor is None:
        return JobResult(job_id, error=_init_error or "init_worker() was not called in this process")
    try:
        with open_source(os.fspath(video)) as source:
            landmarks, timestamps = extract_source(_extractor, source)
            fps = source.fps or _estimate_fps(timestamps)
        save_keypoints(out_path, landmarks, timestamps, fps)
        return JobResult(job_id, frames=len(landmarks))
    except (SourceError, ExtractorError, KeypointFileError) as exc:
        return JobResult(job_id, error=str(exc))
    except OSError as exc:
        return JobResult(job_id, error=f"cannot write {os.fspath(out_path)!r}: {exc.strerror or exc}")
    except Exception as exc:  # a bad video must never abort the batch
        return JobResult(job_id, error=f"{type(exc).__name__}: {exc}".splitlines()[0])


def _estimate_fps(timestamps: np.ndarray) -> float:
    steps = np.diff(timestamps)
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if steps.size else DEFAULT_FPS


# -- running a batch ------------------------------------------------------------------------------


class Progress:
    """A tqdm bar counted in frames (updated per video) so it shows frames/s and a frame-based ETA."""

    def __init__(self, jobs: Sequence[Job], enabled: bool) -> None:
        from tqdm import tqdm

        self._expected = {job.id: job.expected_frames for job in jobs}
        self._videos = len(jobs)
        self.done = 0
        self.failed = 0
        self.frames = 0
        self._bar = tqdm(
            total=sum(self._expected.values()) or None,
            unit="frame",
            desc=PROG,
            disable=not enabled or not jobs,
            dynamic_ncols=True,
            smoothing=0.05,
        )
        self._postfix()

    def update(self, result: JobResult) -> None:
        expected = self._expected.get(result.id, 0)
        self.done += 1
        self.failed += result.error is not None
        self.frames += result.frames
        if self._bar.total is not None and result.frames != expected:
            # Replace this video's estimate with what it really had, keeping the ETA honest.
            self._bar.total = max(self._bar.total + result.frames - expected, self._bar.n + result.frames)
        self._bar.update(result.frames)
        self._postfix()

    def _postfix(self) -> None:
        self._bar.set_postfix_str(f"videos {self.done}/{self._videos}, failed {self.failed}", refresh=False)

    def close(self) -> None:
        self._bar.close()


def run_jobs(
    jobs: Sequence[Job],
    out_dir: Path,
    *,
    workers: int = 1,
    model_complexity: int = 1,
    progress: bool = True,
) -> list[JobResult]:
    """Extract ``jobs`` into ``out_dir``; returns one result per job (failures included)."""
    bar = Progress(jobs, progress)
    results: list[JobResult] = []
    runnable = []
    for job in jobs:
        if job.error is not None or job.video is None:
            result = JobResult(job.id, error=job.error or "no video")
            results.append(result)
            bar.update(result)
        else:
            runnable.append(job)
    try:
        if workers <= 1 or len(runnable) <= 1:
            if runnable and (_extractor is None or _extractor.model_complexity != model_complexity):
                init_worker(model_complexity)  # once per process: later calls reuse the graph
            for job in runnable:
                result = extract_video(job.id, job.video, out_dir / f"{job.id}{KEYPOINT_SUFFIX}")
                results.append(result)
                bar.update(result)
        else:
            for result in _run_pool(runnable, out_dir, min(workers, len(runnable)), model_complexity):
                results.append(result)
                bar.update(result)
    finally:
        bar.close()
    return results


def _run_pool(jobs: Sequence[Job], out_dir: Path, workers: int, model_complexity: int) -> Iterable[JobResult]:
    """Yield results as worker processes finish them; a crashed pool is replaced and its jobs retried."""
    attempts = dict.fromkeys((job.id for job in jobs), 0)
    pending = list(jobs)
    # spawn: MediaPipe's graph threads and forked state don't mix; fresh interpreters are safe.
    context = multiprocessing.get_context("spawn")
    while pending:
        retry: list[Job] = []
        with ProcessPoolExecutor(
            workers, context, initializer=init_worker, initargs=(model_complexity,)
        ) as pool:
            futures: dict[Future[JobResult], Job] = {
                pool.submit(extract_video, job.id, job.video, out_dir / f"{job.id}{KEYPOINT_SUFFIX}"): job
                for job in pending
            }
            try:
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = futures.pop(future)
                        try:
                            yield future.result()
                        except BrokenProcessPool:
                            attempts[job.id] += 1
                            if attempts[job.id] >= MAX_ATTEMPTS:
                                yield JobResult(job.id, error="worker process crashed on this video")
                            else:
                                retry.append(job)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        pending = retry


@contextlib.contextmanager
def python_only_stderr() -> Iterator[None]:
    """Send native writes to file descriptor 2 to /dev/null; ``sys.stderr`` keeps the real stderr.

    MediaPipe and TFLite print start-up lines from their own threads whenever a model loads,
    which no setting turns off and which would tear the progress bar. Python's messages (bar,
    summary, tracebacks) still show. Spawned workers inherit the silenced descriptor.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    original = sys.stderr
    sys.stderr = open(  # noqa: SIM115 - closed in finally
        saved,
        "w",
        buffering=1,
        encoding=original.encoding or "utf-8",
        errors="backslashreplace",
        closefd=False,
    )
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)


# -- command line ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``slr-extract`` argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Extract MediaPipe Holistic keypoints from videos into OUTDIR/<id>.npz files, "
        "in parallel, resumably.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    parser.add_argument(
        "inputs", nargs="*", metavar="VIDEO", help="video files (id = file name without extension)"
    )
    parser.add_argument(
        "--annotations",
        type=Path,
        metavar="CSV",
        help="Slovo annotations.csv (TAB-separated; columns " + ", ".join(ANNOTATION_COLUMNS) + "); "
        "id = attachment_id",
    )
    parser.add_argument(
        "--videos",
        type=Path,
        metavar="DIR",
        help="with --annotations: folder holding <attachment_id>.<ext>, directly or in train/ and test/ "
        "(default: the folder of the annotations file)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUTDIR", help="where .npz files go"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes, each with its own MediaPipe graph (default: CPU count, %(default)s here); "
        "1 runs in this process",
    )
    parser.add_argument(
        "--shard",
        type=parse_shard,
        metavar="i/N",
        help="only do part i of N (0-based): ids sorted, every N-th from position i (split across machines)",
    )
    parser.add_argument("--overwrite", action="store_true", help="redo videos whose .npz already exists")
    parser.add_argument(
        "--model-complexity",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="MediaPipe pose model; only 1 ships with mediapipe 0.10.18 (default: 1, as in training)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    return parser


def _collect_jobs(args: argparse.Namespace) -> list[Job]:
    if args.annotations is not None and args.inputs:
        raise UsageError("give either VIDEO files or --annotations, not both")
    if args.annotations is not None:
        return jobs_from_annotations(args.annotations, args.videos or args.annotations.parent)
    if args.videos is not None:
        raise UsageError("--videos needs --annotations (or list VIDEO files instead)")
    if not args.inputs:
        raise UsageError("nothing to do: give VIDEO files or --annotations CSV")
    return jobs_from_paths(args.inputs)


def _prepare_output(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output {str(out_dir)!r} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {str(out_dir)!r}: {exc.strerror or exc}") from None
    if not os.access(out_dir, os.W_OK):
        raise UsageError(f"output directory {str(out_dir)!r} is not writable")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``slr-extract``; returns the exit status."""
    return run(PROG, _main, argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_opencv_warnings()
    try:
        if args.workers < 1:
            raise UsageError(f"--workers must be >= 1, got {args.workers}")
        check_model_complexity(args.model_complexity)
        jobs = _collect_jobs(args)
        _prepare_output(args.output)
    except (UsageError, ExtractorError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2

    total = len(jobs)
    if args.shard is not None:
        jobs = select_shard(jobs, *args.shard)
    todo = [j for j in jobs if args.overwrite or not (args.output / f"{j.id}{KEYPOINT_SUFFIX}").exists()]
    skipped = len(jobs) - len(todo)
    shard_note = f" (shard {args.shard[0]}/{args.shard[1]} of {total})" if args.shard else ""
    print(
        f"{PROG}: {len(jobs)} videos{shard_note}, {skipped} already done (skipped), {len(todo)} to extract",
        file=sys.stderr,
    )

    started = time.perf_counter()
    try:
        with python_only_stderr():
            results = run_jobs(
                todo,
                args.output,
                workers=args.workers,
                model_complexity=args.model_complexity,
                progress=not args.no_progress,
            )
    except KeyboardInterrupt:
        print(
            f"{PROG}: interrupted; finished videos are kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    return _report(results, skipped, time.perf_counter() - started)


def _report(results: Sequence[JobResult], skipped: int, seconds: float) -> int:
    failed = [r for r in results if r.error is not None]
    frames = sum(r.frames for r in results)
    rate = f", {frames / seconds:.1f} frames/s" if seconds > 0 and frames else ""
    print(
        f"{PROG}: extracted {len(results) - len(failed)} videos ({frames} frames in {seconds:.1f} s{rate}), "
        f"skipped {skipped}, failed {len(failed)}",
        file=sys.stderr,
    )
    for result in failed:
        print(f"  FAILED {result.id}: {result.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
