"""``systemd/slovo-mqtt.service``: valid, sandboxed like the daemon's unit, no restart on exit 2, the
password as a credential; the example config's ``[mqtt]`` table is one ``slr-mqtt`` accepts.

Needs ``systemd-analyze`` (Debian package ``systemd``; scripts/test.sh installs it).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from test_systemd_web_unit import analyze

from edge.mqtt.config import read_file

REPO_ROOT = Path(__file__).resolve().parents[1]
UNIT = REPO_ROOT / "systemd" / "slovo-mqtt.service"
EXAMPLE = REPO_ROOT / "systemd" / "slovo-edge.toml.example"
MAX_EXPOSURE = 1.5


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_verifies(tmp_path: Path) -> None:
    binary = shlex.split(settings()["ExecStart"][0])[0]
    stub = tmp_path / "slr-mqtt"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(f"ExecStart={binary}", f"ExecStart={stub}"))
    result = subprocess.run(
        [analyze(), "verify", "--man=no", "--recursive-errors=no", str(unit)], capture_output=True, text=True
    )
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if UNIT.name in line and "slovo-edge.service" not in line
    ]
    assert complaints == [], result.stderr


def test_exposure_score_is_low() -> None:
    result = subprocess.run(
        [analyze(), "security", "--offline=true", "--no-pager", str(UNIT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout
    print(f"slovo-mqtt exposure: {match.group(1)} {match.group(2)}")
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_sandbox_and_restart_policy() -> None:
    unit = settings()
    assert "slovo-edge.service" in unit["After"][0].split()
    assert unit["RestartPreventExitStatus"] == ["2"]
    assert shlex.split(unit["ExecStart"][0])[1:] == ["--config", "/etc/slovo-edge/config.toml"]
    assert unit["LoadCredential"] == ["mqtt.password:/etc/slovo-edge/mqtt.password"]
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "IPAddressDeny": "any",
        "Restart": "on-failure",
    }.items():
        assert unit.get(key) == [value], key


def test_example_config_has_an_mqtt_table_slr_mqtt_accepts() -> None:
    values, endpoint = read_file(EXAMPLE)
    assert values["broker"].startswith("mqtt://") and endpoint == "tcp://127.0.0.1:5556"
    assert values["password_file"] == "/run/credentials/slovo-mqtt.service/mqtt.password"
