"""Training throughput (windows/s) of the ``edge`` preset on CPU, full recipe, real data path.

Runs :func:`model_src.train.train_epoch` (augmentation + preprocessing + forward with auxiliary
heads + focal loss + MixUp + backward + clipping + AdamW + schedule) over synthetic clips, after a
warm-up epoch, so the figure is what ``slr-train`` achieves per window on this machine, not a bare
matmul rate. Usage: ``python -m benchmarks.bench_train [--steps 4] [--no-write]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from model_src.augment import Augmenter
from model_src.data import KeypointDataset, load_train_data, make_loader
from model_src.model import build_model
from model_src.schedule import build_scheduler
from model_src.synthetic import make_synthetic_dataset
from model_src.train import init_for_training, model_config_for, param_groups, train_epoch
from model_src.train_config import TrainConfig

if not __package__:  # run as a script (python benchmarks/x.py): make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(steps: int, batch_size: int, preset: str, num_classes: int) -> dict[str, float]:
    """Seconds and windows/s of ``steps`` training steps of ``batch_size`` after one warm-up step."""
    cfg = TrainConfig(preset=preset, batch_size=batch_size, device="cpu", epochs=1, warmup_steps=1)
    clips = batch_size * (steps + 1)
    with tempfile.TemporaryDirectory() as tmp:
        ds = make_synthetic_dataset(Path(tmp), 10, clips_per_class=-(-clips // 10), val_fraction=0)
        data = load_train_data(ds.root, val_fraction=0.0)
    model_cfg = model_config_for(cfg, num_classes)
    model = build_model(model_cfg)
    init_for_training(model)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg, steps + 1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    dataset = KeypointDataset(data.train, Augmenter(cfg.augment), seed=0)

    def run(subset: list[int]) -> float:
        loader = make_loader(torch.utils.data.Subset(dataset, subset), batch_size, shuffle=False)
        start = time.perf_counter()
        train_epoch(model, loader, cfg, optimizer, scheduler, scaler, torch.device("cpu"), 0, progress=False)
        return time.perf_counter() - start

    run(list(range(batch_size)))  # warm-up: allocator, kernels, first-call overheads
    seconds = run(list(range(batch_size, batch_size * (steps + 1))))
    windows = batch_size * steps
    params = sum(p.numel() for p in model.parameters())
    return {"seconds": seconds, "windows": windows, "windows_per_s": windows / seconds, "params": params}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="measured optimiser steps (default 4)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per step (default 32)")
    parser.add_argument(
        "--threads",
        default="2,1",
        help="torch intra-op thread counts to compare, side by side (default 2,1; the first is the headline)",
    )
    parser.add_argument("--preset", default="edge", help="model preset (default edge)")
    parser.add_argument("--classes", type=int, default=1001, help="output classes (default 1001, Slovo)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        load = os.getloadavg()[0]
        result = measure(args.steps, args.batch_size, args.preset, args.classes)
        rows.append((threads, load, result))
    base = rows[0][2]["windows_per_s"]
    table = "\n".join(
        f"| {t} | {r['windows']} | {r['seconds']:.1f} | {r['windows_per_s']:.1f} | "
        f"{r['windows_per_s'] / base:.2f} | {load:.1f} |"
        for t, load, r in rows
    )
    markdown = (
        "## Training throughput (CPU)\n\n"
        f"`python -m benchmarks.bench_train` — preset `{args.preset}` "
        f"({rows[0][2]['params'] / 1e6:.2f} M parameters, {args.classes} classes), batch {args.batch_size}, "
        "full recipe (augmentation, preprocessing, aux losses, focal loss, MixUp, clipping, AdamW).\n\n"
        "| threads | windows | seconds | windows/s | ratio | load avg |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: |\n"
        f"{table}\n\n"
        "Load avg is the 1-minute load average when the measurement started; other work on the machine "
        "slows these figures down, multi-threaded runs most.\n"
    )
    print(markdown)
    if not args.no_write:
        from benchmarks.report import write_section

        write_section("training", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
