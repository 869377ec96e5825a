"""The arm64 image's wheels (requirements-edge.lock for aarch64/cp311) exist and are W^X-safe.

The wheels are the lock's, downloaded for CPython 3.11 on aarch64 Linux into the deployment
tests' cache (/var/cache/slovo-edge-tests, shared with the arm64 image test), so a pin without an
aarch64 wheel fails here rather than in a docker build on a Pi.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
from deploy_support import wheelhouse

PT_GNU_STACK = 0x6474E551
PF_X = 0x1


@pytest.fixture(scope="module")
def wheels() -> list[Path]:
    return sorted(wheelhouse("aarch64").glob("*.whl"))


def find(wheels: list[Path], distribution: str) -> list[Path]:
    return [wheel for wheel in wheels if wheel.name.lower().startswith(distribution + "-")]


def test_mediapipe_and_onnxruntime_have_aarch64_wheels(wheels: list[Path]) -> None:
    mediapipe = find(wheels, "mediapipe")
    onnxruntime = find(wheels, "onnxruntime")
    assert len(mediapipe) == 1 and mediapipe[0].name.startswith("mediapipe-0.10.18-cp311-cp311-")
    assert "aarch64" in mediapipe[0].name
    assert len(onnxruntime) == 1 and "aarch64" in onnxruntime[0].name


def test_every_wheel_is_pure_or_aarch64_and_numpy_is_1x(wheels: list[Path]) -> None:
    assert len(wheels) > 20
    for wheel in wheels:
        platform_tag = wheel.stem.rsplit("-", 1)[1]
        assert platform_tag == "any" or "aarch64" in platform_tag, wheel.name
    (numpy,) = find(wheels, "numpy")
    assert numpy.name.startswith("numpy-1.")
    assert find(wheels, "opencv_python_headless")
    assert not find(wheels, "opencv_contrib_python")  # the GUI build, which needs libGL
    assert not find(wheels, "torch") and not find(wheels, "jaxlib")


def _executable_stack(header: bytes) -> bool:
    """True if an ELF64 little-endian object asks for an executable stack (PT_GNU_STACK has PF_X)."""
    (phoff,) = struct.unpack_from("<Q", header, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
    for i in range(phnum):
        p_type, p_flags = struct.unpack_from("<II", header, phoff + i * phentsize)
        if p_type == PT_GNU_STACK:
            return bool(p_flags & PF_X)
    return True  # no PT_GNU_STACK: the loader assumes an executable stack


def test_native_code_runs_under_memory_deny_write_execute(wheels: list[Path]) -> None:
    """slovo-edge.service sets MemoryDenyWriteExecute=yes; an executable-stack library breaks it."""
    checked = 0
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if ".so" not in Path(name).name:
                    continue
                with archive.open(name) as member:
                    header = member.read(64 * 1024)
                if header[:4] != b"\x7fELF":
                    continue
                assert header[4] == 2 and header[5] == 1, f"{name}: not ELF64 little-endian"
                assert not _executable_stack(header), f"{wheel.name}:{name} needs an executable stack"
                checked += 1
    assert checked > 50  # mediapipe, onnxruntime, opencv and numpy all ship native code


def _elf_header(*segments: tuple[int, int]) -> bytes:
    header = bytearray(64 + 56 * len(segments))
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)
    struct.pack_into("<HH", header, 0x36, 56, len(segments))
    for i, (p_type, p_flags) in enumerate(segments):
        struct.pack_into("<II", header, 64 + i * 56, p_type, p_flags)
    return bytes(header)


def test_executable_stack_detection() -> None:
    load, read_write, read_write_exec = 1, 0x6, 0x7
    assert not _executable_stack(_elf_header((load, 0x5), (PT_GNU_STACK, read_write)))
    assert _executable_stack(_elf_header((load, 0x5), (PT_GNU_STACK, read_write_exec)))
    assert _executable_stack(_elf_header((load, 0x5)))
