"""The README's main-job command: daemon + listener on a clip, ending cleanly at end of file."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def test_demo_runs_daemon_and_listener_to_the_end(sample_video: Path, tiny_onnx_path: Path) -> None:
    env = {**os.environ, "SLOVO_MODEL": str(tiny_onnx_path), "SLR_EDGE_ENDPOINT": _free_endpoint()}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "demo.sh"), str(sample_video)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "prediction #" in result.stdout, "the listener printed the daemon's predictions"
    assert "status" in result.stdout
    assert "класс_" in result.stdout, "Russian labels are rendered as text"
    assert "Traceback" not in result.stderr


def test_demo_with_a_missing_model_says_so(sample_video: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SLOVO_MODEL": str(tmp_path / "nope.onnx")}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "demo.sh"), str(sample_video)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr
