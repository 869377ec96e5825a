"""A short clip answered as fast as its keypoints: ``slr-predict`` from a cold process vs bare keypoints.

Side by side in one run, alternating rounds so the machine's background load hits every figure
alike (medians reported):

* **bare keypoints** — an initialised MediaPipe Holistic decodes and extracts every frame of the
  clip on the shared whole-file path (:func:`edge.clips.keypoints.extract_clip`), nothing else:
  the floor of what any answer can cost;
* **slr-predict cold** — a new process, ``slr-predict CLIP --model M --json``, wall time from
  start to exit (imports, MediaPipe's start, the ONNX session, extraction, inference), twice per
  round: the first run of that model file (an empty cache, so its finiteness probe runs) and a
  later run (the probe's passed marker in the cache, :mod:`edge.recognition.probe_record`);
* **start-up steps** — in a new process: importing what slr-predict imports, opening (probing)
  the clip, starting Holistic, and loading the model (checksum + ORT session), each timed alone.

Without ``--model`` two untrained models of 1001 classes are exported first: the seed-sized one
(``--random-init slr-slovo``, ~100 MB fp32, as the issue measured) and the ``edge`` preset.

    python benchmarks/bench_clip.py [--model M.onnx ...] [--video CLIP] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_daemon import SAMPLE  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

#: The issue's target: slr-predict cold at most this multiple of the bare keypoints.
COLD_TARGET = 1.30

_STEPS = r"""
import json, sys, time
t0 = time.perf_counter()
from edge.camera.sources import open_source
from edge.keypoints.holistic import HolisticExtractor
from edge.recognition.inference import load_model
from edge.recognition.classify import classify_clip
t1 = time.perf_counter()
source = open_source(sys.argv[2], warn_truncated=False)
t2 = time.perf_counter()
extractor = HolisticExtractor()
t3 = time.perf_counter()
model = load_model(sys.argv[1], threads=2)
t4 = time.perf_counter()
source.close(); extractor.close()
steps = {"imports": t1 - t0, "open source": t2 - t1, "start Holistic": t3 - t2, "load model": t4 - t3}
print(json.dumps(steps))
"""


#: The presets timed by default (untrained, 1001 classes): the issue's seed-sized model and the edge one.
DEFAULT_PRESETS = ("slr-slovo", "edge")


def export_preset(preset: str, out_dir: Path) -> Path:
    """An untrained ``preset`` model with 1001 classes (timing only)."""
    path = out_dir / f"{preset}.onnx"
    subprocess.run(
        [shutil.which("slr-export") or "slr-export", "--random-init", preset, "--num-classes", "1001",
         "-o", str(path), "--no-latency"],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return path


def bare_keypoints(video: Path, extractor: object) -> float:
    """Seconds to decode and extract every frame with an initialised Holistic."""
    from edge.camera.sources import open_source
    from edge.clips.keypoints import extract_clip

    start = time.perf_counter()
    with open_source(str(video), warn_truncated=False) as source:
        extract_clip(source, extractor)  # type: ignore[arg-type]
    return time.perf_counter() - start


def predict_cold(video: Path, model: Path, cache: Path) -> float:
    """Wall seconds of ``slr-predict VIDEO --model M --json`` in a new process, caching in ``cache``."""
    start = time.perf_counter()
    subprocess.run(
        [shutil.which("slr-predict") or "slr-predict", str(video), "--model", str(model), "--json"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
    )
    return time.perf_counter() - start


def startup_steps(video: Path, model: Path, cache: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _STEPS, str(model), str(video)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(model: Path, video: Path, rounds: int, tmp: Path) -> list[str]:
    """Alternating rounds for one model; the markdown rows of its table and its start-up steps."""
    from edge.keypoints.holistic import HolisticExtractor

    bare: list[float] = []
    first: list[float] = []
    cold: list[float] = []
    steps: dict[str, list[float]] = {}
    kept = tmp / f"kept-cache-{model.stem}"  # the probe's marker stays here between rounds
    with HolisticExtractor() as extractor:
        bare_keypoints(video, extractor)  # warm the page cache and the graph
        predict_cold(video, model, kept)
        for round_ in range(rounds):
            for name, seconds in startup_steps(video, model, kept).items():
                steps.setdefault(name, []).append(seconds)
            extractor.reset()
            bare.append(bare_keypoints(video, extractor))
            first.append(predict_cold(video, model, tmp / f"empty-{model.stem}-{round_}"))
            cold.append(predict_cold(video, model, kept))
            print(
                f"{model.name} round {round_ + 1}: bare {bare[-1]:.2f} s, slr-predict first "
                f"{first[-1]:.2f} s, later {cold[-1]:.2f} s",
                flush=True,
            )
    bare_s, first_s, cold_s = statistics.median(bare), statistics.median(first), statistics.median(cold)

    def judged(seconds: float) -> str:
        ratio = seconds / bare_s
        return f"**{ratio:.2f}** {'✓' if ratio <= COLD_TARGET else '✗'} (target ≤ {COLD_TARGET})"

    size_mb = model.stat().st_size / 1e6
    return [
        f"### {model.name} ({size_mb:.0f} MB)",
        "",
        "| what | seconds | × bare keypoints |",
        "| --- | ---: | ---: |",
        f"| bare keypoints (initialised Holistic, decode + extract every frame) | {bare_s:.2f} | 1.00 |",
        f"| `slr-predict` cold, first run of this model (its finiteness probe runs) | {first_s:.2f} "
        f"| {judged(first_s)} |",
        f"| `slr-predict` cold, a later run (the probe's marker cached) | {cold_s:.2f} | {judged(cold_s)} |",
        "",
        "| start-up step, each alone in a new process (marker cached) | seconds (median) |",
        "| --- | ---: |",
        *(f"| {name} | {statistics.median(values):.2f} |" for name, values in steps.items()),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        help="a model to time (repeatable; default: export the seed-sized and the edge presets)",
    )
    parser.add_argument("--video", type=Path, default=SAMPLE, help="the clip (default: the 3.7 s sample)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        models = args.model or [export_preset(preset, Path(tmp)) for preset in DEFAULT_PRESETS]
        load_before = os.getloadavg()[0]
        tables = [row for model in models for row in measure(model, args.video, args.rounds, Path(tmp))]
        load_after = os.getloadavg()[0]

    lines = [
        "## A short clip: `slr-predict` cold vs bare keypoints (`benchmarks/bench_clip.py`)",
        "",
        f"Clip `{args.video.name}`, untrained models of 1001 classes, {args.rounds} alternating rounds per "
        f"model, medians; 1-minute load average {load_before:.1f} before, {load_after:.1f} after. "
        "slr-predict overlaps the model's load with the source's probing, MediaPipe's start and the "
        "extraction.",
        "",
        *tables,
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("clip", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
