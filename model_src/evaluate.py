"""``slr-eval``: accuracy, precision/recall/F1 and confusions of a trained model on keypoint clips.

Works on what a user actually holds: a native training checkpoint (torch), an exported
``.onnx`` (onnxruntime; labels from its ``slr.labels`` metadata), or a published SLR_SLOVO
``state_dict`` with a labels file. Metrics come from scikit-learn through one pure function,
:func:`compute_metrics`, so the figures printed are the figures tested.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)
from tqdm.auto import tqdm

from model_src.labels import load_labels

console = Console()
#: Errors and warnings go to stderr, so ``slr-eval ... > report.txt`` keeps only the report.
err_console = Console(stderr=True)


class EvalError(ValueError):
    """A model or data set that cannot be evaluated as given."""


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class, with its number of true samples."""

    label: str
    support: int
    precision: float
    recall: float
    f1: float


@dataclass
class EvalReport:
    """All figures of one evaluation (what ``metrics.json`` holds, plus the per-class rows)."""

    num_samples: int
    num_classes: int
    top1: float
    top5: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    per_class: list[ClassMetrics] = field(default_factory=list)
    #: Most frequent off-diagonal ``(true label, predicted label, count)``, largest first.
    confusions: list[tuple[str, str, int]] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        """The scalar figures only."""
        return {k: v for k, v in asdict(self).items() if k not in ("per_class", "confusions")}


