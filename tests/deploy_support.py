"""Shared machinery of the deployment tests: Debian root filesystems, wheelhouses, clips, containers.

Everything slow is cached in :data:`CACHE` (outside the repository, kept between runs), keyed by
what it depends on: a root filesystem by its mmdebstrap recipe, a wheelhouse by the lock file's
hash and the target platform. A cache entry is written under a temporary name and renamed when
complete, under a file lock, so an interrupted or concurrent run never sees half of one.

The tests need root and Debian tools (mmdebstrap, systemd-nspawn, qemu-user-static, podman);
``scripts/test.sh`` installs them. A missing tool fails the test with the package to install.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from edge.util.settings import tomllib  # tomllib, or the tomli backport on Python 3.10

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK_FILE = REPO_ROOT / "requirements-edge.lock"
#: The dashboard's lock (slovo-edge[web]), installed on top of LOCK_FILE.
WEB_LOCK_FILE = REPO_ROOT / "requirements-web.lock"
#: The MQTT bridge's lock (slovo-edge[mqtt]), installed on top of LOCK_FILE.
MQTT_LOCK_FILE = REPO_ROOT / "requirements-mqtt.lock"
CACHE = Path(os.environ.get("SLOVO_DEPLOY_CACHE", "/var/cache/slovo-edge-tests"))
SUITE = "bookworm"
#: The files of a checkout that systemd/install.sh reads (besides the wheel).
INSTALL_FILES = (
    "systemd/install.sh",
    "systemd/slovo-edge.service",
    "systemd/slovo-edge.toml.example",
    "systemd/slovo-web.service",
    "systemd/slovo-speak.service",
    "systemd/slovo-mqtt.service",
    "requirements-edge.lock",
    "requirements-web.lock",
    "requirements-mqtt.lock",
    "README.md",
    "docs/PROTOCOL.md",
)
#: Bumped when the way a cached root filesystem is made changes without its arguments changing.
ROOTFS_RECIPE = 1
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
TOOL_PACKAGES = {
    "mmdebstrap": "mmdebstrap",
    "arch-test": "arch-test",
    "systemd-nspawn": "systemd-container",
    "nsenter": "util-linux",
    "podman": "podman",
    "qemu-aarch64-static": "qemu-user-static",
}


class DeployError(AssertionError):
    """A deployment step failed; the message says which and shows the end of its output."""


def require_tools(*tools: str) -> None:
    """Fail (not skip) unless running as root with every tool on PATH."""
    if os.geteuid() != 0:
        raise DeployError("deployment tests need root (they build root filesystems and boot containers)")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = " ".join(sorted({TOOL_PACKAGES.get(tool, tool) for tool in missing}))
        raise DeployError(
            f"missing {', '.join(missing)}: apt-get install -y {packages} (scripts/test.sh does)"
        )


def run(
    cmd: Sequence[str | Path], *, timeout: float = 600, check: bool = True, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` capturing text output; on failure raise with the command and its output's tail."""
    args = [str(part) for part in cmd]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    except subprocess.TimeoutExpired as exc:
        raise DeployError(f"timed out after {timeout:.0f} s: {' '.join(args)}") from exc
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise DeployError(f"exit {result.returncode}: {' '.join(args)}\n{output}")
    return result


