"""Extraction overhead and preprocessing cost, measured side by side in one run.

(a) MediaPipe Holistic alone (``Holistic.process`` on frames decoded beforehand) versus
(b) the ``slr-extract`` code path end to end (decode, extract, write the ``.npz``: the same
``run_jobs`` call the CLI makes with ``--workers 1``), in alternating rounds so both see the same
machine load; overhead = 1 - fps(b) / fps(a), target <= 5 %. Because a shared machine's load
swings wall-clock figures, the CPU time of this process (all threads) is reported too, and the
part of (b)'s extra CPU that is video decoding, which (a) by definition leaves out.
Optionally (c) the ``slr-extract`` subprocess, which adds interpreter start-up.
Then ``edge.contract.preprocess.preprocess`` per window on the clip's keypoints and on a long (262-frame)
input, median of many calls, target < 1 ms.

Usage: ``python -m benchmarks.bench_extract [--video PATH] [--repeats 3] [--subprocess]``.
Figures are printed and written to the ``extraction`` section of ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.camera.sources import open_source, quiet_opencv_warnings
from edge.contract.keypoint_file import load_keypoints
from edge.contract.layout import has_hands
from edge.contract.preprocess import WINDOW, preprocess
from edge.dataset.jobs import Job
from edge.dataset.worker import run_jobs

if not __package__:  # run as a script (python benchmarks/x.py): make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import write_section

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO_ROOT.parent / "shared" / "samples" / "slovo_sample.mp4"
LONG_INPUT_FRAMES = 262  # SLR_SLOVO case 1's length: the long (pooling) preprocessing path


@dataclass(frozen=True)
class Timing:
    """Wall and process CPU seconds (CPU covers every thread, MediaPipe's included)."""

    wall: float
    cpu: float


def timed(fn: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def decode_all(video: Path) -> list[np.ndarray]:
    """Every frame as read-only RGB (what MediaPipe wraps without copying)."""
    frames = []
    with open_source(str(video)) as source:
        for frame in source:
            frame.rgb.flags.writeable = False
            frames.append(frame.rgb)
    return frames


def decode_only(video: Path) -> Timing:
    """Decoding to RGB as the CLI does it, frames dropped at once (keeping them would time page faults)."""

    def run() -> None:
        with open_source(str(video)) as source:
            for _ in source:
                pass

    return timed(run)


def mediapipe_alone(frames: list[np.ndarray]) -> Timing:
    """A fresh Holistic graph (video mode, complexity 1) processing ``frames``; set-up not timed."""
    from mediapipe.python.solutions.holistic import Holistic

    with Holistic(static_image_mode=False, model_complexity=1) as holistic:
        return timed(lambda: [holistic.process(rgb) for rgb in frames])


def cli_path(video: Path, out_dir: Path) -> Timing:
    """The CLI's in-process path (``--workers 1``) on ``video``; its graph is built by the warm-up call."""
    results: list = []
    timing = timed(
        lambda: results.extend(run_jobs([Job(video.stem, video)], out_dir, workers=1, progress=False))
    )
    if results[0].error:
        raise SystemExit(f"bench_extract: extraction failed: {results[0].error}")
    return timing


def cli_subprocess(video: Path, out_dir: Path) -> Timing:
    """``slr-extract VIDEO -o OUT --workers 1`` as a subprocess (wall only; includes start-up)."""
    command = [sys.executable, "-m", "edge.commands.extract", str(video), "-o", str(out_dir)]
    wall = time.perf_counter()
    subprocess.run(
        [*command, "--workers", "1", "--no-progress", "--overwrite"], check=True, capture_output=True
    )
    return Timing(time.perf_counter() - wall, float("nan"))


def median_ms(fn: Callable[[], object], calls: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``calls`` calls (after a few warm-ups)."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e6


def _median(timings: list[Timing]) -> Timing:
    return Timing(statistics.median(t.wall for t in timings), statistics.median(t.cpu for t in timings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--video", type=Path, default=DEFAULT_VIDEO, help="clip to extract (default: %(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="alternating (a)/(b) rounds; medians reported")
    parser.add_argument("--calls", type=int, default=300, help="preprocess calls per input (>= 200)")
    parser.add_argument("--subprocess", action="store_true", help="also time the slr-extract subprocess")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if not args.video.is_file():
        print(f"bench_extract: video {str(args.video)!r} not found (use --video)", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.calls < 1:
        print("bench_extract: --repeats and --calls must be >= 1", file=sys.stderr)
        return 2
    quiet_opencv_warnings()

    frames = decode_all(args.video)
    n = len(frames)
    alone, path, decode, sub = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        cli_path(args.video, out_dir)  # warm-up: imports, graph construction, page cache
        for _ in range(args.repeats):
            alone.append(mediapipe_alone(frames))
            path.append(cli_path(args.video, out_dir))
            decode.append(decode_only(args.video))
            if args.subprocess:
                sub.append(cli_subprocess(args.video, out_dir))
        raw = load_keypoints(out_dir / f"{args.video.stem}.npz").landmarks

    a, b, d = _median(alone), _median(path), _median(decode)
    # Ratios per round (a and b ran back to back, under the same load), then their median.
    rounds = list(zip(alone, path, decode, strict=True))
    overhead_wall = statistics.median(1.0 - x.wall / y.wall for x, y, _ in rounds)  # = 1 - fps(b)/fps(a)
    overhead_cpu = statistics.median(1.0 - x.cpu / y.cpu for x, y, _ in rounds)
    beyond_decode = statistics.median((y.cpu - x.cpu - z.cpu) / y.cpu for x, y, z in rounds)
    long_raw = np.concatenate([raw] * (-(-LONG_INPUT_FRAMES // len(raw))))[:LONG_INPUT_FRAMES]
    pre_short = median_ms(lambda: preprocess(raw), args.calls)
    pre_long = median_ms(lambda: preprocess(long_raw), args.calls)
    # The daemon's case: a full 128-frame buffer in which every frame has hands (pooling path).
    hands = raw[has_hands(raw)]
    daemon_window = np.concatenate([hands] * (-(-WINDOW // len(hands))))[:WINDOW]
    pre_window = median_ms(lambda: preprocess(daemon_window), args.calls)

    def ms(seconds: float) -> str:
        return f"{1000 * seconds / n:.1f} ms"

    rows = [
        (
            "(a) MediaPipe Holistic alone, pre-decoded frames",
            f"{n / a.wall:.1f} frames/s",
            f"CPU {ms(a.cpu)}/frame",
        ),
        (
            "(b) slr-extract path, in-process, --workers 1",
            f"{n / b.wall:.1f} frames/s",
            f"CPU {ms(b.cpu)}/frame",
        ),
        ("extraction overhead, wall: 1 - fps(b)/fps(a)", f"{100 * overhead_wall:.1f} %", "target <= 5 %"),
        (
            "extraction overhead, CPU: 1 - cpu(a)/cpu(b)",
            f"{100 * overhead_cpu:.1f} %",
            "insensitive to others' load",
        ),
        (
            "video decoding alone (OpenCV/FFmpeg, to RGB)",
            f"{n / d.wall:.1f} frames/s",
            f"CPU {ms(d.cpu)}/frame",
        ),
        ("overhead beyond decoding, CPU: (b - a - decode)/b", f"{100 * beyond_decode:.1f} %", "our own code"),
    ]
    if sub:
        wall = statistics.median(t.wall for t in sub)
        rows.append(
            ("(c) slr-extract subprocess", f"{n / wall:.1f} frames/s", "includes interpreter start-up")
        )
    rows += [
        (
            f"preprocess, {len(raw)}-frame input",
            f"{pre_short:.3f} ms",
            f"median of {args.calls}; target < 1 ms",
        ),
        (
            f"preprocess, daemon window ({WINDOW} frames, all with hands)",
            f"{pre_window:.3f} ms",
            f"median of {args.calls}; target < 1 ms",
        ),
        (
            f"preprocess, {LONG_INPUT_FRAMES}-frame input",
            f"{pre_long:.3f} ms",
            f"median of {args.calls}; target < 1 ms",
        ),
    ]
    height, width = frames[0].shape[:2]
    table = "\n".join(
        [
            "## Keypoint extraction",
            "",
            f"`benchmarks/bench_extract.py` on `{args.video.name}` ({n} frames, {width}x{height} H.264), "
            f"{args.repeats} alternating rounds; medians (overheads: median of per-round ratios). "
            f"Load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
            "",
            "| measurement | value | note |",
            "| --- | --- | --- |",
            *(f"| {name} | {value} | {note} |" for name, value, note in rows),
        ]
    )
    print(table)
    if not args.no_write:
        write_section("extraction", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
