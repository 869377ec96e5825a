"""Shared fixtures. Tests that need ``../shared`` fail loudly when it is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"required shared test material is missing: {path} (CI lays ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED_DIR)


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return _require(shared_dir / "reference" / "slr_slovo")


@pytest.fixture(scope="session")
def tiny_vectors(reference_dir: Path) -> dict[str, np.ndarray]:
    with np.load(_require(reference_dir / "tiny_vectors.npz")) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def tiny_checkpoint_path(reference_dir: Path) -> Path:
    return _require(reference_dir / "tiny_checkpoint.pt")


@pytest.fixture(scope="session")
def sample_video(shared_dir: Path) -> Path:
    return _require(shared_dir / "samples" / "slovo_sample.mp4")


@pytest.fixture(scope="session")
def demo_gif(shared_dir: Path) -> Path:
    return _require(shared_dir / "samples" / "slovo_demo.gif")
