"""Idle duty cycle and sign segments on live streams, side by side in one run.

* **Idle CPU** (cores used by ``slr-edge run`` over ``--seconds`` of a live 30 fps 720p stream,
  ``ffmpeg -re`` into a local MPEG-TS socket, after the daemon went idle) with the duty cycle off
  (``--idle-fps 0``) and on, for an empty scene (black frames) and a person without hands (the
  sample clip's hand-free frames, looped); runs alternate off/on so background load hits both.
* **Wake-up** (first frame with a hand reaching extraction → full-rate extraction, from the
  daemon's "awake" log lines) and **episode end → publish latency** of ``segment`` messages, on a
  live stream of 5 s of empty scene followed by the sample clip, looped.
* **Frames/s with hands present**, duty cycle off vs on (the sample clip 4× over as a file, alternating runs).
* **Memory for a maximal segment** (the segmenter's preallocated storage).

Streams are built at run time with ffmpeg from ``../shared/samples/slovo_sample.mp4`` (never
stored). Figures go to ``docs/BENCHMARKS.md`` (section "idle").

    python benchmarks/bench_idle.py [--model M.onnx] [--seconds 20] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_daemon import SUMMARY, daemon_args, default_model, free_endpoint  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

SAMPLE = REPO.parent / "shared" / "samples" / "slovo_sample.mp4"
AWAKE = re.compile(r"awake: full-rate extraction (\d+) ms after the first frame with a hand")
SEGMENT_LATENCY = re.compile(r"segment_latency_ms\(p50=([\d.-]+) p95=([\d.-]+)\)")
SEGMENTS = re.compile(r"segments=(\d+) short=(\d+)")
TICKS = os.sysconf("SC_CLK_TCK")
#: How long the daemon needs to be up and idle (start-up + idle_after_s) before CPU is measured.
SETTLE_S = 12.0


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def build_streams(tmp: Path, video: Path) -> dict[str, Path]:
    """The benchmark's clips (H.264, 30 fps, the sample's 720x1280), made from the sample at run time."""
    x264 = ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "30")
    empty = tmp / "empty.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=black:s=720x1280:r=30", "-t", "10", *x264, str(empty))
    no_hands = tmp / "no_hands.mp4"  # frames 96..111 of the sample: the signer, hands down
    ffmpeg("-i", str(video), "-vf", "select='gte(n,96)',setpts=N/30/TB", "-r", "30", *x264, str(no_hands))
    wake = tmp / "wake.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", "color=black:s=720x1280:r=30:d=5", "-i", str(video)),
        *("-filter_complex", "[0:v]format=yuv420p[a];[1:v]format=yuv420p,fps=30[b];[a][b]concat=n=2:v=1"),
        *x264,
        str(wake),
    )
    listing = tmp / "four_times.txt"  # the sample 4 times over (stream copy): a file long enough to time
    listing.write_text(f"file '{video.resolve()}'\n" * 4)
    hands = tmp / "hands.mp4"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(hands))
    return {"empty": empty, "no_hands": no_hands, "wake": wake, "hands": hands}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, all threads


def niced(nice: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child process niceness ``nice`` (None for 0)."""
    if not nice:
        return None

    def renice() -> None:
        os.nice(nice)

    return renice


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def live_run(model: Path, clip: Path, idle_fps: float, seconds: float, nice: int) -> tuple[float, str]:
    """Cores used by the daemon over ``seconds`` of a looped live stream of ``clip``, and its log."""
    port = free_port()
    server = subprocess.Popen(
        [
            *("ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip)),
            *("-c", "copy", "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"),
        ],
        stdin=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    args = daemon_args(model, Path(f"tcp://127.0.0.1:{port}"), 8, free_endpoint())
    args[args.index("--source") + 1] = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [*args, "--idle-fps", str(idle_fps)],
            cwd=REPO,
            stdout=log,
            stderr=log,
            preexec_fn=niced(nice),
        )
        try:
            time.sleep(SETTLE_S)
            start_cpu, start = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            cores = (cpu_seconds(proc.pid) - start_cpu) / (time.monotonic() - start)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            server.kill()
            server.wait()
        log.seek(0)
        return cores, log.read().decode(errors="replace")


def file_fps(model: Path, video: Path, idle_fps: float, nice: int) -> float:
    args = [*daemon_args(model, video, 8, free_endpoint()), "--idle-fps", str(idle_fps)]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, preexec_fn=niced(nice))
    match = SUMMARY.search(out.stderr + out.stdout)
    if out.returncode != 0 or match is None:
        raise SystemExit(f"daemon failed:\n{out.stderr[-2000:]}")
    return float(match["fps"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model to serve (default: the tiny test model)")
    parser.add_argument("--video", type=Path, default=SAMPLE)
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU measuring time per run")
    parser.add_argument("--wake-seconds", type=float, default=45.0, help="length of the wake-up run")
    parser.add_argument("--idle-fps", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=1, help="alternating off/on rounds per scene")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the daemons under test (root may give a negative one, so that a shared "
        "machine's load does not cap the CPU share they can use)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(Path(tmp))
        streams = build_streams(Path(tmp), args.video)
        cpu: dict[tuple[str, float], list[float]] = {}
        for _ in range(args.rounds):
            for scene in ("empty", "no_hands"):
                for fps in (0.0, args.idle_fps):
                    cores, _log = live_run(model, streams[scene], fps, args.seconds, args.nice)
                    cpu.setdefault((scene, fps), []).append(cores)
                    print(f"{scene} idle_fps={fps:g}: {cores:.3f} cores", flush=True)
        _cores, wake_log = live_run(model, streams["wake"], args.idle_fps, args.wake_seconds, args.nice)
        wakes = [float(m) for m in AWAKE.findall(wake_log)]
        lat = SEGMENT_LATENCY.search(wake_log)
        segs = SEGMENTS.search(wake_log)
        print(f"wake-ups {wakes} ms; segment latency {lat.groups() if lat else None}", flush=True)
        file_runs: dict[float, list[float]] = {0.0: [], args.idle_fps: []}
        for _ in range(max(3, args.rounds)):  # alternating off/on; each run is only seconds long
            for fps in file_runs:
                file_runs[fps].append(file_fps(model, streams["hands"], fps, args.nice))
        fps_off, fps_on = (statistics.median(file_runs[fps]) for fps in (0.0, args.idle_fps))
        print(f"hands present: {file_runs[0.0]} vs {file_runs[args.idle_fps]} frames/s", flush=True)

    load_after = os.getloadavg()[0]
    from edge.runtime.config import DaemonConfig
    from edge.runtime.segmenter import Segmenter, capacity_for

    defaults = DaemonConfig(model="m")
    capacity = capacity_for(defaults.max_segment_s, 30.0)
    seg_mib = Segmenter(defaults.gap_s, defaults.max_segment_s, 1, capacity).nbytes / 2**20
    med = {key: statistics.median(values) for key, values in cpu.items()}
    budget_ms = 1000.0 / args.idle_fps + 1000.0 / 30.0
    p50, p95 = lat.groups() if lat else ("-", "-")

    def row(scene: str, label: str, target: float) -> str:
        off, on = med[(scene, 0.0)], med[(scene, args.idle_fps)]
        mark = "✓" if on <= target else "✗"
        return f"| {label} | {off:.3f} | {on:.3f} | {on / off:.2f} | ≤ {target} {mark} |"

    lines = [
        "## Idle duty cycle and sign segments (`benchmarks/bench_idle.py`)",
        "",
        f"Live 30 fps 720x1280 H.264 streams (`ffmpeg -re` into a local MPEG-TS socket), model "
        f"`{model.name if args.model else 'tiny test model (helpers_onnx)'}`, idle_fps {args.idle_fps:g}, "
        f"idle_after_s 3; CPU over {args.seconds:g} s after the daemon went idle, median of {args.rounds} "
        "alternating off/on round(s).",
        "",
        "| scene | cores, duty cycle off | cores, on | ratio on/off | target (on) |",
        "| --- | ---: | ---: | ---: | --- |",
        row("empty", "empty scene", 0.15),
        row("no_hands", "person without hands (sample's hand-free frames, looped)", 0.35),
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| wake-up, first hand frame → full-rate extraction (live, {len(wakes)} wake-ups) | "
        + (
            f"median {statistics.median(wakes):.0f} ms, max {max(wakes):.0f} ms "
            f"(target ≤ {budget_ms:.0f} ms) {'✓' if max(wakes) <= budget_ms else '✗'}"
            if wakes
            else "no wake-up seen"
        )
        + " |",
        f"| segment: episode end → publish latency p50 / p95 (live, {segs.group(1) if segs else 0} segments) "
        f"| {p50} / {p95} ms |",
        f"| frames/s with hands present (the sample 4× as a file, median of {len(file_runs[0.0])} "
        f"alternating runs), duty cycle off / on | {fps_off:.2f} / {fps_on:.2f} "
        f"(ratio {fps_on / fps_off:.2f}) |",
        f"| memory for a maximal segment ({defaults.max_segment_s:g} s, room for {capacity} frames at 2× "
        f"30 fps) | {seg_mib:.1f} MiB preallocated, plus one copy of the episode while it is classified |",
        "",
        f"1-minute load average before / after: {load_before[0]:.1f} / {load_after:.1f} on "
        f"{os.cpu_count()} cores, daemons under test at niceness {args.nice}."
        + (
            " The machine was shared with other work, which inflates CPU time per frame and caps the "
            "share a process gets: compare the ratios, not the absolute figures."
            if max(load_before[0], load_after) > (os.cpu_count() or 1)
            else ""
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        write_section("idle", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