def compute_metrics(
    y_true: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str],
    top_k: int = 5,
    max_confusions: int = 50,
) -> EvalReport:
    """Metrics of scores ``[N, C]`` (logits or probabilities: only their ranking matters).

    Every class of ``labels`` counts, including classes absent from ``y_true`` (their precision
    is 0 if predicted, recall 0 by definition, see ``zero_division=0``), so macro averages are
    over the model's classes, as scikit-learn computes them with ``labels=`` all classes.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    num_classes = len(labels)
    if scores.ndim != 2 or scores.shape != (len(y_true), num_classes):
        raise EvalError(f"scores must be [N={len(y_true)}, C={num_classes}], got {scores.shape}")
    if len(y_true) == 0:
        raise EvalError("no samples to evaluate")
    if y_true.min() < 0 or y_true.max() >= num_classes:
        raise EvalError(f"true labels must be class indices in [0, {num_classes})")
    class_ids = np.arange(num_classes)
    y_pred = scores.argmax(axis=1)
    if top_k >= num_classes:
        top5 = 1.0
    elif num_classes == 2:  # k == 1 here; sklearn wants 1-D scores for two classes
        top5 = float(accuracy_score(y_true, y_pred))
    else:
        top5 = float(top_k_accuracy_score(y_true, scores, k=top_k, labels=class_ids))
    averages = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=class_ids, average=average, zero_division=0
        )
        averages[average] = (float(p), float(r), float(f))
    p, r, f, support = precision_recall_fscore_support(
        y_true, y_pred, labels=class_ids, average=None, zero_division=0
    )
    per_class = [
        ClassMetrics(labels[c], int(support[c]), float(p[c]), float(r[c]), float(f[c])) for c in class_ids
    ]
    matrix = confusion_matrix(y_true, y_pred, labels=class_ids)
    np.fill_diagonal(matrix, 0)
    true_idx, pred_idx = np.nonzero(matrix)
    pairs = sorted(zip(true_idx, pred_idx, strict=True), key=lambda tp: (-matrix[tp], tp[0], tp[1]))
    pairs = pairs[:max_confusions]
    return EvalReport(
        num_samples=len(y_true),
        num_classes=num_classes,
        top1=float(accuracy_score(y_true, y_pred)),
        top5=top5,
        macro_precision=averages["macro"][0],
        macro_recall=averages["macro"][1],
        macro_f1=averages["macro"][2],
        weighted_precision=averages["weighted"][0],
        weighted_recall=averages["weighted"][1],
        weighted_f1=averages["weighted"][2],
        per_class=per_class,
        confusions=[(labels[t], labels[q], int(matrix[t, q])) for t, q in pairs],
    )


def _csv_bytes(header: list[str], rows: Any) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def write_report(report: EvalReport, out_dir: Path, extra: dict[str, Any] | None = None) -> None:
    """``metrics.json``, ``per_class.csv`` and ``confusions.csv`` in ``out_dir``, all or none.

    Built in memory, then written through temporary files and renamed together
    (:func:`edge.util.files.write_files_atomically`): a full disk leaves the previous report whole
    instead of a complete-looking ``metrics.json`` beside a truncated ``per_class.csv``, and a
    symlinked output is refused, never written through.
    """
    from edge.util.files import write_files_atomically

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {**report.summary(), **(extra or {})}
    per_class = ([c.label, c.support, c.precision, c.recall, c.f1] for c in report.per_class)
    class_header = ["label", "support", "precision", "recall", "f1"]
    write_files_atomically(
        {
            out_dir / "metrics.json": (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode(),
            out_dir / "per_class.csv": _csv_bytes(class_header, per_class),
            out_dir / "confusions.csv": _csv_bytes(["true", "predicted", "count"], report.confusions),
        }
    )


class Predictor(Protocol):
    """Batch of preprocessed windows → logits; knows its class labels and window length."""

    labels: list[str]
    window: int
    #: Training config of a native checkpoint (to reproduce its validation split), else None.
    train_config: dict[str, Any] | None

    def __call__(self, frames: np.ndarray, frame_idx: np.ndarray) -> np.ndarray: ...


class TorchPredictor:
    """A torch :class:`~model_src.model.SLRTransformer` in eval mode."""

    def __init__(
        self,
        model: Any,
        labels: list[str],
        window: int,
        device: str = "cpu",
        train_config: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.labels, self.window, self.device = model, labels, window, device
        self.train_config = train_config

    def __call__(self, frames: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.model(
                torch.from_numpy(frames).to(self.device), torch.from_numpy(frame_idx).to(self.device)
            )
        return logits.float().cpu().numpy()


class OnnxPredictor:
    """An exported model, loaded and checked exactly as the edge daemon loads it
    (:func:`edge.recognition.inference.load_model`: labels and window from its metadata)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from edge.recognition.inference import ModelError, load_model

        try:
            self.model = load_model(path, threads=threads or os.cpu_count() or 1)
        except ModelError as exc:
            raise EvalError(str(exc)) from None
        self.labels = list(self.model.labels)
        self.window = self.model.window
        self.train_config: dict[str, Any] | None = None

    def __call__(self, frames: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        return self.model.predict_batch(frames, frame_idx)


def load_predictor(path: Path, labels_path: Path | None = None, device: str = "cpu") -> Predictor:
    """A predictor for a native checkpoint, an ``.onnx`` file, or a published state_dict (+ labels)."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"model file {path} does not exist")
    if path.suffix.lower() == ".onnx":
        return OnnxPredictor(path)
    from model_src.checkpoint import load_checkpoint

    loaded = load_checkpoint(path, map_location=device)
    if loaded.labels is not None:
        return TorchPredictor(loaded.model, loaded.labels, loaded.config.window, device, loaded.train_config)
    if labels_path is None:
        raise EvalError("a published state_dict carries no class names: pass --labels")
    labels = load_labels(labels_path)
    if len(labels) != loaded.config.num_classes:
        raise EvalError(
            f"{labels_path} has {len(labels)} labels but the model's classifier has "
            f"{loaded.config.num_classes} outputs"
        )
    return TorchPredictor(loaded.model, labels, loaded.config.window, device)


def predict_clips(
    predictor: Predictor, clips: Any, batch_size: int = 32, progress: bool = True
) -> np.ndarray:
    """Logits ``[N, C]`` of a :class:`~model_src.data.ClipSet` (preprocessed like in training)."""
    from model_src.data import KeypointDataset

    dataset = KeypointDataset(clips, window=predictor.window)
    outputs = []
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc="evaluating", unit="batch", leave=False, disable=not progress):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        frames = np.stack([item[0].numpy() for item in items])
        idx = np.stack([item[1].numpy() for item in items])
        outputs.append(predictor(frames, idx))
    return np.concatenate(outputs) if outputs else np.zeros((0, len(predictor.labels)), np.float32)


def print_report(report: EvalReport, top_confusions: int = 10) -> None:
    """Rich tables of the summary and the most confused pairs."""
    table = Table(title=f"{report.num_samples} clips, {report.num_classes} classes")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in report.summary().items():
        if key not in ("num_samples", "num_classes"):
            table.add_row(key, f"{value:.4f}")
    console.print(table)
    if report.confusions:
        conf = Table(title="most confused (true → predicted)")
        for name in ("true", "predicted", "count"):
            conf.add_column(name)
        for true, pred, count in report.confusions[:top_confusions]:
            conf.add_row(true, pred, str(count))
        console.print(conf)


def build_parser() -> argparse.ArgumentParser:
    """The ``slr-eval`` command line."""
    parser = argparse.ArgumentParser(
        prog="slr-eval",
        description="Evaluate a trained sign classifier (training checkpoint, .onnx, or published "
        "state_dict) on slr-extract keypoint clips.",
        epilog="exit codes: 0 report printed, 1 --out could not be written (or an unexpected error), "
        "2 bad model, data or option (one line on stderr), 130 interrupted",
    )
    parser.add_argument("model", type=Path, help="last.pt/best.pt, model.onnx, or a published state_dict")
    parser.add_argument(
        "--data", type=Path, required=True, help="directory of <id>.npz, or a path,label list"
    )
    parser.add_argument(
        "--annotations", type=Path, help="Slovo annotations.csv (default: DATA/annotations.csv)"
    )
    parser.add_argument("--labels", type=Path, help="class list for a published state_dict (JSON or CSV)")
    parser.add_argument(
        "--split",
        choices=("val", "train", "all"),
        default="val",
        help="which clips to evaluate (default val)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        help="random validation share if the data has no train=False rows "
        "(default: the checkpoint's, else 0.1)",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of that random split (default: the checkpoint's, else 0)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="windows per batch (default 32)")
    parser.add_argument("--device", default="cpu", help="torch device for checkpoints (default cpu)")
    parser.add_argument("--out", type=Path, help="write metrics.json, per_class.csv, confusions.csv here")
    parser.add_argument("--top-confusions", type=int, default=50, help="confused pairs kept (default 50)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``slr-eval``."""
    from model_src.checkpoint import CheckpointError
    from model_src.data import DataError, discover_records, load_clips, split_records
    from model_src.labels import LabelError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.top_confusions < 0:
        parser.error(f"--top-confusions must be >= 0, got {args.top_confusions}")
    if args.val_fraction is not None and not 0.0 < args.val_fraction < 1.0:
        parser.error(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    try:
        if args.out is not None:
            _check_out_dir(args.out)  # before minutes of evaluation, not after
        predictor = load_predictor(args.model, args.labels, args.device)
        tc = predictor.train_config or {}
        val_fraction = args.val_fraction if args.val_fraction is not None else tc.get("val_fraction", 0.1)
        seed = args.seed if args.seed is not None else tc.get("seed", 0)
        records = discover_records(args.data, args.annotations)
        train_records, val_records = split_records(records, val_fraction, seed)
        chosen = {"train": train_records, "val": val_records, "all": records}[args.split]
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            clips = load_clips(chosen, predictor.labels, f"{args.split} clips")
        if len(clips) == 0:
            raise EvalError(f"no clips in split {args.split!r} with labels known to the model")
        logits = predict_clips(predictor, clips, args.batch_size, not args.no_progress)
        report = compute_metrics(clips.targets, logits, predictor.labels, max_confusions=args.top_confusions)
    except (EvalError, DataError, CheckpointError, LabelError) as exc:
        err_console.print(f"slr-eval: error: {exc}", markup=False, highlight=False)
        return 2
    print_report(report)
    if args.out is not None:
        try:
            write_report(report, args.out, {"model": str(args.model), "split": args.split})
        except OSError as exc:
            err_console.print(
                f"slr-eval: error: cannot write to {args.out}: {exc.strerror or exc}", markup=False
            )
            return 1
        console.print(f"wrote metrics.json, per_class.csv, confusions.csv to {args.out}")
    return 0


def _check_out_dir(out_dir: Path) -> None:
    from edge.util.files import output_dir_problem

    problem = output_dir_problem(out_dir, "--out directory")
    if problem:
        raise EvalError(problem)


if __name__ == "__main__":
    sys.exit(main())
