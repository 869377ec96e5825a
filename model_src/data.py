"""Training and evaluation data: which clips, which labels, which split, and the torch datasets.

Clips are ``slr-extract`` outputs (``<id>.npz`` with raw ``[N, 543, 3]`` landmarks). They are
small, so they are read once and cached raw in memory; augmentation and
:func:`edge.contract.preprocess.preprocess` run per sample, so the model sees exactly the preprocessing it
is served with. All randomness is derived from ``(seed, epoch, sample)``, which makes an epoch
reproducible on its own, the property exact resumption relies on.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from edge.contract.annotations import AnnotationsError, read_table
from edge.contract.keypoint_file import KeypointFileError, load_keypoints
from edge.contract.layout import NUM_MODEL_ROWS
from edge.contract.preprocess import WINDOW, preprocess
from model_src.augment import Augmenter
from model_src.labels import load_labels

#: The Slovo annotation file's name inside a data directory.
ANNOTATIONS_NAME = "annotations.csv"


class DataError(ValueError):
    """Training or evaluation data that cannot be used as given."""


@dataclass(frozen=True)
class ClipRecord:
    """One labelled clip on disk. ``is_train`` is None when the source says nothing about splits."""

    path: Path
    label: str
    is_train: bool | None = None

    @property
    def clip_id(self) -> str:
        return self.path.stem


@dataclass
class ClipSet:
    """Clips held in memory: raw landmarks, class indices and ids (parallel lists)."""

    raws: list[np.ndarray]
    targets: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.raws)


@dataclass
class TrainData:
    """Everything training needs from the data: the class list and both splits, in memory."""

    labels: list[str]
    train: ClipSet
    val: ClipSet


def read_landmarks(path: Path) -> np.ndarray:
    """Raw ``float32 [N, 543, 3]`` landmarks of one ``slr-extract`` file (format owned by edge)."""
    try:
        return np.asarray(load_keypoints(path).landmarks, dtype=np.float32)
    except KeypointFileError as exc:
        raise DataError(str(exc)) from exc


def _read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a TAB- or comma-separated file with a header (Slovo uses TABs)."""
    try:
        return read_table(path)
    except AnnotationsError as exc:
        raise DataError(str(exc)) from None


def _parse_bool(value: str, where: str) -> bool:
    text = value.strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise DataError(f"{where}: expected True/False, got {value!r}")


def records_from_annotations(data_dir: Path, annotations: Path) -> list[ClipRecord]:
    """Clips named by a Slovo ``annotations.csv`` (``attachment_id``, ``text``, ``train``).

    Annotated clips without an ``.npz`` in ``data_dir`` (extraction failed or was partial) are
    skipped with one warning that counts them, not one per clip.
    """
    records, missing = [], 0
    for line, row in enumerate(_read_table(annotations), start=2):
        try:
            clip_id, label = row["attachment_id"], row["text"]
        except KeyError as exc:
            raise DataError(f"{annotations}: missing column {exc} (expected Slovo columns)") from None
        path = data_dir / f"{clip_id}.npz"
        if not path.exists():
            missing += 1
            continue
        split = row.get("train")
        is_train = None if split in (None, "") else _parse_bool(split, f"{annotations}:{line}")
        records.append(ClipRecord(path, label, is_train))
    if missing:
        warnings.warn(
            f"{missing} annotated clip(s) have no keypoint file in {data_dir}; skipped", stacklevel=2
        )
    return records


def records_from_list(list_path: Path) -> list[ClipRecord]:
    """Clips named by a CSV/TSV with columns ``path,label`` (optional ``train``).

    Relative paths are relative to the list file, so a list can travel with its clips.
    """
    records = []
    for line, row in enumerate(_read_table(list_path), start=2):
        if "path" not in row or "label" not in row:
            raise DataError(f"{list_path}: needs columns 'path' and 'label', got {sorted(row)}")
        path = Path(row["path"])
        if not path.is_absolute():
            path = list_path.parent / path
        split = row.get("train")
        is_train = None if split in (None, "") else _parse_bool(split, f"{list_path}:{line}")
        records.append(ClipRecord(path, row["label"], is_train))
    return records


def discover_records(data: Path, annotations: Path | None = None) -> list[ClipRecord]:
    """Records from ``data``: a clip list file, or a directory of ``.npz`` plus annotations.

    A directory without ``annotations`` uses its own ``annotations.csv``.
    """
    data = Path(data)
    if data.is_file():
        return records_from_list(data)
    if not data.is_dir():
        raise DataError(f"data path {data} does not exist")
    annotations = Path(annotations) if annotations else data / ANNOTATIONS_NAME
    if not annotations.exists():
        raise DataError(f"no annotations: pass --annotations or put {ANNOTATIONS_NAME} in {data}")
    return records_from_annotations(data, annotations)


def resolve_labels(
    records: Sequence[ClipRecord], labels_path: Path | None, annotations: Path | None
) -> list[str]:
    """The class list: a labels file if given, else ``load_labels(annotations)``, else sorted labels.

    The annotations order (sorted distinct ``text``) is the published SLR_SLOVO class order.
    """
    if labels_path is not None:
        return load_labels(labels_path)
    if annotations is not None and Path(annotations).exists():
        return load_labels(annotations)
    return sorted({r.label for r in records})


