"""Start the real processes the dashboard tests and benchmarks talk to: ``slr-edge run`` and ``slr-web``.

Both run as child processes on free loopback ports, logging to files; :func:`stop` ends them with
SIGTERM (then SIGKILL) so a failing test never leaves them behind.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLASSES_TSV = SHARED / "reference" / "slovo_classes.tsv"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def slovo_labels() -> list[str]:
    """Slovo's 1001 class names (Cyrillic glosses) from the shared reference table."""
    if not CLASSES_TSV.exists():
        raise FileNotFoundError(f"required shared test material is missing: {CLASSES_TSV}")
    rows = CLASSES_TSV.read_text(encoding="utf-8").splitlines()[1:]
    return [row.split("\t", 1)[1] for row in rows if row.strip()]


def build_slovo_model(path: Path, untrained: bool = True) -> Path:
    """A tiny contract-shaped model over Slovo's labels, marked untrained like ``--random-init``."""
    sys.path.insert(0, str(REPO / "tests"))
    from helpers_onnx import build_tiny_onnx, default_metadata

    from edge.contract.model_contract import META_UNTRAINED

    labels = slovo_labels()
    metadata = default_metadata(labels)
    metadata[META_UNTRAINED] = "true" if untrained else "false"
    return build_tiny_onnx(path, labels, metadata=metadata)


def short_clip(source: Path, out: Path, frames: int = 40) -> Path:
    """The first ``frames`` frames of ``source`` as an MP4 (uploads that classify in seconds)."""
    import cv2

    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    try:
        for _ in range(frames):
            ok, bgr = cap.read()
            if not ok:
                break
            if writer is None:
                height, width = bgr.shape[:2]
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
            writer.write(bgr)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return out


def clean_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLR_EDGE_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env.update(PYTHONUNBUFFERED="1", OPENCV_LOG_LEVEL="ERROR")
    return env


def start_daemon(model: Path, video: Path, endpoint: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``slr-edge run`` on ``video`` in a loop, publishing on ``endpoint``."""
    args = [sys.executable, "-m", "edge.commands.edge_cli", "run", "--model", str(model)]
    args += ["--source", str(video), "--loop", "--endpoint", endpoint, *extra]
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=REPO, env=clean_env(), stdout=out, stderr=out)


def start_web(
    port: int, endpoint: str, log: Path, *extra: str, tmpdir: Path | None = None
) -> subprocess.Popen[bytes]:
    """``slr-web`` on 127.0.0.1:``port`` subscribed to ``endpoint`` (uploads under ``tmpdir`` if given).

    Its transcript goes to ``<log's folder>/web-state`` unless ``extra`` names a ``--state-dir``: a
    test never reads or writes the user's own state directory.
    """
    args = [sys.executable, "-m", "edge.commands.web", "--endpoint", endpoint, "--port", str(port), *extra]
    if "--state-dir" not in extra:
        args += ["--state-dir", str(log.parent / "web-state")]
    env = clean_env()
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=out)


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to 127.0.0.1:``port``: ``(status, lower-cased headers, body)``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_for_web(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    """Until ``slr-web`` answers ``/api/config`` (it first loads the upload model in a worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"slr-web exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            request(port, "GET", "/api/config", headers={"Authorization": "Bearer -"}, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"slr-web did not answer within {timeout:.0f} s:\n{log.read_text(errors='replace')}")


def multipart(field: str, filename: str, data: bytes, content_type: str = "video/mp4") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one file field, and its Content-Type header."""
    boundary = "----slovo" + os.urandom(8).hex()
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class EventStream:
    """A Server-Sent Events client on a raw socket, so reads can time out and resume cleanly."""

    def __init__(self, port: int, path: str = "/api/events", headers: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        head, _, self._raw = raw.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1]) if head else 0
        self.headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.decode("latin-1").partition(":") for line in head.split(b"\r\n")[1:])
        }
        self._text = b""

    def _dechunk(self) -> None:
        """Move complete chunks of the chunked transfer encoding from ``_raw`` to ``_text``."""
        while True:
            size_line, sep, rest = self._raw.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line.split(b";")[0] or b"0", 16)
            if len(rest) < size + 2:
                return
            self._text += rest[:size]
            self._raw = rest[size + 2 :]

    def events(self, seconds: float) -> list[tuple[str, dict[str, Any]]]:
        """Events received within ``seconds`` (fewer if the server closes the stream)."""
        out: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + seconds
        while True:
            self._dechunk()
            while b"\n\n" in self._text:
                block, self._text = self._text.split(b"\n\n", 1)
                event, data = "message", None
                for line in block.decode("utf-8").splitlines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                if data is not None:
                    out.append((event, data))
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return out
            if not chunk:
                return out
            self._raw += chunk

    def close(self) -> None:
        self.sock.close()


def chromium_paths() -> tuple[str, str]:
    """Debian's Chromium and its driver (scripts/test.sh installs them)."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise FileNotFoundError("headless Chromium is missing: apt-get install chromium chromium-driver")
    return browser, driver


def rss_mib(pid: int) -> float | None:
    """VmRSS of ``pid`` in MiB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")
