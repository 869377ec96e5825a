"""``systemd/slovo-speak.service``: valid, sandboxed like the daemon's unit, audio only, loopback only.

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
UNIT = REPO_ROOT / "systemd" / "slovo-speak.service"
RECIPE = REPO_ROOT / "systemd" / "install.sh"
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
    stub = tmp_path / "slr-speak"
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
    print(f"slovo-speak exposure: {match.group(1)} {match.group(2)}")
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_ordered_after_the_daemon_audio_only_and_loopback() -> None:
    unit = settings()
    assert "slovo-edge.service" in unit["After"][0].split()
    assert unit["Wants"] == ["slovo-edge.service"]
    args = shlex.split(unit["ExecStart"][0])
    assert args[0] == "/opt/slovo-edge/venv/bin/slr-speak"
    assert args[args.index("--endpoint") + 1].startswith("tcp://127.0.0.1:")
    for key, value in {
        "DynamicUser": "yes",
        "SupplementaryGroups": "audio",
        "DevicePolicy": "closed",
        "DeviceAllow": "char-alsa rw",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "IPAddressDeny": "any",
        "IPAddressAllow": "localhost",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",
    }.items():
        assert unit.get(key) == [value], key
    assert "PrivateUsers" not in unit  # it would unmap the audio group


def test_install_recipe_has_a_speak_option() -> None:
    recipe = RECIPE.read_text()
    assert "--speak) SPEAK=1" in recipe
    assert '"$SRC/systemd/slovo-speak.service" /etc/systemd/system/slovo-speak.service' in recipe
    assert "apt-get install -y -qq --no-install-recommends espeak-ng" in recipe
    assert "sudo systemd/install.sh --speak dist/slovo_edge-" in UNIT.read_text()
    result = subprocess.run(["sh", str(RECIPE), "--speak"], capture_output=True, text=True)
    assert result.returncode == 2 and "[--speak]" in result.stderr
