"""Export speed: PyTorch eager vs ONNX Runtime fp32 vs int8, side by side, both presets.

Run: ``python -m benchmarks.bench_export`` (writes the ``export`` section of docs/BENCHMARKS.md).

Method. Random-init models (fixed seed) of ``slr-slovo`` (500 classes, the published size) and
``edge`` (500 classes). torch uses 2 threads, ONNX Runtime ``intra_op_num_threads=2``; batch 1.
The engines are timed round-robin (one call each per round, windows cycling through realistic
preprocessed inputs), so a noisy neighbour slows all of them alike and the ratios stay fair;
p50/p95 over ``--runs`` rounds after warm-up. ORT sessions run without thread spinning and
OpenMP waits passively (see below), so idle engines do not steal the cores of the timed one.

Rows: "eager" is the model as trained (``model_src``); "ORT fp32 plain" is a straight
TorchScript export of it, no graph shaping (the baseline the shaping is judged against);
"ORT fp32" and "ORT int8" are what ``slr-export`` writes. ``--dynamo`` adds the dynamo
exporter's graph of the shaped model for comparison.

int8 agreement. A random-init classifier gives near-uniform logits whose top-2 margin is far
below any quantisation noise, so raw agreement on it measures nothing useful (scaling the
logits changes nothing either: argmax is scale-invariant). We therefore also report agreement
for a *prototype classifier*: ``final_classifier`` rows are set to the centred, normalised
penultimate features of the 300 agreement windows (what a trained classifier converges
towards on its data: one clear class per input, margins well above rounding noise), the
encoder left as initialised. Both figures are reported; ``slr-export --int8`` reports the
agreement of whatever checkpoint it exports (tests do so for the tiny reference checkpoint).
"""

from __future__ import annotations

import os
import sys

# Before torch loads OpenMP: on a shared 2-core machine, OpenMP's default spin-waiting at
# barriers turns every torch op into a scheduler time slice once another process is busy
# (measured: edge preset eager 2700 ms spinning vs 20 ms passive). PASSIVE is torch's best case.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from edge.recognition.inference import create_session
from export.exporter import to_onnx
from export.graph import prepare_for_export
from export.quantize import quantize_int8
from export.sources import random_init_source
from export.verify import (
    Windows,
    check_parity,
    run_onnx,
    synthetic_windows,
    top1_agreement,
)

if not __package__:  # run as a script (python benchmarks/x.py): make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import write_section

THREADS = 2
CLASSES = 500


def _round_robin(
    engines: dict[str, Callable[[int], object]], runs: int, warmup: int
) -> dict[str, np.ndarray]:
    """Milliseconds per call of every engine, interleaved; ``fn(i)`` runs window ``i``."""
    for i in range(warmup):
        for fn in engines.values():
            fn(i)
    times: dict[str, list[float]] = {name: [] for name in engines}
    for i in range(runs):
        for name, fn in engines.items():
            start = time.perf_counter()
            fn(i)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: np.asarray(t) for name, t in times.items()}


def _penultimate(model: torch.nn.Module, windows: Windows) -> torch.Tensor:
    """Inputs of ``final_classifier`` for ``windows``."""
    with torch.inference_mode():
        pooled = model.features(torch.from_numpy(windows.frames), torch.from_numpy(windows.idx))
        return model.classifier.layer2(model.classifier.layer1(pooled))


def set_prototype_classifier(model: torch.nn.Module, windows: Windows, classes: int) -> None:
    """Make class ``c`` the (centred, unit) penultimate feature of window ``c``: confident margins."""
    feats = _penultimate(model, windows).double()
    feats = feats[torch.isfinite(feats).all(dim=1)]  # the all-padding window has no features
    centred = feats - feats.mean(dim=0, keepdim=True)
    protos = centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-12)
    weight = torch.zeros(classes, feats.shape[1], dtype=torch.float64)
    weight[: len(protos)] = protos[:classes]
    bias = -(weight @ feats.mean(dim=0))
    with torch.no_grad():
        model.classifier.final_classifier.weight.copy_(weight.float())
        model.classifier.final_classifier.bias.copy_(bias.float())


def _agreement(fp32: Path, int8: Path, windows: Windows) -> tuple[float, float]:
    ref = run_onnx(create_session(fp32, THREADS), windows, batch=8)
    got = run_onnx(create_session(int8, THREADS), windows, batch=8)
    finite = np.isfinite(ref).all(axis=1)
    return top1_agreement(ref[finite], got[finite]), float(np.abs(ref[finite] - got[finite]).max())


