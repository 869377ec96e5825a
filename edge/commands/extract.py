"""``slr-extract``: videos → MediaPipe Holistic keypoint files (``OUTDIR/<id>.npz``), in parallel.

Batch extraction of a dataset takes hours, so the command is built to be interrupted and rerun:
each finished video is written atomically and skipped next time, a bad video is reported and
skipped instead of stopping the batch, and ``--shard`` splits one job list across machines.
This module is the command line; the job lists live in :mod:`edge.dataset.jobs`, the extraction
and the worker pool in :mod:`edge.dataset.worker`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge.camera.sources import VIDEO_EXTENSIONS, quiet_opencv_warnings
from edge.commands.scaffold import add_version, run
from edge.contract.annotations import ANNOTATION_COLUMNS
from edge.contract.keypoint_file import KEYPOINT_SUFFIX
from edge.dataset.jobs import (
    Job,
    JobResult,
    UsageError,
    jobs_from_annotations,
    jobs_from_paths,
    parse_shard,
    select_shard,
)
from edge.dataset.worker import PROG, run_jobs
from edge.keypoints.holistic import ExtractorError, check_model_complexity, native_stderr_silenced
from edge.util.files import output_dir_problem

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
--overwrite to redo them. A video that cannot be read (missing, not a regular file, corrupt) or
that ends before the frame count its container declares (a truncated copy) is reported at the
end and no .npz is written for it, so the next run tries it again. Landmark files get the
permissions your umask gives new files (face landmarks are biometric data: umask 077 keeps
them private).

Exit status: 0 all videos done, 1 some videos failed, 2 usage error, 130 interrupted.

Supported inputs: {", ".join(VIDEO_EXTENSIONS)} (anything FFmpeg decodes works by path).

Examples:
  {PROG} clip1.mp4 clip2.gif -o keypoints/            # ids: clip1, clip2
  {PROG} --annotations slovo/annotations.csv --videos slovo -o keypoints/
  {PROG} --annotations slovo/annotations.csv -o kp/ --shard 0/4   # machine 1 of 4
  {PROG} videos/*.mp4 -o kp/ --workers 1 --overwrite
"""


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
    problem = output_dir_problem(out_dir)
    if problem:
        raise UsageError(problem)


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
        with native_stderr_silenced():
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
