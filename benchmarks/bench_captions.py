"""Captioning a long video vs extracting its keypoints alone, side by side in one run.

Target (issue 19): ``slr-predict VIDEO --segments --srt OUT`` runs at least as fast as extraction
alone on a 10-minute video. Both sides are the real commands as subprocesses on the same file:

(a) ``slr-extract VIDEO -o DIR --workers 1`` (decode + MediaPipe Holistic + one ``.npz``);
(b) ``slr-predict VIDEO --model M --segments --srt OUT`` (decode + Holistic + the daemon's
    segmenter and segment thread + the subtitle file).

Rounds alternate (a)/(b) so background load hits both alike; figures are medians, the ratio is
the median of per-round ratios wall(a)/wall(b) (>= 1: captioning is at least as fast). CPU time of
each child (user + system) is reported too, being less sensitive to other work on the machine.

The video is built at run time from ``../shared/samples/slovo_sample.mp4``: the clip and one
second of its last frame held still (the signer, hands down), repeated to ``--minutes`` (default
10), with ffmpeg's concat demuxer (no re-encoding of the repeats). Each repeat is one episode.

    python benchmarks/bench_captions.py [--minutes 10] [--rounds 1] [--model M.onnx] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_daemon import default_model, describe_model  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

SAMPLE = REPO.parent / "shared" / "samples" / "slovo_sample.mp4"


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, stdin=subprocess.DEVNULL)


def build_video(tmp: Path, sample: Path, minutes: float) -> tuple[Path, int]:
    """``minutes`` of clip + 1 s hands-down still, repeated; returns the file and the repeats."""
    unit = tmp / "unit.mp4"
    ffmpeg(
        *("-i", str(sample), "-vf", "fps=30,format=yuv420p,tpad=stop_mode=clone:stop_duration=1"),
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "30", str(unit)),
    )
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(unit)],
        check=True,
        capture_output=True,
        text=True,
    )
    repeats = max(1, math.ceil(minutes * 60 / float(probe.stdout.strip())))
    listing = tmp / "list.txt"
    listing.write_text("".join(f"file '{unit}'\n" for _ in range(repeats)))
    video = tmp / f"long_{minutes:g}min.mp4"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(video))
    return video, repeats


def count_frames(video: Path) -> int:
    probe = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0"),
            *("-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(video)),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(probe.stdout.strip())


def timed(command: list[str]) -> Run:
    """Wall time and the child's CPU time (user + system) of one subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"bench_captions: {command[2]} failed ({done.returncode}): {done.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu)


def extract_alone(video: Path, out: Path) -> Run:
    return timed(
        [
            *(sys.executable, "-m", "edge.commands.extract", str(video), "-o", str(out)),
            *("--workers", "1", "--overwrite", "--no-progress"),
        ]
    )


def captions(video: Path, model: Path, srt: Path) -> Run:
    return timed(
        [
            *(sys.executable, "-m", "edge.commands.predict", str(video), "--model", str(model)),
            *("--segments", "--srt", str(srt), "--min-confidence", "0", "--no-progress"),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the built video (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating (a)/(b) rounds (default 1)")
    parser.add_argument("--model", type=Path, help="model for (b) (default: the tiny test model)")
    parser.add_argument("--model-note", default="", help="how the model was made, for the report")
    parser.add_argument("--video", type=Path, default=SAMPLE, help="clip to repeat (default: the sample)")
    parser.add_argument("--note", default="", help="a remark for the report (e.g. why a shorter video)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if not args.video.is_file():
        print(f"bench_captions: {args.video} not found (../shared missing?)", file=sys.stderr)
        return 2
    if args.rounds < 1 or not 0 < args.minutes <= 120:
        print("bench_captions: --rounds must be >= 1 and --minutes in (0, 120]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or default_model(tmp)
        video, repeats = build_video(tmp, args.video, args.minutes)
        srt = tmp / "out.srt"
        load_before = os.getloadavg()[0]
        a_runs: list[Run] = []
        b_runs: list[Run] = []
        for i in range(args.rounds):
            first_a = i % 2 == 0
            for side in ("a", "b") if first_a else ("b", "a"):
                run = extract_alone(video, tmp / "kp") if side == "a" else captions(video, model, srt)
                (a_runs if side == "a" else b_runs).append(run)
                print(f"round {i + 1} ({side}): {run.wall:.1f} s wall, {run.cpu:.1f} s CPU", flush=True)
        load_after = os.getloadavg()[0]
        cues = srt.read_text(encoding="utf-8").count(" --> ")
        frames = count_frames(video)
        model_text = (
            f"`{model.name}` ({describe_model(model)}{'; ' + args.model_note if args.model_note else ''})"
        )
    a = Run(statistics.median(r.wall for r in a_runs), statistics.median(r.cpu for r in a_runs))
    b = Run(statistics.median(r.wall for r in b_runs), statistics.median(r.cpu for r in b_runs))
    ratio = statistics.median(x.wall / y.wall for x, y in zip(a_runs, b_runs, strict=True))
    cpu_ratio = statistics.median(x.cpu / y.cpu for x, y in zip(a_runs, b_runs, strict=True))
    ok = "✓" if ratio >= 1.0 else "✗"
    table = "\n".join(
        [
            "## Captions (`slr-predict --segments --srt`) vs extraction alone",
            "",
            f"`benchmarks/bench_captions.py`: a {args.minutes:g}-minute video built at run time ({repeats}× "
            f"the sample clip + 1 s hands-down still, {frames} frames, 720x1280 H.264 30 fps), "
            f"{args.rounds} alternating round(s), medians; model {model_text}. Each side is the real "
            "command as a subprocess (interpreter, model and MediaPipe start-up included).",
            "",
            "| measurement | wall | frames/s | CPU (user+sys) |",
            "| --- | ---: | ---: | ---: |",
            f"| (a) `slr-extract VIDEO -o DIR --workers 1` | {a.wall:.1f} s | {frames / a.wall:.1f} | "
            f"{a.cpu:.1f} s |",
            f"| (b) `slr-predict VIDEO --segments --srt OUT` | {b.wall:.1f} s | {frames / b.wall:.1f} | "
            f"{b.cpu:.1f} s |",
            f"| speed ratio (b)/(a) = wall(a)/wall(b) (target ≥ 1) | {ratio:.3f} {ok} | | CPU(a)/CPU(b) "
            f"{cpu_ratio:.3f} |",
            "",
            f"(b) wrote {cues} cues (every episode, `--min-confidence 0`). 1-minute load average before / "
            f"after: {load_before:.1f} / {load_after:.1f} on {os.cpu_count()} cores"
            + (f". {args.note}" if args.note else "."),
        ]
    )
    print(table)
    if not args.no_write:
        write_section("captions", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