def bench_preset(
    name: str, tmp: Path, runs: int, warmup: int, dynamo: bool, agreement: bool = True
) -> dict[str, object]:
    """Export, verify and time one preset; returns the figures for the table."""
    source = random_init_source(name, num_classes=CLASSES)
    model = source.model.eval()
    window = source.config.window
    timing_windows = synthetic_windows(16, seed=3, window=window)
    paths = {
        "plain": tmp / f"{name}_plain.onnx",
        "fp32": tmp / f"{name}_fp32.onnx",
        "int8": tmp / f"{name}_int8.onnx",
    }

    # Plain export: the unshaped model, same exporter settings.
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(2, window, 92, 3), torch.arange(window, dtype=torch.float32).repeat(2, 1)),
            str(paths["plain"]),
            input_names=["frames", "frame_idx"],
            output_names=["logits"],
            dynamic_axes={"frames": {0: "b"}, "frame_idx": {0: "b"}, "logits": {0: "b"}},
            opset_version=17,
            dynamo=False,
        )
    t0 = time.perf_counter()
    to_onnx(model, paths["fp32"], window=window)
    export_s = time.perf_counter() - t0
    quantize_int8(paths["fp32"], paths["int8"])
    if dynamo:
        paths["dynamo"] = tmp / f"{name}_dynamo.onnx"
        to_onnx(model, paths["dynamo"], window=window, dynamo=True)

    # create_session disables thread spinning: five sessions and torch share 2 cores, and spinning
    # threads would starve the engine being timed (measured: eager 20× slower next to them).
    sessions = {key: create_session(path, THREADS) for key, path in paths.items()}
    parity = check_parity(sessions["fp32"], model, synthetic_windows(16, seed=0, window=window))
    shaped = prepare_for_export(model)

    def onnx_fn(key: str) -> Callable[[int], object]:
        sess = sessions[key]
        feeds = [
            {"frames": timing_windows.frames[i : i + 1], "frame_idx": timing_windows.idx[i : i + 1]}
            for i in range(len(timing_windows))
        ]
        return lambda i: sess.run(None, feeds[i % len(feeds)])

    def torch_fn(module: torch.nn.Module) -> Callable[[int], object]:
        frames = torch.from_numpy(timing_windows.frames)
        idx = torch.from_numpy(timing_windows.idx)

        def run(i: int) -> object:
            j = i % len(timing_windows)
            with torch.inference_mode():
                return module(frames[j : j + 1], idx[j : j + 1])

        return run

    engines = {
        "PyTorch eager": torch_fn(model),
        "PyTorch eager, shaped": torch_fn(shaped),
        "ORT fp32 plain export": onnx_fn("plain"),
        "ORT fp32": onnx_fn("fp32"),
        "ORT int8": onnx_fn("int8"),
    }
    if dynamo:
        engines["ORT fp32 (dynamo exporter)"] = onnx_fn("dynamo")
    times = _round_robin(engines, runs, warmup)
    sizes = {key: path.stat().st_size / 1e6 for key, path in paths.items()}
    figures: dict[str, object] = {
        "name": name,
        "params": sum(p.numel() for p in model.parameters()) / 1e6,
        "times": times,
        "sizes": sizes,
        "parity": parity.max_abs_diff,
        "export_s": export_s,
        "raw_agree": float("nan"),
        "proto_agree": float("nan"),
        "proto_diff": float("nan"),
    }
    if not agreement:
        return figures

    # int8 agreement: raw random init, then with a prototype classifier (see module docstring).
    agree_windows = synthetic_windows(300, seed=1, window=window)
    raw_agree, _ = _agreement(paths["fp32"], paths["int8"], agree_windows)
    set_prototype_classifier(model, agree_windows, CLASSES)
    proto_fp32, proto_int8 = tmp / f"{name}_proto_fp32.onnx", tmp / f"{name}_proto_int8.onnx"
    to_onnx(model, proto_fp32, window=window)
    quantize_int8(proto_fp32, proto_int8)
    proto_agree, proto_diff = _agreement(proto_fp32, proto_int8, agree_windows)

    figures.update(raw_agree=raw_agree, proto_agree=proto_agree, proto_diff=proto_diff)
    return figures


