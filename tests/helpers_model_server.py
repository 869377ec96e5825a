"""A model server on 127.0.0.1 for ``slr-model``'s tests: honest by default, hostile on request.

Each path maps to a :class:`Route`: the bytes to serve and how to misbehave (drop the connection
half-way, trickle, lie about the length or the range, answer with a page, redirect forever). It
records every request (path and ``Range`` header), so a test can tell "downloaded once" from
"downloaded twice" and see a resume.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import REPO_ROOT


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/octet-stream"
    #: Close the connection after this many body bytes on the first N full (non-Range) answers.
    drop_after: int | None = None
    drops: int = 1
    #: Seconds between chunks of ``chunk`` bytes (a slow or slow-loris server).
    delay: float = 0.0
    chunk: int = 1 << 16
    #: Declare this Content-Length instead of the real one (None: the truth; -1: none at all).
    length: int | None = None
    #: Answer Range requests with a Content-Range starting here instead of the asked offset.
    wrong_range_start: int | None = None
    #: Send ``body`` again and again, forever (no Content-Length).
    endless: bool = False
    #: Headers only, then silence for this long.
    silent_s: float = 0.0
    redirect: str | None = None
    status: int = 200
    honour_range: bool = True
    served: int = field(default=0)


class ModelServer:
    """``with ModelServer() as server: server.routes["/m.pt"] = Route(body=...)``; ``server.url(path)``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    owner._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_for(self, path: str) -> list[str | None]:
        """The ``Range`` header of each request of ``path`` (None: a whole-file request)."""
        with self._lock:
            return [rng for p, rng in self.log if p == path]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        rng = handler.headers.get("Range")
        with self._lock:
            self.log.append((path, rng))
            route = self.routes.get(path)
        if route is None:
            self._reply(handler, 404, b"not found", "text/plain")
            return
        if route.redirect is not None:
            handler.send_response(302)
            handler.send_header("Location", route.redirect)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if route.status != 200:
            self._reply(handler, route.status, route.body, route.content_type)
            return
        body, start, status = route.body, 0, 200
        if rng and route.honour_range and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(body):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(body)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            status = 206
        handler.send_response(status)
        handler.send_header("Content-Type", route.content_type)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Connection", "close")
        if status == 206:
            shown = start if route.wrong_range_start is None else route.wrong_range_start
            handler.send_header("Content-Range", f"bytes {shown}-{len(body) - 1}/{len(body)}")
        if route.endless:
            handler.end_headers()
            while True:
                handler.wfile.write(body)
        length = len(body) - start if route.length is None else route.length
        if length >= 0:
            handler.send_header("Content-Length", str(length))
        handler.end_headers()
        handler.wfile.flush()
        if route.silent_s:
            time.sleep(route.silent_s)
            return
        data = body[start:]
        with self._lock:
            dropping = route.drop_after is not None and start == 0 and route.served < route.drops
            route.served += 1
        if dropping:
            assert route.drop_after is not None
            data = data[: route.drop_after]
        for offset in range(0, len(data), route.chunk):
            handler.wfile.write(data[offset : offset + route.chunk])
            handler.wfile.flush()
            if route.delay:
                time.sleep(route.delay)
        handler.close_connection = True

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)


# -- running slr-model as a user does ------------------------------------------------------------

#: The tiny checkpoint's 10 classes, named as a user of the seed's service would see them.
NAMES = ["привет", "спасибо", "пока", "да", "нет", "дом", "мама", "папа", "вода", "хлеб"]
MAPPING = {
    "sign2ord": {name: i for i, name in enumerate(NAMES)},
    "ord2sign": {str(i): name for i, name in enumerate(NAMES)},
    "class_names": NAMES,
}
CLI = [sys.executable, "-c", "import sys; from edge.commands.model import main; sys.exit(main())"]
#: Makes ``import torch`` fail in the child, as on a device without the train extra.
NO_TORCH = [
    sys.executable,
    "-c",
    "import sys; sys.modules['torch'] = None; from edge.commands.model import main; sys.exit(main())",
]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def env_for(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(SLOVO_MODEL_CACHE=str(cache), PYTHONPATH=str(REPO_ROOT), **extra)
    return env


def slr_model(
    args: list[str], cache: Path, *, cli: list[str] = CLI, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli, *args],
        cwd=REPO_ROOT,
        env=env_for(cache, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("slr-model: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def blobs(cache: Path) -> list[Path]:
    return (
        sorted(p for p in (cache / "blobs").rglob("*") if p.is_file()) if (cache / "blobs").exists() else []
    )
