"""``slr-train``: train an SLR_SLOVO keypoint transformer on ``slr-extract`` outputs.

Recipe (each part switchable in :class:`~model_src.train_config.TrainConfig`): raw-keypoint
augmentation, focal loss with label smoothing, auxiliary-classifier losses, MixUp, AdamW,
warm-up + decaying cosine cycles, gradient clipping, mixed precision on CUDA, early stopping on
validation accuracy. Every epoch writes ``OUT/last.pt`` (and ``OUT/best.pt`` on improvement),
``OUT/metrics.csv`` and ``OUT/curves.png``; ``--resume`` continues a run exactly, because all
randomness of an epoch is derived from ``(seed, epoch)``.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from tqdm.auto import tqdm

from model_src.augment import Augmenter
from model_src.checkpoint import CheckpointError, load_training_checkpoint, restore_rng_state, save_checkpoint
from model_src.config import PRESETS, ConfigError, ModelConfig, preset
from model_src.data import (
    DataError,
    EpochPermutationSampler,
    KeypointDataset,
    TrainData,
    landmark_statistics,
    load_train_data,
    make_loader,
)
from model_src.losses import focal_loss, mixup, smooth_targets, total_loss
from model_src.model import GROUPS, SLRTransformer, build_model
from model_src.schedule import build_scheduler
from model_src.train_config import TrainConfig, TrainConfigError

METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
console = Console(stderr=True, soft_wrap=True)


@dataclass
class TrainResult:
    """What a run achieved and where it left its files."""

    out_dir: Path
    best_val_acc: float
    best_epoch: int
    epochs_completed: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def last_checkpoint(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.out_dir / "best.pt"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present: the same command trains on a laptop and a GPU box."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def model_config_for(train_cfg: TrainConfig, num_classes: int) -> ModelConfig:
    """The preset named by ``train_cfg`` with its overrides and the data's class count."""
    return preset(train_cfg.preset, **{**train_cfg.model_overrides, "num_classes": num_classes})


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int) -> int:
    """A per-epoch seed: reseeding at every epoch start makes an epoch replayable after resume."""
    return int(np.random.SeedSequence([seed, epoch, 0xE90C]).generate_state(1)[0])


def fit_normalization(model: SLRTransformer, dataset: KeypointDataset) -> None:
    """Set the model's per-landmark normalisation buffers from the training windows.

    The published model's buffers hold Slovo statistics; a model trained from scratch on other
    data (or camera set-ups) should normalise with its own.
    """
    mean, std = landmark_statistics(dataset)
    with torch.no_grad():
        for _, rows, prefix in GROUPS:
            getattr(model, f"{prefix}_MEAN").copy_(torch.from_numpy(mean[rows]))
            getattr(model, f"{prefix}_STD").copy_(torch.from_numpy(std[rows]))


