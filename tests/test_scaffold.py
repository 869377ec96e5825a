"""The commands share one scaffold: --version, exit codes, Ctrl-C, closed pipes, missing extras."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge import __version__
from edge.commands import scaffold

COMMANDS = (
    "slr-edge",
    "slr-listen",
    "slr-predict",
    "slr-extract",
    "slr-train",
    "slr-eval",
    "slr-export",
    "slr-web",
    "slr-speak",
    "slr-model",
)
TRAIN_COMMANDS = {"slr-train": "slr_train", "slr-eval": "slr_eval", "slr-export": "slr_export"}
#: Makes the training extra look uninstalled, as on an edge device.
BLOCK_TRAIN_EXTRA = """
import sys
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "onnx", "onnxscript", "sklearn", "matplotlib"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def script(name: str) -> str:
    """The installed console script (what a user runs), beside this interpreter."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{path} is not installed; rerun bash scripts/bootstrap.sh")
    return str(path)


def run_closed_stdout(*cmd: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with stdout a pipe whose reader has already gone (``cmd | head`` after head exits)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(cmd, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_answers_version(name: str) -> None:
    out = subprocess.run([script(name), "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"slovo-edge {__version__}"
    closed = run_closed_stdout(script(name), "--version")
    assert (closed.returncode, closed.stderr) == (0, "")


@pytest.mark.parametrize("name", TRAIN_COMMANDS)
def test_missing_training_extra_is_one_line(name: str, tmp_path: Path) -> None:
    code = (
        BLOCK_TRAIN_EXTRA
        + "from edge.commands import scaffold\n"
        + f"sys.argv = [{name!r}, *sys.argv[1:]]\n"
        + f"sys.exit(scaffold.{TRAIN_COMMANDS[name]}())\n"
    )
    args = [str(tmp_path / "model.pt"), "--data", str(tmp_path), "-o", str(tmp_path / "m.onnx")]
    if name == "slr-train":
        args = ["--data", str(tmp_path)]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == scaffold.EXIT_USAGE
    assert out.stderr.startswith(f"{name}: error: this command needs the 'train' extra")
    assert out.stderr.strip().endswith("pip install 'slovo-edge[train]'")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    version = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True, text=True)
    assert (version.returncode, version.stdout.strip()) == (0, f"slovo-edge {__version__}")


def test_scaffold_imports_without_torch() -> None:
    code = BLOCK_TRAIN_EXTRA + "import edge.commands.scaffold, edge.commands.edge_cli\nprint('ok')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_reader_going_away_ends_quietly(tiny_onnx_path: Path) -> None:
    """``slr-edge check-model M | head -1``: exit 0, no BrokenPipeError, nothing on stderr."""
    for args in ([], ["--json"]):
        out = run_closed_stdout(script("slr-edge"), "check-model", str(tiny_onnx_path), *args)
        assert (out.returncode, out.stderr) == (0, "")


def test_run_maps_outcomes_to_documented_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(_argv: list[str] | None) -> int:
        raise KeyboardInterrupt

    def broken(_argv: list[str] | None) -> int:
        raise RuntimeError("disk on fire\nsecond line")

    def missing_own_module(_argv: list[str] | None) -> int:
        raise ModuleNotFoundError("No module named 'edge.nope'", name="edge.nope")

    assert scaffold.run("slr-x", lambda argv: 0, []) == scaffold.EXIT_OK
    assert scaffold.run("slr-x", interrupted, []) == scaffold.EXIT_INTERRUPTED
    assert capsys.readouterr().err == ""
    assert scaffold.run("slr-x", broken, []) == scaffold.EXIT_FAILURE
    assert capsys.readouterr().err == "slr-x: unexpected error: RuntimeError: disk on fire\n"
    # A missing module of this project is a bug (exit 1), not a missing extra.
    assert scaffold.run("slr-x", missing_own_module, []) == scaffold.EXIT_FAILURE
    assert "unexpected error: ModuleNotFoundError" in capsys.readouterr().err