def short_hash(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def cache_entry(name: str) -> Iterator[Path]:
    """Hold an exclusive lock on cache entry ``name`` (another run building it is waited for)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield CACHE / name


def rootfs_tar(arch: str, packages: Sequence[str]) -> Path:
    """A cached ``mmdebstrap --variant=minbase`` tarball of bookworm for ``arch`` (~1 min; arm64 ~4 min)."""
    require_tools("mmdebstrap", *(["arch-test"] if arch != "amd64" else []))
    mirror = str(DEBIAN_SOURCES) if DEBIAN_SOURCES.exists() else DEBIAN_MIRROR
    mirror_text = DEBIAN_SOURCES.read_text() if DEBIAN_SOURCES.exists() else DEBIAN_MIRROR
    key = short_hash(str(ROOTFS_RECIPE), arch, SUITE, ",".join(packages), mirror_text)
    with cache_entry(f"rootfs-{SUITE}-{arch}-{key}.tar") as path:
        if not path.exists():
            partial = path.with_name(path.name + ".partial.tar")
            run(
                [
                    "mmdebstrap", "--quiet", "--variant=minbase", f"--architectures={arch}",
                    f"--include={','.join(packages)}", SUITE, partial, mirror,
                ],
                timeout=3600,
            )  # fmt: skip
            partial.rename(path)
    return path


def extract_rootfs(tar: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    run(["tar", "-C", dest, "-xf", tar], timeout=300)
    return dest


def manylinux_platforms(machine: str) -> list[str]:
    """Every manylinux tag a glibc-2.28 system accepts (pip matches --platform literally).

    glibc 2.28 is below Raspberry Pi OS / Debian bookworm (2.36) and Ubuntu 20.04 on Jetson (2.31).
    """
    return [f"manylinux2014_{machine}", *(f"manylinux_2_{minor}_{machine}" for minor in range(17, 29))]


def build_requirements() -> list[str]:
    """pyproject's build-system requirements (setuptools), to build slovo-edge offline."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["build-system"]["requires"])


def wheelhouse(machine: str, python: str = "3.11") -> Path:
    """Cached folder: the three locks' wheels for CPython ``python`` on Linux ``machine``, and the build
    backend."""
    extra = build_requirements()
    locks = (LOCK_FILE, WEB_LOCK_FILE, MQTT_LOCK_FILE)
    key = short_hash(*(lock.read_bytes() for lock in locks), machine, python, *extra)
    with cache_entry(f"wheels-cp{python.replace('.', '')}-{machine}-{key}") as path:
        if not path.exists():
            partial = path.with_name(path.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            platform_args = [arg for tag in manylinux_platforms(machine) for arg in ("--platform", tag)]
            common = [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                "--python-version", python, "--implementation", "cp", "--dest", partial,
                "--progress-bar", "off", "--disable-pip-version-check",
            ]  # fmt: skip
            run([*common, *platform_args, *(arg for lock in locks for arg in ("-r", lock))], timeout=1200)
            run([*common, *extra], timeout=600)
            partial.rename(path)
    return path


def build_wheel(dest: Path) -> Path:
    """slovo-edge's own wheel, built from this checkout (what the README tells users to do)."""
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dest, REPO_ROOT], timeout=600)
    (wheel,) = dest.glob("slovo_edge-*.whl")
    return wheel


def copy_install_files(dest: Path) -> Path:
    """The parts of a checkout that systemd/install.sh needs, laid out as in the repository."""
    for name in INSTALL_FILES:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    return dest


def installed_rootfs(
    dest: Path, packages: Sequence[str], *flags: str, files: Mapping[str, bytes] | None = None
) -> tuple[Path, str]:
    """A bookworm root filesystem of ``packages`` in ``dest`` with slovo-edge installed the way the
    README says: ``systemd/install.sh [FLAGS] WHEEL``, run inside it by ``systemd-nspawn``, offline
    from the cached wheelhouse. ``files`` (path in the root → bytes) are placed before the recipe
    runs (a model for ``--model``). Returns the root and the recipe's output; nothing is booted."""
    machine = platform.machine()
    root = extract_rootfs(rootfs_tar({"x86_64": "amd64", "aarch64": "arm64"}[machine], packages), dest)
    for name, data in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    wheels = root / "root" / "wheels"
    shutil.copytree(wheelhouse(machine), wheels)
    wheel = build_wheel(wheels)
    copy_install_files(root / "root" / "slovo-edge")
    result = run(
        [
            "systemd-nspawn", "--quiet", "-D", root, "--register=no", "--keep-unit",
            "--setenv=PIP_NO_INDEX=1", "--setenv=PIP_FIND_LINKS=/root/wheels",
            "/root/slovo-edge/systemd/install.sh", *flags, f"/root/wheels/{wheel.name}",
        ],
        timeout=900,
    )  # fmt: skip
    return root, result.stdout