def init_for_training(model: SLRTransformer, std: float = 0.02) -> None:
    """Give all-zero ``missing_embed`` vectors a small random start.

    A zero vector makes every missing group of every frame embed identically to padding; a small
    random start lets the model tell "group not seen" from "no frame" from the first step.
    """
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("missing_embed") and not param.any():
                param.normal_(0.0, std)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norm weights, scalars and embeddings' 1-D vectors."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def write_metrics_csv(path: Path, history: list[dict[str, float]]) -> None:
    """Rewrite ``metrics.csv`` from the full history (idempotent across resumes)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def plot_curves(path: Path, history: list[dict[str, float]]) -> None:
    """Loss and accuracy curves per epoch (train and validation) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], marker="o", label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def train_epoch(
    model: SLRTransformer,
    loader: torch.utils.data.DataLoader,
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    epoch: int,
    progress: bool,
) -> tuple[float, float, int]:
    """One pass over the training data; returns mean loss, accuracy and optimiser steps taken."""
    model.train()
    num_classes = model.cfg.num_classes
    use_amp = scaler.is_enabled()
    mix_rng = np.random.default_rng([cfg.seed, epoch, 0x313])
    loss_sum, correct, seen, steps, skipped = 0.0, 0, 0, 0, 0
    start = time.perf_counter()
    bar = tqdm(
        loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False, disable=not progress
    )
    for frames, idx, labels in bar:
        frames, idx, labels = frames.to(device), idx.to(device), labels.to(device)
        targets = smooth_targets(labels, num_classes, cfg.label_smoothing)
        # Always draw, so toggling MixUp per batch does not shift the rest of the epoch's randomness.
        mix_draw = mix_rng.random()
        if cfg.mixup_prob > 0 and cfg.mixup_alpha > 0 and mix_draw < cfg.mixup_prob and len(labels) > 1:
            frames, idx, targets, _ = mixup(frames, idx, targets, cfg.mixup_alpha, mix_rng)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            if cfg.aux_weight > 0:
                logits, aux = model.forward_with_aux(frames, idx)
            else:
                logits, aux = model(frames, idx), []
            loss = total_loss(logits, aux, targets, cfg.focal_gamma, cfg.aux_weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
        if use_amp or torch.isfinite(grad_norm):
            scaler.step(optimizer)  # GradScaler skips non-finite steps itself on CUDA
        else:
            skipped += 1
        scaler.update()
        scheduler.step()
        steps += 1
        n = len(labels)
        loss_sum += float(loss.detach()) * n
        correct += int((logits.detach().argmax(-1) == labels).sum())
        seen += n
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", win_s=f"{seen / (time.perf_counter() - start):.1f}")
    if skipped:
        warnings.warn(f"epoch {epoch + 1}: skipped {skipped} step(s) with non-finite gradients", stacklevel=2)
    return loss_sum / max(seen, 1), correct / max(seen, 1), steps


@torch.no_grad()
def _validate(
    model: SLRTransformer, loader: torch.utils.data.DataLoader, cfg: TrainConfig, device: torch.device
) -> tuple[float, float]:
    """Mean main-head loss (same focal objective, no aux) and top-1 accuracy on validation clips."""
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    use_amp = cfg.amp and device.type == "cuda"
    for frames, idx, labels in loader:
        frames, idx, labels = frames.to(device), idx.to(device), labels.to(device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(frames, idx)
        targets = smooth_targets(labels, model.cfg.num_classes, cfg.label_smoothing)
        loss_sum += float(focal_loss(logits, targets, cfg.focal_gamma)) * len(labels)
        correct += int((logits.argmax(-1) == labels).sum())
        seen += len(labels)
    if seen == 0:
        return math.nan, math.nan
    return loss_sum / seen, correct / seen


def train(
    train_cfg: TrainConfig,
    model_cfg: ModelConfig,
    data: TrainData,
    *,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) a model on in-memory ``data``; files go to ``train_cfg.out``.

    ``stop_after`` ends this call after that many epochs of the run have completed, leaving the
    schedule sized for ``train_cfg.epochs``: it simulates an interruption (tests, time-boxed jobs).
    Without validation clips, training accuracy stands in for model selection and early stopping.
    """
    if model_cfg.num_classes != len(data.labels):
        raise ConfigError(f"model has {model_cfg.num_classes} classes, data has {len(data.labels)} labels")
    if len(data.train) == 0:
        raise DataError("no training clips")
    if len(data.val) == 0:
        warnings.warn("no validation clips: selecting and early-stopping on training accuracy", stacklevel=2)
    out = Path(train_cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(train_cfg.device)

    _seed_everything(train_cfg.seed)
    model = build_model(model_cfg)
    init_for_training(model)
    train_ds = KeypointDataset(
        data.train, Augmenter(train_cfg.augment), seed=train_cfg.seed, window=model_cfg.window
    )
    val_ds = KeypointDataset(data.val, window=model_cfg.window)
    if train_cfg.fit_normalization and resume is None:
        fit_normalization(model, KeypointDataset(data.train, window=model_cfg.window))
    model.to(device)
    optimizer = torch.optim.AdamW(param_groups(model, train_cfg.weight_decay), lr=train_cfg.lr)
    train_loader = make_loader(train_ds, train_cfg.batch_size, True, train_cfg.seed, train_cfg.workers)
    train_sampler = train_loader.sampler
    assert isinstance(train_sampler, EpochPermutationSampler)  # make_loader(shuffle=True) gives one
    val_loader = make_loader(val_ds, train_cfg.batch_size, False, workers=train_cfg.workers)
    scheduler = build_scheduler(optimizer, train_cfg, train_cfg.epochs * len(train_loader))
    scaler = torch.amp.GradScaler("cuda", enabled=train_cfg.amp and device.type == "cuda")

    start_epoch, global_step, best_acc, best_epoch, history = 0, 0, -math.inf, 0, []
    if resume is not None:
        ckpt = load_training_checkpoint(resume, map_location=device)
        if ckpt["config"] != model_cfg.to_dict() or list(ckpt["labels"]) != list(data.labels):
            raise CheckpointError(f"{resume}: model config or labels differ from this run's; cannot resume")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, global_step = ckpt["epoch"], ckpt["global_step"]
        best_acc, best_epoch = ckpt["best_val_acc"], ckpt.get("best_epoch", 0)
        history = list(ckpt["metrics"])
        restore_rng_state(ckpt["rng_state"])
        console.print(f"resumed from {resume} after epoch {start_epoch}")

    stopped_early = False
    end_epoch = train_cfg.epochs if stop_after is None else min(train_cfg.epochs, stop_after)
    for epoch in range(start_epoch, end_epoch):
        if train_cfg.patience and epoch - best_epoch >= train_cfg.patience and history:
            stopped_early = True
            break
        torch.manual_seed(_epoch_seed(train_cfg.seed, epoch))  # dropout et al.
        train_ds.set_epoch(epoch)
        train_sampler.set_epoch(epoch)
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc, steps = train_epoch(
            model, train_loader, train_cfg, optimizer, scheduler, scaler, device, epoch, progress
        )
        global_step += steps
        val_loss, val_acc = _validate(model, val_loader, train_cfg, device)
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        monitored = val_acc if len(data.val) else train_acc
        common: dict[str, Any] = {
            "model": model,
            "model_config": model_cfg,
            "labels": data.labels,
            "train_config": train_cfg.to_dict(),
            "epoch": epoch + 1,
            "global_step": global_step,
            "optimizer": optimizer,
            "scheduler": scheduler,
            "scaler": scaler,
            "metrics": history,
        }
        if monitored > best_acc:
            best_acc, best_epoch = monitored, epoch + 1
            save_checkpoint(out / "best.pt", best_val_acc=best_acc, best_epoch=best_epoch, **common)
        save_checkpoint(out / "last.pt", best_val_acc=best_acc, best_epoch=best_epoch, **common)
        write_metrics_csv(out / "metrics.csv", history)
        plot_curves(out / "curves.png", history)
        if progress:
            console.print(
                f"epoch {epoch + 1:>3}/{train_cfg.epochs}  loss {train_loss:.4f}  acc {train_acc:.3f}  "
                f"val_loss {val_loss:.4f}  val_acc {val_acc:.3f}  lr {lr:.2e}  {row['seconds']:.1f}s"
            )
    return TrainResult(out, float(best_acc), best_epoch, len(history), stopped_early, history)


def build_parser() -> argparse.ArgumentParser:
    """The ``slr-train`` command line."""
    parser = argparse.ArgumentParser(
        prog="slr-train",
        description="Train an SLR_SLOVO keypoint transformer on slr-extract outputs.",
        epilog="example: slr-train --data keypoints/ --preset edge --epochs 80 --out runs/edge\n\n"
        "exit codes: 0 trained, 1 unexpected error, 2 bad data, config, option or checkpoint "
        "(one line on stderr), 130 interrupted (last.pt is kept: --resume continues)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="directory of <id>.npz keypoint files (with annotations.csv), or a CSV/TSV list with "
        "columns path,label[,train]",
    )
    parser.add_argument(
        "--annotations", type=Path, help="Slovo annotations.csv (default: DATA/annotations.csv)"
    )
    parser.add_argument("--labels", type=Path, help="class list (JSON or CSV); default: from the annotations")
    parser.add_argument(
        "--config", type=Path, help="TOML file of TrainConfig fields ([augment] and [model] tables)"
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model preset (default: edge)")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--batch-size", type=int, help="clips per batch")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int, help="random seed (data order, augmentation, init)")
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    parser.add_argument("--workers", type=int, help="DataLoader worker processes (default 0)")
    parser.add_argument(
        "--val-fraction", type=float, help="random validation share when data has no train=False rows"
    )
    parser.add_argument("--out", type=Path, help="output directory (checkpoints, metrics.csv, curves.png)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        type=str,
        metavar="CHECKPOINT",
        help="continue a run from CHECKPOINT (default OUT/last.pt) with its training config; flags "
        "such as --epochs override it (the LR schedule then continues into further cosine cycles)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")
    return parser


def _train_config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, Path | None]:
    resume = None
    if args.resume is not None:
        if args.resume:
            resume = Path(args.resume)
        elif args.out is not None:
            resume = args.out / "last.pt"
        else:
            raise TrainConfigError("--resume without a path needs --out")
        base = TrainConfig.from_dict(load_training_checkpoint(resume)["train_config"])
    elif args.config is not None:
        base = TrainConfig.from_toml(args.config)
    else:
        base = TrainConfig()
    cfg = base.replace(
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        val_fraction=args.val_fraction,
        out=str(args.out) if args.out is not None else None,
    )
    return cfg, resume


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``slr-train``."""
    args = build_parser().parse_args(argv)
    if args.data is None:
        build_parser().error("--data is required")
    try:
        cfg, resume = _train_config_from_args(args)
        data = load_train_data(args.data, args.annotations, args.labels, cfg.val_fraction, cfg.seed)
        model_cfg = model_config_for(cfg, len(data.labels))
        console.print(
            f"{len(data.train)} training / {len(data.val)} validation clips, {len(data.labels)} classes, "
            f"preset {cfg.preset} (d_model {model_cfg.d_model}, "
            f"{model_cfg.num_layers} layers), device {resolve_device(cfg.device)}"
        )
        result = train(cfg, model_cfg, data, resume=resume, progress=not args.no_progress)
    except (DataError, ConfigError, TrainConfigError, CheckpointError) as exc:
        console.print(f"slr-train: error: {exc}", markup=False, highlight=False)
        return 2
    console.print(
        f"best validation accuracy {result.best_val_acc:.4f} at epoch {result.best_epoch} "
        f"({result.epochs_completed} epochs{', stopped early' if result.stopped_early else ''}); "
        f"checkpoints in {result.out_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