def split_records(
    records: Sequence[ClipRecord], val_fraction: float, seed: int
) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """Train/validation split: the records' own ``train`` flags where any says False.

    Otherwise a seeded random ``val_fraction`` of the clips (at least one when the fraction is
    positive) goes to validation, so the same seed reproduces the same split in evaluation.
    """
    if any(r.is_train is False for r in records):
        return [r for r in records if r.is_train is not False], [r for r in records if r.is_train is False]
    if val_fraction <= 0 or len(records) < 2:
        return list(records), []
    order = np.random.default_rng([seed, 0x5EED]).permutation(len(records))
    n_val = min(len(records) - 1, max(1, round(len(records) * val_fraction)))
    val = set(order[:n_val].tolist())
    return [r for i, r in enumerate(records) if i not in val], [r for i, r in enumerate(records) if i in val]


def load_clips(records: Sequence[ClipRecord], labels: Sequence[str], desc: str = "loading") -> ClipSet:
    """Read ``records`` into memory; clips whose label is not a known class are skipped with a warning."""
    index = {label: i for i, label in enumerate(labels)}
    raws, targets, ids, unknown = [], [], [], 0
    for record in tqdm(records, desc=desc, unit="clip", leave=False, disable=len(records) < 50):
        if record.label not in index:
            unknown += 1
            continue
        raws.append(read_landmarks(record.path))
        targets.append(index[record.label])
        ids.append(record.clip_id)
    if unknown:
        warnings.warn(f"{unknown} clip(s) have labels outside the class list; skipped", stacklevel=2)
    return ClipSet(raws, np.asarray(targets, dtype=np.int64), ids)


def load_train_data(
    data: Path,
    annotations: Path | None = None,
    labels_path: Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> TrainData:
    """Discover, label, split and load a training set (the ``slr-train`` data arguments)."""
    records = discover_records(data, annotations)
    if not records:
        raise DataError(f"no clips found in {data}")
    ann = (
        Path(annotations) if annotations else (Path(data) / ANNOTATIONS_NAME if Path(data).is_dir() else None)
    )
    labels = resolve_labels(records, labels_path, ann)
    train_records, val_records = split_records(records, val_fraction, seed)
    return TrainData(
        labels, load_clips(train_records, labels, "train clips"), load_clips(val_records, labels, "val clips")
    )


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample's augmentation in one epoch (independent of worker layout)."""
    return np.random.default_rng([seed, epoch, index])


class KeypointDataset(Dataset):
    """Raw clips → (augmented) → preprocessed ``(frames [W, 92, 3], idx [W], target)`` tensors.

    Without augmentation, preprocessed windows are cached: validation costs one pass of
    preprocessing per run instead of one per epoch.
    """

    def __init__(
        self, clips: ClipSet, augmenter: Augmenter | None = None, seed: int = 0, window: int = WINDOW
    ) -> None:
        self.clips = clips
        self.augmenter = augmenter if augmenter is not None and augmenter.cfg.enabled else None
        self.seed = seed
        self.window = window
        self.epoch = 0
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation randomness ``__getitem__`` uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        target = int(self.clips.targets[index])
        if self.augmenter is None:
            if index not in self._cache:
                frames, idx = preprocess(self.clips.raws[index], self.window)
                self._cache[index] = (torch.from_numpy(frames), torch.from_numpy(idx))
            frames_t, idx_t = self._cache[index]
            return frames_t, idx_t, target
        raw = self.augmenter(self.clips.raws[index], sample_rng(self.seed, self.epoch, index))
        frames, idx = preprocess(raw, self.window)
        return torch.from_numpy(frames), torch.from_numpy(idx), target


class EpochPermutationSampler(Sampler[int]):
    """Shuffled order that depends only on ``(seed, epoch)``, so a resumed epoch replays exactly."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng([self.seed, self.epoch, 0xD47A]).permutation(self.size).tolist())

    def __len__(self) -> int:
        return self.size


def make_loader(
    dataset: KeypointDataset, batch_size: int, shuffle: bool, seed: int = 0, workers: int = 0
) -> DataLoader:
    """A DataLoader over ``dataset``; shuffling via :class:`EpochPermutationSampler`."""
    sampler = EpochPermutationSampler(len(dataset), seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=False)


def landmark_statistics(dataset: KeypointDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per model row x-y mean and std ``[92, 2]`` over present (non-zero) values of the windows.

    Zero is the model's "missing" value (NaN after preprocessing), so it is excluded, matching how
    the published statistics buffers describe only detected landmarks. Rows never seen get
    mean 0, std 1 (identity normalisation).
    """
    total = np.zeros((NUM_MODEL_ROWS, 2))
    total_sq = np.zeros((NUM_MODEL_ROWS, 2))
    count = np.zeros((NUM_MODEL_ROWS, 2))
    for i in range(len(dataset)):
        frames, idx, _ = dataset[i]
        xy = frames.numpy()[idx.numpy() != -1][..., :2].astype(np.float64)
        present = xy != 0
        total += np.where(present, xy, 0).sum(axis=0)
        total_sq += np.where(present, xy * xy, 0).sum(axis=0)
        count += present.sum(axis=0)
    seen = count > 0
    mean = np.divide(total, count, out=np.zeros_like(total), where=seen)
    var = np.divide(total_sq, count, out=np.ones_like(total), where=seen) - np.where(seen, mean**2, 0)
    std = np.where(seen, np.sqrt(np.maximum(var, 0.0)), 1.0)
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)