def make_clip(source: Path, dest: Path, frames: int = 24, width: int | None = None) -> Path:
    """The first ``frames`` frames of ``source`` as an MPEG-4 clip (optionally scaled to ``width``)."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    try:
        for _ in range(frames):
            ok, frame = capture.read()
            if not ok:
                raise DeployError(f"{source} has fewer than {frames} frames")
            if width is not None:
                frame = cv2.resize(frame, (width, round(frame.shape[0] * width / frame.shape[1])))
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            writer.write(frame)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return dest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dir_size_mb(path: Path) -> float:
    """Disk usage of a tree in MiB (``du``: what the device's storage pays)."""
    return int(run(["du", "-sk", path]).stdout.split()[0]) / 1024


class BootedContainer:
    """A root filesystem booted with ``systemd-nspawn -b``; commands run in it through nsenter.

    It shares the host's network namespace, so a daemon bound to 127.0.0.1 inside is reachable
    from a subscriber in the test process.
    """

    def __init__(self, root: Path, log: Path) -> None:
        require_tools("systemd-nspawn", "nsenter")
        self.root = root
        self._log = log.open("wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(root), "--register=no", "--keep-unit", "-b"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.init_pid = self._find_init()

    def _find_init(self, timeout: float = 30.0) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DeployError(f"systemd-nspawn exited with {self.process.returncode}")
            # The container's init is nspawn's child once it has exec'd systemd: before that the
            # child is nspawn's own helper, and nsenter into it reaches no systemd (a loaded
            # machine makes that window long enough to hit).
            with contextlib.suppress(OSError):
                for pid in children.read_text().split():
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
            time.sleep(0.1)
        raise DeployError("the container's init did not start")

    def exec(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the container (all its namespaces) and return its output."""
        return run(["nsenter", "-t", str(self.init_pid), "-a", *cmd], check=check, timeout=timeout)

    def systemctl(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        return self.exec("systemctl", "--no-pager", *args, check=check, timeout=timeout).stdout.strip()

    def show(self, unit: str, prop: str) -> str:
        return self.systemctl("show", "--value", "-p", prop, unit)

    def wait_for(self, predicate: object, timeout: float, what: str, interval: float = 0.2) -> float:
        """Poll ``predicate()`` until true; return seconds waited; raise with ``what`` on timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with contextlib.suppress(DeployError):
                if predicate():  # type: ignore[operator]
                    return time.monotonic() - started
            time.sleep(interval)
        raise DeployError(f"timed out after {timeout:.0f} s waiting for {what}")

    def journal(self, unit: str) -> str:
        return self.exec("journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(DeployError):
                self.exec("systemctl", "poweroff", "--no-block", check=False, timeout=10)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                # SIGKILL of the container's init ends its whole PID namespace; nspawn's process
                # group alone would leave the booted system running on the host's ports.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.init_pid, signal.SIGKILL)
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


def jpeg_frames(clip: Path, width: int = 480) -> list[bytes]:
    """Every frame of ``clip`` as JPEG, scaled to ``width`` (what an IP camera would send)."""
    import cv2

    capture = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frame = cv2.resize(frame, (width, round(frame.shape[0] * width / frame.shape[1])))
        frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    capture.release()
    return frames


class MjpegCamera:
    """A network camera on 127.0.0.1: MJPEG over HTTP (multipart/x-mixed-replace), looping ``frames``.

    :meth:`freeze` stops sending while keeping the connection open (a camera that hangs without an
    error); :meth:`die` closes every connection and refuses new ones (a camera that is gone).
    """

    def __init__(self, frames: list[bytes], fps: float = 10.0) -> None:
        import threading

        self.frames = frames
        self.fps = fps
        self.frozen = threading.Event()
        self.dead = threading.Event()
        self.served = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        import threading

        while not self.dead.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._stream, args=(conn,), daemon=True).start()
        self._listener.close()

    def _stream(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            conn.sendall(
                b"HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\n"
                b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
            )
            index = 0
            while not self.dead.is_set():
                if self.frozen.is_set():
                    time.sleep(0.1)
                    continue
                jpeg = self.frames[index % len(self.frames)]
                conn.sendall(
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    + jpeg
                    + b"\r\n"
                )
                index += 1
                self.served += 1
                time.sleep(1 / self.fps)

    def freeze(self) -> None:
        self.frozen.set()

    def die(self) -> None:
        self.dead.set()
        self._thread.join(2)
