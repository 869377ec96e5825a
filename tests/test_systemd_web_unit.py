"""``systemd/slovo-web.service``: valid, sandboxed like the daemon's unit, ordered after it, loopback only.

Needs ``systemd-analyze`` (Debian package ``systemd``; scripts/test.sh installs it).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
UNIT = REPO_ROOT / "systemd" / "slovo-web.service"
MAX_EXPOSURE = 2.0


def analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: apt-get install -y systemd")
    return path


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_verifies(tmp_path: Path) -> None:
    binary = shlex.split(settings()["ExecStart"][0])[0]
    stub = tmp_path / "slr-web"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(f"ExecStart={binary}", f"ExecStart={stub}"))
    result = subprocess.run(
        [analyze(), "verify", "--man=no", "--recursive-errors=no", str(unit)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if UNIT.name in line and "slovo-edge.service" not in line  # the daemon's unit is not installed here
    ]
    assert complaints == [], result.stderr


def test_exposure_score_is_low() -> None:
    result = subprocess.run(
        [analyze(), "security", "--offline=true", "--no-pager", str(UNIT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout
    print(f"slovo-web exposure: {match.group(1)} {match.group(2)}")
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_ordered_after_the_daemon_and_bound_to_loopback() -> None:
    unit = settings()
    assert "slovo-edge.service" in unit["After"][0].split()
    assert unit["Wants"] == ["slovo-edge.service"]
    args = shlex.split(unit["ExecStart"][0])
    assert args[0].endswith("/slr-web") and args[args.index("--host") + 1] == "127.0.0.1"
    assert "--allow-remote" not in args
    model = args[args.index("--model") + 1]
    assert any(line.endswith(f":{model}") for line in unit["BindReadOnlyPaths"])
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "IPAddressDeny": "any",
        "IPAddressAllow": "localhost",
        "Restart": "on-failure",
    }.items():
        assert unit.get(key) == [value], key
