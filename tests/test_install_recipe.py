"""The install recipe and the Dockerfile, checked where running them is not needed.

Running them is tests/test_deploy_systemd.py and tests/test_deploy_arm64.py; these are the fast
checks: the recipe refuses an interpreter mediapipe has no wheels for with one line, and the
Dockerfile keeps its dependency layer before the code, a numeric user and a .dockerignore.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_support import REPO_ROOT

RECIPE = REPO_ROOT / "systemd" / "install.sh"
DOCKERFILE = REPO_ROOT / "Dockerfile.arm64"


def recipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(RECIPE), *args], capture_output=True, text=True, timeout=60)


def find_python(version: str) -> str:
    """A working ``python<version>``: on PATH, or a pyenv install (whose shim may not be active)."""
    candidates = [
        shutil.which(f"python{version}"),
        *map(str, Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}")),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True
        )
        if probe.returncode == 0:
            return candidate
    pytest.fail(f"python{version} is needed to test the recipe's refusal (the CI machine provides one)")


def test_recipe_refuses_python_3_13_with_one_line(tmp_path: Path) -> None:
    python313 = find_python("3.13")
    wheel = tmp_path / "slovo_edge-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")  # never read: the interpreter check comes first
    result = recipe("--python", python313, str(wheel))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Python 3.13" in lines[0] and "3.11 or 3.12" in lines[0] and "container" in lines[0]


def test_recipe_usage_errors_are_one_line() -> None:
    result = recipe()
    assert result.returncode == 2 and result.stderr.startswith("usage:")
    result = recipe("/nonexistent/slovo_edge.whl")
    assert result.returncode == 2
    assert result.stderr.strip() == "install.sh: error: no such wheel: /nonexistent/slovo_edge.whl"


def test_recipe_web_flag_is_parsed_and_usage_names_it() -> None:
    result = recipe("--web")
    assert result.returncode == 2 and result.stderr.startswith("usage:") and "[--web]" in result.stderr
    result = recipe("--web", "/nonexistent/slovo_edge.whl")  # taken as a flag, then the wheel checked
    assert result.returncode == 2
    assert result.stderr.strip() == "install.sh: error: no such wheel: /nonexistent/slovo_edge.whl"


def test_recipe_installs_with_no_deps_from_the_lock() -> None:
    text = RECIPE.read_text()
    assert '--no-deps --no-compile --only-binary=:all: -r "$SRC/requirements-edge.lock"' in text
    assert '--no-deps --no-compile --only-binary=:all: -r "$SRC/requirements-web.lock"' in text
    assert text.index('requirements-edge.lock"') < text.index('requirements-web.lock"')
    web_unit = (REPO_ROOT / "systemd" / "slovo-web.service").read_text()
    assert "sudo systemd/install.sh --web dist/slovo_edge-" in web_unit  # its header gives the recipe
    readme = (REPO_ROOT / "README.md").read_text()
    unit = (REPO_ROOT / "systemd" / "slovo-edge.service").read_text()
    assert "sudo systemd/install.sh dist/slovo_edge-" in readme  # the README and the unit give
    assert "sudo systemd/install.sh dist/slovo_edge-" in unit  # the same recipe the test runs


def instructions() -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_installs_the_locks_in_their_own_layers_before_copying_the_code() -> None:
    lines = instructions()
    lock_copy = lines.index("COPY requirements-edge.lock /tmp/requirements-edge.lock")
    lock_install = next(i for i, line in enumerate(lines) if "-r /tmp/requirements-edge.lock" in line)
    web_copy = lines.index("COPY requirements-web.lock /tmp/requirements-web.lock")
    web_install = next(i for i, line in enumerate(lines) if "-r /tmp/requirements-web.lock" in line)
    code_copy = next(i for i, line in enumerate(lines) if line.startswith("COPY edge/"))
    # The web lock after the edge lock's layer: changing it leaves the big layer cached.
    assert lock_copy < lock_install < web_copy < web_install < code_copy
    assert "--no-deps" in lines[lock_install] and "--no-deps" in lines[web_install]
    assert not any("apt-get" in line for line in lines), "no system packages (no GL libraries) needed"


def test_dockerfile_user_is_numeric_and_dockerignore_keeps_the_context_small() -> None:
    (user,) = [line.split()[1] for line in instructions() if line.startswith("USER ")]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit()
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :]  # everything is ignored, then the few needed paths let in
    copied = {"requirements-edge.lock", "requirements-web.lock", "pyproject.toml", "README.md", "LICENSE"}
    copied.add("edge/")
    assert {line[1:] for line in ignore if line.startswith("!")} == copied


def test_recipe_model_flags_are_parsed_and_use_slr_model() -> None:
    result = recipe("--model")
    assert result.returncode == 2 and result.stderr.startswith("usage:")
    assert "[--model SOURCE" in result.stderr
    result = recipe("--model-sha256", "0" * 64, "/nonexistent/slovo_edge.whl")
    assert result.returncode == 2
    assert result.stderr.strip() == "install.sh: error: --model-sha256 needs --model"
    result = recipe("--model", "https://example.org/m.onnx", "/nonexistent/slovo_edge.whl")
    assert result.returncode == 2  # parsed as a flag with its value, then the wheel is checked
    assert result.stderr.strip() == "install.sh: error: no such wheel: /nonexistent/slovo_edge.whl"
    text = RECIPE.read_text()
    assert 'SLOVO_MODEL_CACHE="$STATE/models" "$PREFIX/venv/bin/slr-model" fetch' in text
