"""``slr-export`` as users run it: a subprocess, one clear line on bad input, nothing half-written.

The error cases are started together (each pays the torch import) and checked one by one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

REPO_ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "export.cli"]


@dataclass
class Case:
    args: list[str]
    output: Path
    returncode: int = -1
    stdout: str = ""
    stderr: str = ""


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [*CLI, *args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _labels(path: Path, count: int) -> Path:
    path.write_text(json.dumps([f"знак_{i}" for i in range(count)], ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_path: Path) -> dict[str, Case]:
    """Run every error case concurrently; return their results by name."""
    tmp = tmp_path_factory.mktemp("cli_errors")
    out_dir = tmp / "out"
    out_dir.mkdir()
    random_bytes = tmp / "random.pt"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    text_file = tmp / "notes.pt"
    text_file.write_text("this is not a checkpoint\n", encoding="utf-8")
    foreign = tmp / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}, foreign)
    labels10, labels12 = _labels(tmp / "labels10.json", 10), _labels(tmp / "labels12.json", 12)
    a_file = tmp / "plain_file"
    a_file.write_text("x", encoding="utf-8")
    ckpt = str(tiny_checkpoint_path)

    def case(name: str, *args: str) -> Case:
        return Case(list(args), out_dir / f"{name}.onnx")

    cases = {
        "random_bytes": case("random_bytes", str(random_bytes), "--labels", str(labels10)),
        "text_file": case("text_file", str(text_file), "--labels", str(labels10)),
        "foreign_state_dict": case("foreign_state_dict", str(foreign), "--labels", str(labels10)),
        "forced_wrong_format": case(
            "forced_wrong_format", ckpt, "--format", "native", "--labels", str(labels10)
        ),
        "label_count_mismatch": case("label_count_mismatch", ckpt, "--labels", str(labels12)),
        "published_without_labels": case("published_without_labels", ckpt),
        "missing_checkpoint": case("missing_checkpoint", str(tmp / "nope.pt"), "--labels", str(labels10)),
        "missing_labels_file": case("missing_labels_file", ckpt, "--labels", str(tmp / "nope.json")),
    }
    cases["missing_output_dir"] = Case([ckpt, "--labels", str(labels10)], tmp / "no_such_dir" / "m.onnx")
    cases["output_parent_is_a_file"] = Case([ckpt, "--labels", str(labels10)], a_file / "m.onnx")
    if os.geteuid() != 0:  # root ignores directory permissions
        locked = tmp / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        cases["no_permission"] = Case([ckpt, "--labels", str(labels10)], locked / "m.onnx")

    procs = {name: _start([*c.args, "-o", str(c.output), "--no-latency"]) for name, c in cases.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        cases[name].returncode, cases[name].stdout, cases[name].stderr = proc.returncode, out, err
    cases["__out_dir__"] = Case([], out_dir)
    return cases


ERROR_CASES = {
    "random_bytes": "not a readable PyTorch checkpoint",
    "text_file": "not a readable PyTorch checkpoint",
    "foreign_state_dict": "neither a slovo-edge training checkpoint nor a published SLR_SLOVO",
    "forced_wrong_format": "not a valid native checkpoint",
    "label_count_mismatch": "12 labels but the model's classifier has 10 outputs",
    "published_without_labels": "pass --labels",
    "missing_checkpoint": "checkpoint not found",
    "missing_labels_file": "labels file not found",
    "missing_output_dir": "output directory does not exist",
    "output_parent_is_a_file": "not a directory",
    "no_permission": "permission",
}


# Root ignores directory permissions, so that case only runs unprivileged; the branch itself is
# covered for everyone by an in-process test with a faked ``os.access``.
RUNNABLE_CASES = sorted(name for name in ERROR_CASES if name != "no_permission" or os.geteuid() != 0)


@pytest.mark.parametrize("name", RUNNABLE_CASES)
def test_bad_input_gives_one_line_exit_2_and_no_file(error_runs: dict[str, Case], name: str) -> None:
    case = error_runs[name]
    lines = case.stderr.strip().splitlines()
    assert case.returncode == 2, case.stderr
    assert len(lines) == 1 and lines[0].startswith("slr-export: error: "), case.stderr
    assert ERROR_CASES[name] in lines[0]
    assert "Traceback" not in case.stderr and case.stdout == ""
    assert not case.output.exists()


def test_errors_leave_no_temporary_files(error_runs: dict[str, Case]) -> None:
    assert list(error_runs["__out_dir__"].output.iterdir()) == []


def test_help_documents_the_options() -> None:
    result = subprocess.run([*CLI, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in ("--labels", "--int8", "--opset", "--format", "--fps", "--random-init", "--num-classes"):
        assert option in result.stdout


def test_random_init_demo_export_via_cli(tmp_path: Path) -> None:
    """The success path end to end (the tiny preset keeps it quick; the API test covers ``edge``)."""
    out = tmp_path / "demo.onnx"
    result = subprocess.run(
        [*CLI, "--random-init", "tiny", "--num-classes", "5", "--fps", "25", "-o", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "UNTRAINED" in result.stdout and "parity" in result.stdout and "latency" in result.stdout
    assert "Traceback" not in result.stderr
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["slr.untrained"] == "true" and float(meta["slr.fps"]) == 25.0
    assert [p.name for p in tmp_path.iterdir()] == ["demo.onnx"]