def tiny_checkpoint_agreement(tmp: Path) -> tuple[float, int] | None:
    """int8 top-1 agreement for the published-format tiny checkpoint (trained-format weights, 10
    classes), on 300 synthetic windows plus its 3 reference windows; None if ../shared is absent."""
    reference = Path(__file__).resolve().parents[2] / "shared" / "reference" / "slr_slovo"
    if not (reference / "tiny_checkpoint.pt").is_file():
        return None
    from model_src.published import load_published_state_dict

    state = torch.load(reference / "tiny_checkpoint.pt", map_location="cpu", weights_only=True)
    model, cfg = load_published_state_dict(state)
    fp32, int8 = tmp / "tiny_fp32.onnx", tmp / "tiny_int8.onnx"
    to_onnx(model, fp32, window=cfg.window)
    quantize_int8(fp32, int8)
    windows = synthetic_windows(300, seed=1, window=cfg.window)
    with np.load(reference / "tiny_vectors.npz") as vectors:
        cases = Windows(
            np.stack([vectors[f"case{c}_frames"] for c in range(3)]),
            np.stack([vectors[f"case{c}_idx"] for c in range(3)]),
        )
    windows = cases + windows
    agreement, _ = _agreement(fp32, int8, windows)
    return agreement, len(windows) - 1  # the all-padding window has no prediction


def _size_for(row: str, sizes: dict[str, float]) -> str:
    key = {"ORT fp32 plain export": "plain", "ORT fp32": "fp32", "ORT int8": "int8"}.get(row)
    if row.startswith("ORT fp32 (dynamo"):
        key = "dynamo"
    return f"{sizes[key]:.1f}" if key else "–"


def render(
    results: list[dict[str, object]], runs: int, tiny: tuple[float, int] | None, load: tuple[float, float]
) -> str:
    """The markdown table plus the headline ratios."""
    lines = [
        "## Export: PyTorch eager vs ONNX Runtime (batch 1, 2 threads)",
        "",
        f"`python -m benchmarks.bench_export` — random-init models, {CLASSES} classes, engines timed "
        f"round-robin over {runs} rounds (p50 / p95 ms); ratios are eager p50 / engine p50.",
        "",
        "| preset | engine | p50 ms | p95 ms | speed-up vs eager | model MB |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    for res in results:
        times: dict[str, np.ndarray] = res["times"]  # type: ignore[assignment]
        eager = float(np.median(times["PyTorch eager"]))
        for row, t in times.items():
            p50, p95 = float(np.median(t)), float(np.percentile(t, 95))
            lines.append(
                f"| {res['name']} ({res['params']:.1f} M) | {row} | {p50:.1f} | {p95:.1f} | "
                f"{eager / p50:.2f}× | {_size_for(row, res['sizes'])} |"  # type: ignore[arg-type]
            )
        fp32 = float(np.median(times["ORT fp32"]))
        int8 = float(np.median(times["ORT int8"]))
        notes.append(
            f"- **{res['name']}**: ORT fp32 {eager / fp32:.2f}× faster than eager, int8 {fp32 / int8:.2f}× "
            f"faster than fp32; parity fp32 vs PyTorch max |Δlogit| {res['parity']:.1e}; int8 top-1 "
            f"agreement {res['proto_agree']:.1%} with a prototype classifier (max |Δlogit| "
            f"{res['proto_diff']:.3f}), {res['raw_agree']:.1%} with the raw random-init classifier "
            f"(300 windows); export {res['export_s']:.1f} s."
        )
    if tiny is not None:
        notes.append(
            f"- **tiny reference checkpoint** (published format, 10 classes): int8 top-1 agreement "
            f"{tiny[0]:.1%} on {tiny[1]} windows (its random weights give small margins)."
        )
    notes.append(
        f"- 1-minute load average of the (shared) machine: {load[0]:.1f} before, {load[1]:.1f} after; "
        "absolute figures and even the ratios move with it, so compare runs made at similar load."
    )
    return "\n".join([*lines, "", *notes])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write it to docs/BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed rounds per engine (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument("--presets", nargs="+", default=["slr-slovo", "edge"], help="presets to run")
    parser.add_argument("--dynamo", action="store_true", help="also time the dynamo exporter's graph")
    parser.add_argument("--no-agreement", action="store_true", help="skip the int8 agreement runs")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        results = [
            bench_preset(name, Path(tmp), args.runs, args.warmup, args.dynamo, not args.no_agreement)
            for name in args.presets
        ]
        tiny = None if args.no_agreement else tiny_checkpoint_agreement(Path(tmp))
    markdown = render(results, args.runs, tiny, (load_before, os.getloadavg()[0]))
    print(markdown)
    if not args.no_write:
        write_section("export", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
