"""``slr-eval``: metric figures (hand-checked and against scikit-learn), outputs, torch and ONNX paths."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support, top_k_accuracy_score

from model_src.checkpoint import save_checkpoint
from model_src.config import preset
from model_src.data import discover_records, load_clips
from model_src.evaluate import EvalError, compute_metrics, load_predictor, main, predict_clips
from model_src.model import build_model
from model_src.synthetic import make_synthetic_dataset
from model_src.train_config import TrainConfig

LABELS = ["a", "b", "c", "d", "e", "f"]
Y_TRUE = np.array([0, 0, 1, 1, 2, 3])
PREDICTED = np.array([0, 1, 1, 1, 0, 3])


def _hand_made_logits() -> np.ndarray:
    """Argmax = PREDICTED; the true class is 2nd everywhere except sample 4, where it is last."""
    logits = np.tile(np.arange(6, dtype=np.float64) * 0.01, (6, 1))
    logits[np.arange(6), PREDICTED] = 10.0
    for i, (t, p) in enumerate(zip(Y_TRUE, PREDICTED, strict=True)):
        if t != p:
            logits[i, t] = 5.0
    logits[4, 2] = -10.0
    return logits


def test_compute_metrics_hand_checked_case() -> None:
    report = compute_metrics(Y_TRUE, _hand_made_logits(), LABELS)
    assert report.num_samples == 6 and report.num_classes == 6
    assert report.top1 == pytest.approx(4 / 6)
    assert report.top5 == pytest.approx(5 / 6)  # only sample 4 has its class ranked 6th
    by_label = {c.label: c for c in report.per_class}
    assert (by_label["a"].precision, by_label["a"].recall, by_label["a"].f1) == pytest.approx((0.5, 0.5, 0.5))
    assert (by_label["b"].precision, by_label["b"].recall, by_label["b"].f1) == pytest.approx((2 / 3, 1, 0.8))
    assert (by_label["c"].precision, by_label["c"].recall, by_label["c"].f1) == (0, 0, 0)
    assert (by_label["d"].precision, by_label["d"].recall, by_label["d"].f1) == (1, 1, 1)
    assert [c.support for c in report.per_class] == [2, 2, 1, 1, 0, 0]
    # Macro averages run over all 6 model classes, including the two never seen nor predicted.
    assert report.macro_precision == pytest.approx((0.5 + 2 / 3 + 1) / 6)
    assert report.macro_recall == pytest.approx(2.5 / 6)
    assert report.macro_f1 == pytest.approx(2.3 / 6)
    assert report.weighted_precision == pytest.approx((1 + 4 / 3 + 1) / 6)
    assert report.weighted_recall == pytest.approx(4 / 6)
    assert report.weighted_f1 == pytest.approx(3.6 / 6)
    assert report.confusions == [("a", "b", 1), ("c", "a", 1)]


def test_compute_metrics_equals_sklearn_and_ignores_softmax() -> None:
    rng = np.random.default_rng(0)
    labels = [f"c{i}" for i in range(9)]
    y = rng.integers(0, 8, 200)  # class 8 never occurs
    logits = rng.normal(size=(200, 9)) + 2.0 * np.eye(9)[y]
    report = compute_metrics(y, logits, labels)
    pred = logits.argmax(1)
    ids = np.arange(9)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, labels=ids, average=average, zero_division=0)
        assert getattr(report, f"{average}_precision") == pytest.approx(p)
        assert getattr(report, f"{average}_recall") == pytest.approx(r)
        assert getattr(report, f"{average}_f1") == pytest.approx(f)
    assert report.top1 == pytest.approx(np.mean(pred == y))
    assert report.top5 == pytest.approx(top_k_accuracy_score(y, logits, k=5, labels=ids))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert compute_metrics(y, probs, labels).summary() == pytest.approx(report.summary())
    assert sum(count for _, _, count in report.confusions) == int((pred != y).sum())
    counts = [count for _, _, count in report.confusions]
    assert counts == sorted(counts, reverse=True)


def test_compute_metrics_rejects_bad_shapes() -> None:
    with pytest.raises(EvalError, match="scores must be"):
        compute_metrics([0, 1], np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(EvalError, match="class indices"):
        compute_metrics([0, 5], np.zeros((2, 2)), ["a", "b"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic dataset and a native checkpoint of an untrained small model over its classes."""
    root = tmp_path_factory.mktemp("eval")
    ds = make_synthetic_dataset(root / "data", num_classes=4, clips_per_class=3, val_fraction=0.34, seed=7)
    torch.manual_seed(0)
    cfg = preset("edge", d_model=16, num_layers=1, num_heads=4, embedding_heads=2, num_classes=4)
    ckpt = save_checkpoint(
        root / "run" / "last.pt",
        model=build_model(cfg),
        model_config=cfg,
        labels=ds.labels,
        train_config=TrainConfig(val_fraction=0.0).to_dict(),
        epoch=1,
        global_step=1,
    )
    return ds.root, ckpt


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_slr_eval_torch_checkpoint_writes_reports(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, ckpt = tiny_run
    assert (
        main([str(ckpt), "--data", str(data), "--split", "all", "--out", str(tmp_path), "--no-progress"]) == 0
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))

    predictor = load_predictor(ckpt)
    clips = load_clips(discover_records(data), predictor.labels)
    expected = compute_metrics(
        clips.targets, predict_clips(predictor, clips, progress=False), predictor.labels
    )
    assert metrics["num_samples"] == 12
    for key, value in expected.summary().items():
        assert metrics[key] == pytest.approx(value)
    per_class = _read_csv(tmp_path / "per_class.csv")
    assert [row["label"] for row in per_class] == predictor.labels
    assert [int(row["support"]) for row in per_class] == [3, 3, 3, 3]
    confusions = _read_csv(tmp_path / "confusions.csv")
    assert [(r["true"], r["predicted"], int(r["count"])) for r in confusions] == [
        tuple(c) for c in expected.confusions
    ]

    # The default split is the annotations' train=False rows: 1 per class.
    assert main([str(ckpt), "--data", str(data), "--out", str(tmp_path / "val"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "val" / "metrics.json").read_text())["num_samples"] == 4


def test_slr_eval_onnx_matches_checkpoint(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    """Export the checkpoint with slr-export's exporter; slr-eval on the .onnx gives the same figures."""
    exporter = pytest.importorskip("export.exporter")
    data, ckpt = tiny_run
    onnx_path = tmp_path / "model.onnx"
    exporter.export_checkpoint(ckpt, onnx_path, latency_runs=0)
    onnx_predictor = load_predictor(onnx_path)
    torch_predictor = load_predictor(ckpt)
    assert onnx_predictor.labels == torch_predictor.labels
    clips = load_clips(discover_records(data), torch_predictor.labels)
    np.testing.assert_allclose(
        predict_clips(onnx_predictor, clips, progress=False),
        predict_clips(torch_predictor, clips, progress=False),
        atol=1e-4,
    )
    for model, out in ((onnx_path, tmp_path / "onnx"), (ckpt, tmp_path / "torch")):
        assert (
            main([str(model), "--data", str(data), "--split", "all", "--out", str(out), "--no-progress"]) == 0
        )
    onnx_metrics = json.loads((tmp_path / "onnx" / "metrics.json").read_text())
    torch_metrics = json.loads((tmp_path / "torch" / "metrics.json").read_text())
    for key in ("top1", "top5", "macro_f1", "weighted_f1", "num_samples"):
        assert onnx_metrics[key] == pytest.approx(torch_metrics[key])


def test_slr_eval_refuses_unknown_model_file(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = tiny_run
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": torch.zeros(3)}, bogus)
    assert main([str(bogus), "--data", str(data), "--no-progress"]) == 2


def test_slr_eval_published_state_dict_needs_and_uses_labels(
    tiny_checkpoint_path: Path, tmp_path: Path
) -> None:
    """The reference SLR_SLOVO-format state_dict (10 classes) evaluates with a labels file."""
    ds = make_synthetic_dataset(tmp_path / "data", num_classes=2, clips_per_class=2, seed=5)
    labels = [*ds.labels, *(f"other_{i}" for i in range(8))]
    labels_path = tmp_path / "labels.json"
    labels_path.write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
    args = [str(tiny_checkpoint_path), "--data", str(ds.root), "--split", "all", "--no-progress"]
    assert main(args) == 2  # no class names without --labels
    assert main([*args, "--labels", str(labels_path), "--out", str(tmp_path / "out")]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_samples"] == 4 and metrics["num_classes"] == 10


def test_slr_eval_refuses_garbage_file(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = tiny_run
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert main([str(garbage), "--data", str(data), "--no-progress"]) == 2
