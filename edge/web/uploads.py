"""``POST /api/predict``: receive one clip, classify it in a child process, delete it.

* **Streaming with a limit**: the multipart body is parsed as it arrives and the ``file`` part is
  written to a private temporary directory; the request is refused (413) as soon as it passes the
  limit (a declared ``Content-Length`` over it is refused before reading anything), so a huge
  upload never sits in memory or fills the disk.
* **One at a time**: the device has 2 cores and the daemon comes first, so a second clip while
  one is being received or classified gets 409 ``busy`` at once.
* **Off the event loop**: :mod:`edge.web.clip_worker` runs as a low-priority child process
  (``asyncio`` subprocess, no shell; its arguments are our model path and our temp file name,
  never a user string); the page stays live and gets ``progress`` events meanwhile.
* **Validation by decoding**: the worker opens the file with FFmpeg and decodes the first frame;
  the file name and extension the browser sent are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_TIMEOUT_S = 600.0
FIELD = b"file"


class UploadError(Exception):
    """A refused upload: ``status`` is the HTTP code, the message goes to the user as is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Part:
    name: bytes | None = None
    header_field: bytes = b""
    header_value: bytes = b""


class _FileSink:
    """Callbacks for :class:`MultipartParser` that write the ``file`` part to ``path``, bounded."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.parts = 0
        self._part = _Part()
        self._handle = path.open("wb")

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._data,
        }

    def close(self) -> None:
        self._handle.close()

    def _begin(self) -> None:
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]

    def _header_end(self) -> None:
        if self._part.header_field.lower() == b"content-disposition":
            _, params = parse_options_header(self._part.header_value)
            self._part.name = params.get(b"name")
            if self._part.name == FIELD:
                self.parts += 1
                if self.parts > 1:
                    raise UploadError(400, "send one file per request")
        self._part.header_field = self._part.header_value = b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part.name != FIELD:
            return
        self.size += end - start
        if self.size > self.max_bytes:
            raise UploadError(413, f"the file is larger than the {self.max_bytes / 2**20:.0f} MB limit")
        self._handle.write(data[start:end])


async def receive_file(request: Any, directory: Path, max_bytes: int) -> Path:
    """Stream the multipart ``file`` field of ``request`` into ``directory``; returns its path."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(415, "send the clip as multipart/form-data with a field named 'file'")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise UploadError(413, f"the file is larger than the {max_bytes / 2**20:.0f} MB limit")
    path = directory / "clip"  # our name: nothing the browser sent reaches a path
    sink = _FileSink(path, max_bytes)
    # python-multipart types its callbacks as a TypedDict; ours is the same mapping, built per upload.
    parser = MultipartParser(params[b"boundary"], sink.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as exc:  # malformed multipart body
        raise UploadError(400, f"malformed upload: {exc}") from None
    finally:
        sink.close()
    if not sink.parts:
        raise UploadError(400, "no field named 'file' in the upload")
    if sink.size == 0:
        raise UploadError(400, "the file is empty")
    return path


class ClipClassifier:
    """Runs one clip at a time through :mod:`edge.web.clip_worker`."""

    def __init__(
        self,
        model: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        tmp_root: str | None = None,
    ) -> None:
        self.model = model
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.tmp_root = tmp_root
        self.busy = False
        #: pid of the running worker, for the benchmarks (memory while classifying).
        self.worker_pid: int | None = None

    async def classify(self, request: Any, progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Receive, classify and delete one clip; raises :class:`UploadError` with the user's message."""
        if self.busy:
            raise UploadError(409, "busy: another clip is being classified; try again in a moment")
        self.busy = True
        directory = Path(tempfile.mkdtemp(prefix="slr-web-", dir=self.tmp_root))  # mode 0700
        try:
            progress({"state": "receiving"})
            path = await receive_file(request, directory, self.max_bytes)
            progress({"state": "extracting", "done": 0, "total": None})
            return await self._run_worker(path, progress)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            self.busy = False
            progress({"state": "done"})

    async def _run_worker(self, path: Path, progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge.web.clip_worker",
            self.model,
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "OPENCV_LOG_LEVEL": "ERROR"},
        )
        self.worker_pid = proc.pid
        try:
            outcome = await asyncio.wait_for(self._read_worker(proc, progress), self.timeout_s)
        except asyncio.TimeoutError:
            raise UploadError(504, f"classifying took longer than {self.timeout_s:.0f} s; gave up") from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            self.worker_pid = None
        if "result" in outcome:
            return outcome["result"]
        if "error" in outcome:
            raise UploadError(422, outcome["error"])
        raise UploadError(500, f"the classifier stopped unexpectedly (exit code {proc.returncode})")

    async def _read_worker(
        self, proc: asyncio.subprocess.Process, progress: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        assert proc.stdout is not None
        outcome: dict[str, Any] = {}
        async for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "progress" in message:
                progress({"state": "extracting", "done": message["progress"], "total": message.get("total")})
            else:
                outcome = message
        await proc.wait()
        return outcome


async def describe_model(model: str) -> dict[str, Any]:
    """Ask a worker process for the model's name and untrained flag (validates the file too)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge.web.clip_worker",
        model,
        "--describe",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    lines = out.decode("utf-8", "replace").strip().splitlines()
    message = json.loads(lines[-1]) if lines else {}
    if "model" not in message:
        raise ValueError(message.get("error", f"cannot load model {model!r}"))
    return message["model"]
