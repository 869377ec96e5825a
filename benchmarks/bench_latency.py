"""Latency on the wire (``latency_ms``) on a live 30 fps stream, several models side by side in one run.

A live camera is played by ``ffmpeg -re``: the sample clip, looped, copied into an MPEG-TS stream
served on ``tcp://127.0.0.1:PORT`` (one ffmpeg per daemon run, as a network camera would serve
it). ``slr-edge run`` reads that stream and publishes; a subscriber collects every
``prediction``'s ``latency_ms`` (the window's newest frame read from the stream → the message
handed to ZeroMQ) and ``inference_ms``, after a warm-up. Rounds alternate the models, so the
machine's background load hits them alike.

Without ``--model`` the four variants of the issue are exported first (untrained, fixed seed,
1001 classes): the ``edge`` preset and the full ``slr-slovo`` model, each fp32 and int8.

    python benchmarks/bench_latency.py [--model "edge fp32=edge.onnx" ...] [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_daemon import SAMPLE, daemon_args, describe_model, free_endpoint  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

#: (label, preset, int8) of the default variants, and the issue's p50 targets on this machine.
VARIANTS = (
    ("edge fp32", "edge", False),
    ("edge int8", "edge", True),
    ("full fp32", "slr-slovo", False),
    ("full int8", "slr-slovo", True),
)
TARGETS_MS = {"edge fp32": 60.0, "edge int8": 60.0, "full int8": 100.0}
NUM_CLASSES = 1001


@dataclass
class Samples:
    """Everything one variant's runs produced."""

    latency_ms: list[float] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)
    extraction_fps: list[float] = field(default_factory=list)


