"""The extraction itself: one MediaPipe graph per process, one video per call, a batch over a pool.

Workers are spawned processes, each with its own :class:`~edge.keypoints.holistic.HolisticExtractor`
(created once by :func:`init_worker`); every finished video is written atomically by the worker,
so only a small :class:`JobResult` travels back. A video that crashes its worker is retried once.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from edge.camera.frame import SourceError
from edge.camera.sources import open_source, quiet_opencv_warnings
from edge.clips.keypoints import extract_clip
from edge.contract.keypoint_file import KEYPOINT_SUFFIX, KeypointFileError, save_keypoints
from edge.contract.model_contract import DEFAULT_FPS
from edge.dataset.jobs import Job, JobResult
from edge.keypoints.holistic import ExtractorError, HolisticExtractor
from edge.keypoints.resample import measured_fps
from edge.util.logs import error_line

PROG = "slr-extract"
#: A job may take a worker process down with it (native crash); it is retried once, then failed.
MAX_ATTEMPTS = 2

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
        _init_error = f"cannot start MediaPipe Holistic: {error_line(exc)}"


def extract_video(job_id: str, video: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> JobResult:
    """Extract one video into ``out_path``; any failure becomes ``JobResult.error`` (one line)."""
    if _extractor is None:
        return JobResult(job_id, error=_init_error or "init_worker() was not called in this process")
    try:
        _extractor.reset()  # tracking starts fresh for every video
        with open_source(os.fspath(video), warn_truncated=False) as source:
            clip = extract_clip(source, _extractor)
        if clip.truncation is not None:  # a prefix saved as a finished clip would be skipped on resume
            return JobResult(job_id, error=clip.truncation)
        fps = clip.fps or measured_fps(clip.stamps) or DEFAULT_FPS
        save_keypoints(out_path, clip.raw, clip.stamps, fps)
        return JobResult(job_id, frames=len(clip.raw))
    except (SourceError, ExtractorError, KeypointFileError) as exc:
        return JobResult(job_id, error=str(exc))
    except OSError as exc:
        return JobResult(job_id, error=f"cannot write {os.fspath(out_path)!r}: {exc.strerror or exc}")
    except Exception as exc:  # a bad video must never abort the batch
        return JobResult(job_id, error=f"{type(exc).__name__}: {error_line(exc)}")


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
                result = extract_video(job.id, _video(job), out_dir / f"{job.id}{KEYPOINT_SUFFIX}")
                results.append(result)
                bar.update(result)
        else:
            for result in _run_pool(runnable, out_dir, min(workers, len(runnable)), model_complexity):
                results.append(result)
                bar.update(result)
    finally:
        bar.close()
    return results


def _video(job: Job) -> Path:
    """The video of a job that has one (jobs without a video are reported before any extraction)."""
    if job.video is None:
        raise ValueError(f"job {job.id} has no video")
    return job.video


#: What a worker runs for one job: ``(id, video, out_path) -> JobResult`` (tests substitute one that crashes).
Task = Callable[[str, Path, Path], JobResult]


def _run_pool(
    jobs: Sequence[Job], out_dir: Path, workers: int, model_complexity: int, task: Task = extract_video
) -> Iterable[JobResult]:
    """Yield results as worker processes finish them.

    A native crash breaks the whole pool and fails every unfinished future, so a crash cannot be
    pinned on one video there: the unfinished jobs are redone in a one-worker pool, one at a time
    (:func:`_run_isolated`), where a crash is the running video's own. Only that video is failed.
    """
    suspects: list[Job] = []
    # spawn: MediaPipe's graph threads and forked state don't mix; fresh interpreters are safe.
    with _pool(workers, model_complexity) as pool:
        futures: dict[Future[JobResult], Job] = {
            pool.submit(task, job.id, _video(job), out_dir / f"{job.id}{KEYPOINT_SUFFIX}"): job
            for job in jobs
        }
        try:
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    job = futures.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        suspects.append(job)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if suspects:
        yield from _run_isolated(suspects, out_dir, model_complexity, task)


def _run_isolated(
    jobs: Sequence[Job], out_dir: Path, model_complexity: int, task: Task = extract_video
) -> Iterable[JobResult]:
    """One job at a time in a one-worker pool; a job that crashes it is retried once, then failed."""
    pending = list(jobs)
    attempts = dict.fromkeys((job.id for job in jobs), 0)
    while pending:
        with _pool(1, model_complexity) as pool:
            while pending:
                job = pending[0]
                future = pool.submit(task, job.id, _video(job), out_dir / f"{job.id}{KEYPOINT_SUFFIX}")
                try:
                    result = future.result()
                except BrokenProcessPool:
                    attempts[job.id] += 1
                    if attempts[job.id] >= MAX_ATTEMPTS:
                        pending.pop(0)
                        yield JobResult(job.id, error="worker process crashed on this video")
                    break  # this pool is dead: a fresh one for the rest
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                pending.pop(0)
                yield result


def _pool(workers: int, model_complexity: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, context, initializer=init_worker, initargs=(model_complexity,))
