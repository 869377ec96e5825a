"""requirements-edge.lock is the device's dependency set: it must match pyproject's ``edge`` extra;
requirements-web.lock adds the dashboard's (the ``web`` extra) on top of it.

The locks are installed with ``--no-deps`` (systemd/install.sh, Dockerfile.arm64), so nothing checks
them at install time; these tests do. Drift in either direction fails: a requirement of the ``edge``
extra that is not pinned (or pinned to a version it excludes), and a pinned package whose own
requirements are neither pinned nor listed as deliberately left out. pip's resolver, asked for
the metadata only (``--dry-run --report``), proves every pin has a binary wheel for CPython 3.11
and 3.12 on Linux x86_64 and aarch64 (needs the package index).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import LOCK_FILE, MQTT_LOCK_FILE, REPO_ROOT, WEB_LOCK_FILE, manylinux_platforms
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from edge.util.settings import tomllib

PYTHONS = ("3.11", "3.12")
MACHINES = ("x86_64", "aarch64")


Lock = tuple[dict[str, Version], set[str], dict[str, str]]


def read_lock(path: Path = LOCK_FILE) -> Lock:
    """``(pins, excluded, replaced)`` from a lock file (names canonicalised)."""
    pins: dict[str, Version] = {}
    excluded: set[str] = set()
    replaced: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("# exclude:"):
            excluded |= {canonicalize_name(name) for name in line.split(":", 1)[1].split()}
        elif line.startswith("# replace:"):
            old, new = (canonicalize_name(part.strip()) for part in line.split(":", 1)[1].split("->"))
            replaced[old] = new
        elif line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"not pinned: {line}"
            name = canonicalize_name(requirement.name)
            assert name not in pins, f"pinned twice: {name}"
            pins[name] = Version(spec.version)
    return pins, excluded, replaced


def read_installed(path: Path) -> Lock:
    """``read_lock(path)`` with the pins of what is installed below it: the web lock goes on top of
    the edge lock (whose exclusions are its own business)."""
    pins, excluded, replaced = read_lock(path)
    if path != LOCK_FILE:
        assert not excluded and not replaced, f"{path.name} excludes or replaces nothing"
        edge_pins, _, replaced = read_lock(LOCK_FILE)
        repeated = set(pins) & set(edge_pins)
        assert not repeated, f"{path.name} repeats pins of {LOCK_FILE.name}: {sorted(repeated)}"
        pins = {**edge_pins, **pins}
    return pins, excluded, replaced


def environment(python: str, machine: str) -> dict[str, str]:
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "platform_machine": machine,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def applies(requirement: Requirement, python: str, machine: str) -> bool:
    return requirement.marker is None or Marker(str(requirement.marker)).evaluate(
        environment(python, machine)
    )


def check_requirement(requirement: Requirement, pins: dict[str, Version], replaced: dict[str, str]) -> None:
    name = canonicalize_name(requirement.name)
    name = replaced.get(name, name)
    assert name in pins, f"{requirement} is not pinned in the locks"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"the locks pin {name}=={pins[name]}, outside {requirement}"
    )


@pytest.mark.parametrize(
    ("lock", "extra"),
    [(LOCK_FILE, "edge"), (WEB_LOCK_FILE, "web"), (MQTT_LOCK_FILE, "mqtt")],
    ids=("edge", "web", "mqtt"),
)
def test_lock_pins_every_requirement_of_its_extra(lock: Path, extra: str) -> None:
    pins, excluded, replaced = read_installed(lock)
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    for line in [*project["dependencies"], *project["optional-dependencies"][extra]]:
        requirement = Requirement(line)
        for python in PYTHONS:
            if applies(requirement, python, "x86_64"):
                check_requirement(requirement, pins, replaced)
    assert not excluded & set(pins), "a package is both pinned and excluded"
    assert set(replaced.values()) <= set(pins) and not set(replaced) & set(pins)


def test_lock_reader_sees_drift(tmp_path: Path) -> None:
    """The check above can fail: a specifier the pin violates, and a name that is not pinned."""
    pins, _, replaced = read_lock()
    with pytest.raises(AssertionError, match="outside"):
        check_requirement(Requirement(f"numpy>{pins['numpy']}"), pins, replaced)
    with pytest.raises(AssertionError, match="not pinned"):
        check_requirement(Requirement("torch>=2"), pins, replaced)
    check_requirement(Requirement("opencv-contrib-python>=4.8,<5"), pins, replaced)  # via replace:


@pytest.fixture(
    scope="module",
    params=[
        (lock, p, m) for lock in (LOCK_FILE, WEB_LOCK_FILE, MQTT_LOCK_FILE) for p in PYTHONS for m in MACHINES
    ],
    ids=lambda lpm: "-".join([lpm[0].stem.split("-")[1], *lpm[1:]]),
)
def resolved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """pip's report for a lock on one (python, machine): which wheel each pin takes, and its metadata."""
    lock, python, machine = request.param
    report = tmp_path_factory.mktemp("report") / "report.json"
    platform_args = [arg for tag in manylinux_platforms(machine) for arg in ("--platform", tag)]
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
            "--no-deps", "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            *platform_args, "--target", str(report.parent / "target"), "--report", str(report),
            "--disable-pip-version-check", "-r", str(lock),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return {"lock": lock, "python": python, "machine": machine, "report": json.loads(report.read_text())}


def test_every_pin_has_a_binary_wheel_for_the_platform(resolved: dict) -> None:
    pins, _, _ = read_lock(resolved["lock"])
    items = resolved["report"]["install"]
    names = {canonicalize_name(item["metadata"]["name"]): item for item in items}
    assert set(names) == set(pins)
    tag = "cp" + resolved["python"].replace(".", "")
    for name, item in names.items():
        wheel = item["download_info"]["url"].rsplit("/", 1)[1]
        assert wheel.endswith(".whl"), wheel
        assert Version(item["metadata"]["version"]) == pins[name]
        platform_tag = wheel[: -len(".whl")].rsplit("-", 1)[1]
        assert platform_tag == "any" or resolved["machine"] in platform_tag, wheel
        if platform_tag != "any":
            assert f"-{tag}-" in wheel or "-abi3-" in wheel, wheel


def test_lock_is_closed_under_its_packages_requirements(resolved: dict) -> None:
    """Every requirement of a pinned package is pinned (in this lock or the one below it), or
    deliberately excluded or replaced."""
    pins, excluded, replaced = read_installed(resolved["lock"])
    required: set[str] = set()
    for item in resolved["report"]["install"]:
        for line in item["metadata"].get("requires_dist", []):
            requirement = Requirement(line)
            if not applies(requirement, resolved["python"], resolved["machine"]):
                continue
            name = canonicalize_name(requirement.name)
            required.add(name)
            if name not in excluded:
                check_requirement(requirement, pins, replaced)
    stale = excluded - required
    assert not stale, f"excluded but required by nothing: {sorted(stale)}"