def export_variants(out_dir: Path) -> dict[str, Path]:
    """Export the default variants with ``slr-export --random-init`` (about a minute each here)."""
    models = {}
    for label, preset, int8 in VARIANTS:
        path = out_dir / f"{label.replace(' ', '-')}.onnx"
        args = ["--random-init", preset, "--num-classes", str(NUM_CLASSES), "-o", str(path), "--no-latency"]
        subprocess.run(
            [sys.executable, "-m", "export.cli", *args, *(["--int8"] if int8 else [])],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        models[label] = path
    return models


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_stream(video: Path, port: int) -> subprocess.Popen[bytes]:
    """``ffmpeg -re`` serving ``video`` in a loop as MPEG-TS on tcp://127.0.0.1:port (one client)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is needed for the live stream (apt-get install ffmpeg)")
    args = [ffmpeg, "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(video)]
    args += ["-an", "-c:v", "copy", "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def live_run(model: Path, video: Path, seconds: float, warmup_s: float, samples: Samples) -> None:
    """One daemon on a fresh live stream; predictions after ``warmup_s`` of the first one are kept."""
    from edge.transport.subscriber import Subscriber

    port, endpoint = free_port(), free_endpoint()
    stream = start_stream(video, port)
    time.sleep(0.5)  # let ffmpeg listen; the daemon would retry anyway
    with Subscriber(endpoint, ["prediction", "status"]) as sub, tempfile.TemporaryFile() as log:
        args = daemon_args(model, f"tcp://127.0.0.1:{port}", 8, endpoint)
        daemon = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)
        first: float | None = None
        deadline = time.monotonic() + 120.0  # start-up guard: MediaPipe + model load under load
        try:
            while daemon.poll() is None and time.monotonic() < deadline:
                message = sub.recv(timeout_s=0.2)
                if message is None:
                    continue
                topic, payload = message
                now = time.monotonic()
                if first is None and topic == "prediction":
                    first = now
                    deadline = now + warmup_s + seconds
                if first is None or now - first < warmup_s:
                    continue
                if topic == "prediction":
                    samples.latency_ms.append(float(payload["latency_ms"]))
                    samples.inference_ms.append(float(payload["inference_ms"]))
                elif payload["state"] == "running":
                    samples.extraction_fps.append(float(payload["extraction_fps"]))
        finally:
            stop(daemon)
            stop(stream, signal.SIGINT)
        if first is None:
            log.seek(0)
            raise SystemExit(
                f"no prediction from {model.name}:\n{log.read().decode(errors='replace')[-2000:]}"
            )


def window_p50_ms(path: Path, runs: int = 20) -> float:
    """Per-window latency alone (what ``slr-edge check-model`` prints), CPU provider, 1 thread."""
    from edge.recognition.classify import window_latencies_ms
    from edge.recognition.inference import load_model

    return float(np.percentile(window_latencies_ms(load_model(path), runs), 50))


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", action="append", default=[], metavar="LABEL=PATH", help="a model to measure (repeat)"
    )
    parser.add_argument("--video", type=Path, default=SAMPLE)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (default 20)")
    parser.add_argument(
        "--warmup", type=float, default=4.0, help="seconds ignored after the first prediction"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds over the models (default 2)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only, do not update docs/BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            models = {label: Path(path) for label, _, path in (m.partition("=") for m in args.model)}
        else:
            models = export_variants(Path(tmp))
        described = {label: describe_model(path) for label, path in models.items()}
        load_before = os.getloadavg()
        results = {label: Samples() for label in models}
        alone = {label: window_p50_ms(path) for label, path in models.items()}
        for round_ in range(args.rounds):
            for label, path in models.items():
                live_run(path, args.video, args.seconds, args.warmup, results[label])
                p50, p95 = percentiles(results[label].latency_ms)
                print(f"round {round_ + 1} {label}: latency p50 {p50:.0f} ms p95 {p95:.0f} ms", flush=True)
        load_after = os.getloadavg()

    lines = [
        "## Latency on the wire (live 30 fps stream)",
        "",
        f"`benchmarks/bench_latency.py`: `{args.video.name}` looped by `ffmpeg -re` as a live 30 fps 720p "
        "MPEG-TS stream on 127.0.0.1, read by `slr-edge run` (stride 8, ORT threads 1, CPU provider); "
        f"{args.rounds} alternating rounds × {args.seconds:g} s per model after a {args.warmup:g} s warm-up. "
        "`latency_ms` is what each `prediction` carries: the window's newest frame read from the stream → "
        "the message handed to ZeroMQ. *Window alone* is `slr-edge check-model`'s figure (preprocessing + "
        "model on one window, measured before the runs, nothing else running in the benchmark). "
        "Models untrained (`slr-export --random-init`, 1001 classes).",
        "",
        "| model | file | window alone (check-model) | windows | inference p50 in daemon | latency p50 "
        "| latency p95 | extraction | target (p50) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    p50s = {label: percentiles(samples.latency_ms)[0] for label, samples in results.items()}
    for label, samples in results.items():
        p50, p95 = percentiles(samples.latency_ms)
        inference = statistics.median(samples.inference_ms)
        fps = statistics.median(samples.extraction_fps) if samples.extraction_fps else float("nan")
        target = TARGETS_MS.get(label)
        verdict = "–" if target is None else f"≤ {target:.0f} ms {'✓' if p50 <= target else '✗'}"
        lines.append(
            f"| {label} | {described[label]} | {alone[label]:.1f} ms | {len(samples.latency_ms)} | "
            f"{inference:.1f} ms | "
            f"{p50:.0f} ms | {p95:.0f} ms | {fps:.1f} frames/s | {verdict} |"
        )
    lines += [
        "",
        f"Machine load (1/5/15-minute load average) before: {' / '.join(f'{x:.1f}' for x in load_before)}, "
        f"after: {' / '.join(f'{x:.1f}' for x in load_after)}, on {os.cpu_count()} cores. The daemon "
        "needs about 1.4 cores at full rate (MediaPipe on every frame): when other work shares the machine, "
        "extraction runs below the camera's 30 frames/s, frames wait, and latency grows for every model "
        "alike (the *extraction* column shows it); compare the rows with each other.",
    ]
    oversubscribed = min(load_before[0], load_after[0]) / (os.cpu_count() or 1)
    missed = [label for label, target in TARGETS_MS.items() if label in results and p50s[label] > target]
    if missed:
        lines += [
            "",
            f"**Targets not met in this run** ({', '.join(missed)}). "
            + (
                f"The machine was oversubscribed about {oversubscribed:.0f}× (load average / cores): "
                "even the window alone took several times its unloaded time (compare `bench_export`'s "
                "section), and extraction fell far below 30 frames/s, so these figures describe the load, "
                "not the device. Rerun on an otherwise idle machine to check the targets."
                if oversubscribed > 1.5
                else "The machine was not overloaded: these are the pipeline's own figures."
            ),
        ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        write_section("latency", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
