"""Shared fixtures. Tests that need ``../shared`` fail loudly when it is missing."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """What the code caches (passed model probes, fetched models) goes to this run's own folder.

    Set in the environment, so the commands the tests start inherit it: a test never depends on
    what an earlier run or the developer left in ``~/.cache``, and leaves nothing there.
    """
    folder = tempfile.mkdtemp(prefix="slovo-test-cache-")
    os.environ["XDG_CACHE_HOME"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


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


#: Class names of ``tiny_onnx_path`` (Cyrillic on purpose: labels must survive as UTF-8 JSON).
TINY_LABELS = tuple(f"класс_{i}" for i in range(10))


@pytest.fixture(scope="session")
def tiny_labels_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSON list of :data:`TINY_LABELS`, for exporting ``tiny_checkpoint.pt``."""
    import json

    path = tmp_path_factory.mktemp("tiny_labels") / "labels.json"
    path.write_text(json.dumps(list(TINY_LABELS), ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_onnx_path(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_path: Path, tiny_labels_file: Path
) -> Path:
    """``tiny_checkpoint.pt`` exported by ``slr-export`` (fp32, verified, labels :data:`TINY_LABELS`)."""
    pytest.importorskip("torch")
    from export.exporter import export_checkpoint

    out = tmp_path_factory.mktemp("tiny_onnx") / "tiny.onnx"
    export_checkpoint(tiny_checkpoint_path, out, labels=tiny_labels_file, latency_runs=0)
    return out


@pytest.fixture
def silent_peer() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def predict_json(model: Path, video: Path) -> dict[str, object]:
    """``slr-predict --json --top-k 5`` on ``video`` with ``model``, run as a user would."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [
            *(sys.executable, "-m", "edge.commands.predict", str(video)),
            *("--model", str(model), "--json", "--top-k", "5"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.fixture(scope="session")
def sample_predict_json(tiny_onnx_path: Path, sample_video: Path) -> dict[str, object]:
    """``slr-predict --json`` on the sample clip with the tiny export: what a segment must equal."""
    return predict_json(tiny_onnx_path, sample_video)


def assert_same_top_k(
    got: list[dict[str, object]], expected: list[dict[str, object]], tol: float = 1e-6
) -> None:
    """Labels and indices equal, probabilities within ``tol``."""
    assert [(e["label"], e["index"]) for e in got] == [(e["label"], e["index"]) for e in expected]
    for a, b in zip(got, expected, strict=True):
        assert abs(float(a["prob"]) - float(b["prob"])) <= tol, (a, b)  # type: ignore[arg-type]
