"""Size of what a device installs, before and after the lean install, side by side in one run.

* **full**: ``pip install 'slovo-edge[edge]'`` into a fresh venv (what the unit's old recipe did:
  pip resolves mediapipe's requirements, so jax, jaxlib, scipy, sentencepiece, sounddevice and
  the GUI OpenCV come along).
* **lean**: the install recipe (``systemd/install.sh``) in a Debian bookworm root filesystem
  (like the deployment test): ``requirements-edge.lock`` with ``--no-deps``, bytecode only for
  what the daemon imports, no pip in the venv.
* **image**: layers of ``Dockerfile.arm64`` above its base, read from the image that
  ``tests/test_deploy_arm64.py`` built (run it first; the stand-in base is Debian's arm64 Python).

Both venvs use the same interpreter minor version (3.11) and x86_64 wheels. Needs root, network
to the package index and the deployment tests' tools (mmdebstrap, systemd-nspawn, podman).
Figures go to ``docs/BENCHMARKS.md`` (sections "deploy-size" and "deploy-image").

    python benchmarks/bench_deploy_size.py            # venvs (~10 min) and image
    python benchmarks/bench_deploy_size.py --image    # image layers only
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from deploy_support import (  # noqa: E402
    build_wheel,
    copy_install_files,
    dir_size_mb,
    extract_rootfs,
    rootfs_tar,
    run,
    wheelhouse,
)
from test_deploy_arm64 import IMAGE, TARGET_LAYERS_MB  # noqa: E402
from test_deploy_systemd import PACKAGES  # noqa: E402

from benchmarks.report import write_section  # noqa: E402

TARGET_VENV_MB = 500
MIB_IN_MB = 1.048576
HEAVY = ("jax", "jaxlib", "scipy", "opencv_contrib_python", "sentencepiece", "sounddevice", "ml_dtypes")


def site_packages_mb(venv: Path) -> dict[str, float]:
    """MiB per top-level entry of the venv's site-packages, for the packages worth naming."""
    site = next(venv.glob("lib/python3.*/site-packages"))
    sizes: dict[str, float] = {}
    for name in HEAVY:
        entries = [
            entry for entry in site.iterdir() if entry.name.split("-")[0].split(".")[0].lower() == name
        ]
        if entries:
            sizes[name] = sum(dir_size_mb(entry) for entry in entries)
    return sizes


def full_venv(work: Path, wheel: Path) -> tuple[float, dict[str, float]]:
    venv = work / "full"
    python = shutil.which("python3.11") or sys.executable
    run([python, "-m", "venv", venv])
    run([venv / "bin" / "pip", "install", "--quiet", f"{wheel}[edge]"], timeout=1800)
    return dir_size_mb(venv), site_packages_mb(venv)


def lean_venv(work: Path, wheel: Path) -> float:
    root = extract_rootfs(rootfs_tar("amd64", PACKAGES), work / "root")
    shutil.copytree(wheelhouse("x86_64"), root / "root" / "wheels")
    shutil.copy2(wheel, root / "root" / "wheels")
    copy_install_files(root / "root" / "slovo-edge")
    run(
        [
            "systemd-nspawn", "--quiet", "-D", root, "--register=no", "--keep-unit",
            "--setenv=PIP_NO_INDEX=1", "--setenv=PIP_FIND_LINKS=/root/wheels",
            "/root/slovo-edge/systemd/install.sh", f"/root/wheels/{wheel.name}",
        ],
        timeout=1800,
    )  # fmt: skip
    return dir_size_mb(root / "opt" / "slovo-edge" / "venv")


def layer_label(created_by: str) -> str:
    """The Dockerfile instruction behind a layer, shortened (build arguments dropped)."""
    if "#(nop)" in created_by:
        created_by = created_by.split("#(nop)", 1)[1]
    elif "/bin/sh -c " in created_by:
        created_by = "RUN " + created_by.split("/bin/sh -c ", 1)[1]
    created_by = " ".join(created_by.split())
    return (created_by[:67] + "...") if len(created_by) > 70 else created_by


