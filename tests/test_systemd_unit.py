"""The systemd unit is valid and well sandboxed; the example config is one the daemon accepts.

Needs ``systemd-analyze`` (Debian package ``systemd``); the test fails, not skips, without it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.daemon.config import read_toml

REPO_ROOT = Path(__file__).resolve().parents[1]
UNIT = REPO_ROOT / "systemd" / "slovo-edge.service"
EXAMPLE = REPO_ROOT / "systemd" / "slovo-edge.toml.example"
#: systemd's scale is 0 (locked down) to 10 (UNSAFE); <= 1.5 is the "OK" band's better half.
MAX_EXPOSURE = 1.5


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: apt-get install -y systemd")
    return path


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_verifies(tmp_path: Path) -> None:
    # verify insists that ExecStart's binary exists; stand in a stub for the device's venv,
    # keeping the unit otherwise byte-for-byte.
    exec_start = unit_settings()["ExecStart"][0]
    binary = shlex.split(exec_start)[0]
    stub = tmp_path / "slr-edge"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(f"ExecStart={binary}", f"ExecStart={stub}"))
    result = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", "--recursive-errors=no", str(unit)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


def test_exposure_score_is_low() -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout
    score = float(match.group(1))
    print(f"systemd-analyze security exposure: {score} {match.group(2)}")
    assert score <= MAX_EXPOSURE, result.stdout
    # Each exposure that remains is explained in the unit's header, one line each.
    flagged = re.findall(r"^✗ (\S+)", result.stdout, flags=re.M)
    reasons = [line for line in UNIT.read_text().splitlines() if line.startswith("#   ")]
    assert flagged
    for name in flagged:
        assert any(line.split()[1] == name for line in reasons), f"no reason given for {name}"


def test_unit_has_the_runtime_contract() -> None:
    settings = unit_settings()
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "10",
        "Restart": "on-failure",
        "DynamicUser": "yes",
        "SupplementaryGroups": "video",
        "DevicePolicy": "closed",
        "DeviceAllow": "char-video4linux rw",
        "RestartPreventExitStatus": "2",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "After": "network-online.target",
        "Wants": "network-online.target",
        "CapabilityBoundingSet": "",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], key
    assert "PrivateDevices" not in settings  # would hide the camera
    assert "PrivateUsers" not in settings  # would unmap the video group
    exec_start = shlex.split(settings["ExecStart"][0])
    assert exec_start[1:] == ["run", "--config", "/etc/slovo-edge/config.toml"]
    assert "GLOG_minloglevel=2" in settings["Environment"]


def test_documentation_names_files_the_install_recipe_installs() -> None:
    recipe = (REPO_ROOT / "systemd" / "install.sh").read_text()
    urls = unit_settings()["Documentation"][0].split()
    assert urls
    for url in urls:
        assert url.startswith("file:///opt/slovo-edge/docs/"), url
        assert f'"$PREFIX/docs/{url.rsplit("/", 1)[1]}"' in recipe, url


def test_example_config_is_accepted_by_the_config_loader() -> None:
    values = read_toml(EXAMPLE)  # raises on unknown keys and wrong types
    assert values["model"] == "/var/lib/slovo-edge/model.onnx"
    assert values["endpoint"] == "tcp://127.0.0.1:5556"
    assert set(values) >= {
        "source", "model", "endpoint", "stride", "threshold", "top_k", "threads", "log_level",
        "consecutive", "idle_after_s", "resample",
    }  # fmt: skip
    commented = EXAMPLE.read_text()
    assert "#curve_secret_key = " in commented and "#curve_authorized_dir = " in commented
