"""Daemon throughput, latency and memory, side by side with Holistic alone, in one run.

* **Holistic alone**: decode + extract the sample clip sequentially in this process (the
  ceiling: the daemon cannot extract faster than MediaPipe can).
* **Daemon end-to-end**: ``slr-edge run`` on the same clip (inference every ``--stride`` frames,
  publishing over ZeroMQ to a subscriber); processed frames/s and latency (the window's newest
  frame read from the source → prediction handed to ZeroMQ, the messages' ``latency_ms``) come
  from the daemon's exit summary; RSS is sampled from ``/proc/<pid>/status`` (VmRSS) while it runs.
* ``--soak-minutes N``: additionally run the daemon with ``--loop`` for N minutes and compare RSS
  after 1 minute with RSS at the end (target: growth < 5 %).

Rounds alternate baseline and daemon so background load hits both alike. Figures go to
``docs/BENCHMARKS.md`` (section "daemon").

    python benchmarks/bench_daemon.py [--model M.onnx] [--rounds 2] [--soak-minutes 10]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.report import write_section  # noqa: E402

SAMPLE = REPO.parent / "shared" / "samples" / "slovo_sample.mp4"
SUMMARY = re.compile(
    r"summary: frames=(?P<frames>\d+) extraction_fps=(?P<fps>[\d.]+) windows=(?P<windows>\d+) "
    r"skipped=(?P<skipped>\d+).*latency_ms\(p50=(?P<p50>[\d.-]+) p95=(?P<p95>[\d.-]+)\)"
)


def rss_mib(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB from /proc (psutil is not a dependency)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def holistic_alone(video: Path) -> float:
    """Frames/s of sequential decode + Holistic over the clip (first frame excluded: graph warm-up)."""
    from edge.camera.sources import open_source
    from edge.keypoints.holistic import HolisticExtractor

    stamps = []
    with HolisticExtractor() as extractor, open_source(str(video)) as source:
        for frame in source:
            extractor.extract(frame.rgb)
            stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def daemon_args(model: Path, video: str | Path, stride: int, endpoint: str, loop: bool = False) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "edge.commands.edge_cli",
        "run",
        "--model",
        str(model),
        "--source",
        str(video),
        "--endpoint",
        endpoint,
        "--stride",
        str(stride),
    ]
    return args + (["--loop"] if loop else [])


def daemon_run(model: Path, video: Path, stride: int) -> dict[str, float]:
    """One daemon run to EOF with a subscriber attached; figures from its summary line and /proc."""
    from edge.transport.subscriber import Subscriber

    endpoint = free_endpoint()
    with Subscriber(endpoint, ["prediction"]) as sub, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(daemon_args(model, video, stride, endpoint), cwd=REPO, stdout=log, stderr=log)
        peak = 0.0
        received = 0
        while proc.poll() is None:
            if sub.recv(timeout_s=0.1) is not None:
                received += 1
            peak = max(peak, rss_mib(proc.pid) or 0.0)
        log.seek(0)
        text = log.read().decode(errors="replace")
    match = SUMMARY.search(text)
    if proc.returncode != 0 or match is None:
        raise SystemExit(f"daemon run failed (exit {proc.returncode}):\n{text[-2000:]}")
    return {
        "fps": float(match["fps"]),
        "frames": float(match["frames"]),
        "windows": float(match["windows"]),
        "skipped": float(match["skipped"]),
        "p50": float(match["p50"]),
        "p95": float(match["p95"]),
        "rss_peak": peak,
        "received": float(received),
    }


def soak(model: Path, video: Path, stride: int, minutes: float) -> tuple[float, float]:
    """RSS (MiB) after 1 minute and at the end of a ``--loop`` run of ``minutes``."""
    endpoint = free_endpoint()
    proc = subprocess.Popen(
        daemon_args(model, video, stride, endpoint, loop=True),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(60.0)
        at_one = rss_mib(proc.pid) or float("nan")
        time.sleep(max(0.0, minutes * 60.0 - 60.0))
        at_end = rss_mib(proc.pid) or float("nan")
        if proc.poll() is not None:
            raise SystemExit(f"soak: daemon exited early with {proc.returncode}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return at_one, at_end


def default_model(tmp: Path) -> Path:
    """The contract-shaped tiny test model (inference cost ~0): isolates pipeline overhead."""
    sys.path.insert(0, str(REPO / "tests"))
    from helpers_onnx import build_tiny_onnx

    return build_tiny_onnx(tmp / "bench_tiny.onnx")


def describe_model(path: Path) -> str:
    """Size and class count, so the figures say how heavy the served model was."""
    from edge.recognition.inference import load_model

    size_mb = path.stat().st_size / 1e6 if path.exists() else 0.0
    return f"{size_mb:.2f} MB, {len(load_model(path).labels)} classes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model to serve (default: the tiny test model)")
    parser.add_argument("--model-note", default="", help="how the model was made, for the report")
    parser.add_argument("--video", type=Path, default=SAMPLE)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating baseline/daemon rounds (default 2)"
    )
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="also run a --loop soak this long")
    parser.add_argument(
        "--no-write", action="store_true", help="print only, do not update docs/BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(Path(tmp))
        model_desc = describe_model(model)
        baseline, runs = [], []
        for i in range(args.rounds):
            baseline.append(holistic_alone(args.video))
            runs.append(daemon_run(model, args.video, args.stride))
            print(
                f"round {i + 1}: holistic {baseline[-1]:.2f} fps, daemon {runs[-1]['fps']:.2f} fps, "
                f"latency p50 {runs[-1]['p50']:.0f} ms p95 {runs[-1]['p95']:.0f} ms, "
                f"peak RSS {runs[-1]['rss_peak']:.0f} MiB",
                flush=True,
            )
        soak_figures = (
            soak(model, args.video, args.stride, args.soak_minutes) if args.soak_minutes > 0 else None
        )

    holistic = statistics.median(baseline)
    daemon = statistics.median(r["fps"] for r in runs)
    p50 = statistics.median(r["p50"] for r in runs)
    p95 = statistics.median(r["p95"] for r in runs)
    rss = max(r["rss_peak"] for r in runs)
    ratio = daemon / holistic
    lines = [
        "## Daemon (`slr-edge run`)",
        "",
        f"Clip `{args.video.name}` ({int(runs[0]['frames'])} frames), inference every {args.stride} frames, "
        f"model `{model.name if args.model else 'tiny test model (helpers_onnx)'}` "
        f"({model_desc}{'; ' + args.model_note if args.model_note else ''}), ORT threads 1, "
        f"medians of {args.rounds} alternating rounds.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| Holistic alone (decode + extract, sequential) | {holistic:.2f} frames/s |",
        f"| daemon end-to-end (processed frames/s) | {daemon:.2f} frames/s |",
        f"| ratio daemon / Holistic (target ≥ 0.9) | {ratio:.2f} {'✓' if ratio >= 0.9 else '✗'} |",
        f"| frame-to-publish latency p50 / p95 | {p50:.0f} / {p95:.0f} ms |",
        f"| daemon peak RSS (VmRSS) | {rss:.0f} MiB |",
        f"| windows inferred / skipped (last run) | {runs[-1]['windows']:.0f} / {runs[-1]['skipped']:.0f} |",
    ]
    if soak_figures is not None:
        one, end = soak_figures
        growth = (end - one) / one * 100.0
        lines.append(
            f"| soak {args.soak_minutes:g} min (`--loop`): RSS at 1 min → end | {one:.0f} → {end:.0f} MiB "
            f"({growth:+.1f} %, target < 5 %) |"
        )
    lines += [
        "",
        f"1-minute load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores (other work on the machine slows both sides alike).",
        "",
        "Latency is the messages' `latency_ms`: from the moment the window's newest frame was read from "
        "the source to the moment its prediction was handed to ZeroMQ (so it includes one extraction).",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        write_section("daemon", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
