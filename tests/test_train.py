"""``slr-train``: recipe pieces, data handling, checkpoints, exact resume, CLI, and that it learns."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model_src.checkpoint import (
    FORMAT,
    CheckpointError,
    is_training_checkpoint,
    load_model_from_checkpoint,
    load_training_checkpoint,
)
from model_src.config import preset
from model_src.data import load_train_data, split_records
from model_src.losses import focal_loss, smooth_targets, total_loss
from model_src.schedule import WarmupCosineCycles
from model_src.synthetic import make_synthetic_dataset
from model_src.train import model_config_for, train
from model_src.train_config import AugmentConfig, TrainConfig, TrainConfigError

#: A model small enough that several epochs take seconds (the recipe and plumbing are what is tested).
SMALL_MODEL = {"d_model": 16, "num_layers": 2, "num_heads": 4, "embedding_heads": 2, "dropout": 0.1}


@pytest.fixture(scope="module")
def small_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("small"), num_classes=3, clips_per_class=4, val_fraction=0.25, seed=3
    ).root


# --- recipe pieces ----------------------------------------------------------------------------


def test_focal_loss_reduces_to_label_smoothed_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(16, 7), torch.randint(0, 7, (16,))
    targets = smooth_targets(labels, 7, 0.1)
    expected = F.cross_entropy(logits, labels, label_smoothing=0.1)
    assert focal_loss(logits, targets, gamma=0.0).item() == pytest.approx(expected.item(), rel=1e-5)
    # Focusing down-weights confident predictions: never above cross-entropy.
    assert focal_loss(logits, targets, gamma=2.0) < expected
    aux = [torch.randn(16, 7), torch.randn(16, 7)]
    combined = total_loss(logits, aux, targets, 0.0, 0.3)
    parts = expected + 0.3 * sum(F.cross_entropy(a, labels, label_smoothing=0.1) for a in aux)
    assert combined.item() == pytest.approx(parts.item(), rel=1e-5)


def test_schedule_warms_up_then_decaying_cosine_cycles() -> None:
    fn = WarmupCosineCycles(warmup_steps=10, cycle_steps=20, cycle_decay=0.5, min_ratio=0.0, warmup_start=0.0)
    assert fn(0) == 0.0 and fn(5) == pytest.approx(0.5) and fn(10) == pytest.approx(1.0)
    assert fn(20) == pytest.approx(0.5)  # half-way down the first cosine
    assert fn(30) == pytest.approx(0.5)  # second cycle restarts at half the peak
    assert fn(50) == pytest.approx(0.25)
    assert all(fn(s) >= fn(s + 1) for s in range(10, 29))


def test_train_config_toml_and_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text(
        'preset = "edge"\nepochs = 3\nlr = 0.002\n[model]\nd_model = 32\n[augment]\nnoise_prob = 0.0\n'
        "time_warp_range = [0.9, 1.1]\n",
        encoding="utf-8",
    )
    cfg = TrainConfig.from_toml(path)
    assert (cfg.epochs, cfg.lr, cfg.model_overrides) == (3, 0.002, {"d_model": 32})
    assert cfg.augment.noise_prob == 0.0 and cfg.augment.time_warp_range == (0.9, 1.1)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(epochs=None, seed=5).seed == 5
    path.write_text("epoch = 3\n", encoding="utf-8")
    with pytest.raises(TrainConfigError, match="epoch"):
        TrainConfig.from_toml(path)
    with pytest.raises(TrainConfigError, match=r"augment\.noise_prob"):
        AugmentConfig(noise_prob=1.5)


# --- data -------------------------------------------------------------------------------------


def test_data_uses_annotations_split_and_warns_once_about_missing_clips(tmp_path: Path) -> None:
    ds = make_synthetic_dataset(tmp_path, num_classes=3, clips_per_class=4, val_fraction=0.25, seed=1)
    victims = sorted(tmp_path.glob("*.npz"))[:2]
    for path in victims:
        path.unlink()
    with pytest.warns(UserWarning, match="2 annotated clip") as record:
        data = load_train_data(tmp_path)
    assert len([w for w in record if "annotated clip" in str(w.message)]) == 1
    assert data.labels == ds.labels  # load_labels(annotations): sorted distinct text
    assert len(data.train) + len(data.val) == 10 and len(data.val) <= 3
    assert set(data.train.ids).isdisjoint(data.val.ids)
    raw = data.train.raws[0]
    assert raw.dtype == np.float32 and raw.shape[1:] == (543, 3) and np.isnan(raw).any()


def test_data_from_path_label_list_with_random_split(tmp_path: Path) -> None:
    ds = make_synthetic_dataset(tmp_path / "clips", num_classes=2, clips_per_class=5, seed=2)
    with ds.annotations.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows([f"clips/{r['attachment_id']}.npz", r["text"]] for r in rows)
    data = load_train_data(listing, val_fraction=0.3, seed=4)
    assert (len(data.train), len(data.val)) == (7, 3)
    again = load_train_data(listing, val_fraction=0.3, seed=4)
    assert again.val.ids == data.val.ids  # the seed fixes the split (slr-eval reproduces it)
    assert split_records([], 0.3, 0) == ([], [])


# --- training runs ----------------------------------------------------------------------------


def _small_cfg(out: Path, **changes) -> TrainConfig:
    """Every recipe part on (augmentation, MixUp, aux losses, dropout), tiny model."""
    base = TrainConfig(
        model_overrides=SMALL_MODEL,
        epochs=2,
        batch_size=4,
        lr=2e-3,
        warmup_steps=2,
        mixup_prob=1.0,
        augment=AugmentConfig(hand_swap_prob=0.5),
        out=str(out),
        device="cpu",
    )
    return base.replace(**changes)


@pytest.fixture(scope="module")
def straight_run(small_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two uninterrupted epochs of the small model with every recipe part on."""
    data = load_train_data(small_data_dir)
    cfg = _small_cfg(tmp_path_factory.mktemp("straight"))
    model_cfg = model_config_for(cfg, len(data.labels))
    return data, cfg, model_cfg, train(cfg, model_cfg, data, progress=False)