def image_layers_mb() -> tuple[float, list[tuple[str, float]]] | None:
    """Layers Dockerfile.arm64 adds to its base (oldest first), from ``podman history``."""
    result = subprocess.run(["podman", "history", "--format", "json", IMAGE], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    base_layers = {"FROM", ""}
    ours = [
        layer
        for layer in reversed(json.loads(result.stdout))
        if layer.get("CreatedBy", "").split(" ", 1)[0] not in base_layers and layer.get("size", 0) >= 0
    ]
    rows = [
        (layer_label(layer["CreatedBy"]), layer["size"] / 1e6)
        for layer in ours
        if "slovo" in layer["CreatedBy"]
    ]
    return sum(size for _, size in rows), rows


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def measure_venvs() -> None:
    with tempfile.TemporaryDirectory(prefix="slovo-size-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work / "dist")
        full_mb, heavy = full_venv(work, wheel)
        lean_mb = lean_venv(work, wheel)
    print(f"venv full {full_mb:.0f} MiB, lean {lean_mb:.0f} MiB ({lean_mb / full_mb:.2f}x)")
    lean_ok = lean_mb * MIB_IN_MB <= TARGET_VENV_MB
    lines = [
        "## Device install size",
        "",
        "`python benchmarks/bench_deploy_size.py`: the same wheel installed two ways on x86_64, CPython 3.11 "
        "(du, MiB).",
        "",
        "| install | venv | target |",
        "| --- | ---: | --- |",
        f"| full: `pip install 'slovo-edge[edge]'` (pip resolves mediapipe's needs) | {full_mb:.0f} MiB | |",
        f"| lean: `systemd/install.sh` (requirements-edge.lock, `--no-deps`) | {lean_mb:.0f} MiB "
        f"({lean_mb * MIB_IN_MB:.0f} MB) | ≤ {TARGET_VENV_MB} MB {mark(lean_ok)} |",
        f"| ratio lean / full | {lean_mb / full_mb:.2f} | |",
        "",
        "What the full install carries that the daemon never imports: "
        + ", ".join(f"{name} {size:.0f} MiB" for name, size in heavy.items())
        + " (plus bytecode for every module and pip itself).",
    ]
    write_section("deploy-size", "\n".join(lines))


def measure_image() -> None:
    image = image_layers_mb()
    if image is None:
        print(f"bench_deploy_size: no image {IMAGE}; run tests/test_deploy_arm64.py first", file=sys.stderr)
        return
    total, rows = image
    print(f"image layers above the base: {total:.0f} MB")
    lines = [
        "## Image size (`Dockerfile.arm64`)",
        "",
        "linux/arm64, built by tests/test_deploy_arm64.py on the stand-in base "
        "(Debian bookworm arm64, Python 3.11): "
        f"layers above the base **{total:.0f} MB** (target ≤ {TARGET_LAYERS_MB} MB "
        f"{'✓' if total <= TARGET_LAYERS_MB else '✗'}). Before the lock: about 1.04 GB (jax, jaxlib, "
        "scipy, ml_dtypes, opt_einsum, sentencepiece, sounddevice, GUI OpenCV and libgl1 with Mesa/LLVM), "
        "as measured when the lock was introduced.",
        "",
        "| layer | MB |",
        "| --- | ---: |",
        *(f"| `{command}` | {size:.1f} |" for command, size in rows),
    ]
    write_section("deploy-image", "\n".join(lines))


def main() -> int:
    if platform.machine() != "x86_64":
        print("bench_deploy_size: measures x86_64 venvs; run it on an x86_64 host", file=sys.stderr)
        return 2
    if "--image" not in sys.argv[1:]:
        measure_venvs()
    measure_image()
    return 0


if __name__ == "__main__":
    sys.exit(main())