def test_resume_continues_exactly(straight_run, tmp_path: Path) -> None:
    data, _, model_cfg, straight = straight_run
    resumed_cfg = _small_cfg(tmp_path)
    first = train(resumed_cfg, model_cfg, data, stop_after=1, progress=False)  # "interrupted" after epoch 1
    assert first.epochs_completed == 1
    torch.manual_seed(12345)  # whatever happened in between must not matter
    np.random.seed(54321)
    resumed = train(resumed_cfg, model_cfg, data, resume=first.last_checkpoint, progress=False)

    assert resumed.epochs_completed == 2
    for epoch in (0, 1):  # epoch 1 restored from the checkpoint's history, epoch 2 recomputed
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert resumed.history[epoch][key] == pytest.approx(straight.history[epoch][key], abs=1e-6)
    a = load_training_checkpoint(straight.last_checkpoint)["model"]
    b = load_training_checkpoint(resumed.last_checkpoint)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


def test_run_writes_checkpoints_metrics_and_curves(straight_run) -> None:
    data, cfg, model_cfg, result = straight_run
    out = result.out_dir
    with (out / "metrics.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert set(rows[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    assert all(math.isfinite(float(r["train_loss"])) for r in rows)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.tmp"))  # atomic writes leave no temporaries

    ckpt = load_training_checkpoint(result.last_checkpoint)
    assert is_training_checkpoint(ckpt) and ckpt["format"] == FORMAT and ckpt["version"] == 1
    expected_keys = {"model", "optimizer", "scheduler", "scaler", "epoch", "global_step", "config"}
    expected_keys |= {"train_config", "labels", "best_val_acc", "rng_state", "metrics"}
    assert expected_keys <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 2 * math.ceil(len(data.train) / 4)
    assert ckpt["labels"] == data.labels and ckpt["config"] == model_cfg.to_dict()
    assert TrainConfig.from_dict(ckpt["train_config"]) == cfg
    best = load_training_checkpoint(result.best_checkpoint)
    assert best["best_val_acc"] == pytest.approx(result.best_val_acc)
    assert best["epoch"] == result.best_epoch

    model, loaded_cfg, labels = load_model_from_checkpoint(result.last_checkpoint)
    assert loaded_cfg == model_cfg and labels == data.labels and not model.training
    frames, idx = torch.zeros(1, 128, 92, 3), torch.full((1, 128), -1.0)
    frames[0, :10], idx[0, :10] = 0.5, torch.arange(10.0)
    assert model(frames, idx).shape == (1, 3)


def test_checkpoint_loader_refuses_other_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"layer.weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match=r"not a slovo-edge training checkpoint.*state_dict"):
        load_training_checkpoint(plain)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model_from_checkpoint(tmp_path / "missing.pt")


@pytest.mark.slow
def test_edge_preset_learns_synthetic_signs(tmp_path: Path) -> None:
    """The edge preset reaches >= 90 % validation accuracy on 10 synthetic classes (chance 10 %).

    The recipe is the default one (label smoothing, auxiliary losses, AdamW, warm-up + cosine)
    minus augmentation, MixUp and focusing, which pay off on real data but slow down the first
    ~100 optimiser steps this test can afford.
    """
    ds = make_synthetic_dataset(
        tmp_path / "data", num_classes=10, clips_per_class=8, val_fraction=0.25, seed=1
    )
    data = load_train_data(ds.root)
    cfg = TrainConfig(
        preset="edge",
        epochs=12,
        batch_size=8,
        lr=3e-3,
        warmup_steps=5,
        focal_gamma=0.0,
        mixup_prob=0.0,
        augment=AugmentConfig.none(),
        out=str(tmp_path / "run"),
        device="cpu",
    )
    model_cfg = model_config_for(cfg, len(data.labels))
    assert model_cfg == preset("edge", num_classes=10)
    result = train(cfg, model_cfg, data, progress=False)
    assert len(data.val) == 20
    assert result.best_val_acc >= 0.9, result.history


# --- command line -----------------------------------------------------------------------------


def _console_script(name: str) -> list[str]:
    found = shutil.which(
        name, path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    )
    return (
        [found] if found else [sys.executable, "-m", f"model_src.{'train' if name == 'slr-train' else name}"]
    )


def test_cli_help_and_tiny_run(small_data_dir: Path, tmp_path: Path) -> None:
    help_run = subprocess.run([*_console_script("slr-train"), "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0
    assert "--resume" in help_run.stdout and "--config" in help_run.stdout

    config = tmp_path / "tiny.toml"
    config.write_text(
        "warmup_steps = 1\n[model]\nd_model = 16\nnum_layers = 1\nnum_heads = 4\nembedding_heads = 2\n",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    cmd = [
        *_console_script("slr-train"),
        "--data",
        str(small_data_dir),
        "--config",
        str(config),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    ckpt = load_training_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["config"]["d_model"] == 16 and ckpt["train_config"]["epochs"] == 1
    assert (out / "best.pt").exists() and (out / "metrics.csv").exists() and (out / "curves.png").exists()

    bad = subprocess.run(
        [*_console_script("slr-train"), "--data", str(tmp_path / "nowhere")], capture_output=True
    )
    assert bad.returncode == 2
