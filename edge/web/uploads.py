"""``POST /api/predict``: receive one clip, classify it in a child process, delete it.

* **Streaming with limits**: the multipart body is parsed as it arrives and the ``file`` part is
  written to a private temporary directory. Every byte of the body counts towards the limit (a
  huge text field is refused as early as a huge file: 413; a declared ``Content-Length`` over it
  is refused before reading anything), as do the number of parts, the size of their headers and
  the boundary's length (RFC 2046: at most 70 characters), so nothing sits in memory or fills
  the disk.
* **By time too**: after a short grace period the body must keep arriving at ``min_rate`` bytes/s
  on average (408 otherwise), so a client that sends 16 bytes and stalls is cut off within
  seconds instead of holding anything for as long as it likes.
* **One classification at a time**: the device has 2 cores and the daemon comes first. The worker
  slot is taken only once a body has fully arrived (a slow or stalled upload never holds it), a
  clip arriving while another is classified gets 409 ``busy``, and at most ``MAX_RECEIVING``
  uploads may be arriving at once.
* **Off the event loop**: :mod:`edge.web.clip_worker` runs as a low-priority child process
  (``asyncio`` subprocess, no shell; its arguments are our model path and our temp file name,
  never a user string); the page stays live and gets ``progress`` events meanwhile. If the client
  goes away mid-classification the worker is killed and the slot is free at once.
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
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_TIMEOUT_S = 600.0
#: Slowest average upload rate accepted once ``GRACE_S`` has passed (a phone on poor Wi-Fi manages more).
DEFAULT_MIN_RATE = 32 * 1024
GRACE_S = 10.0
#: Uploads that may be arriving at once (each may take ``max_bytes`` of disk until refused).
MAX_RECEIVING = 3
#: Room for the multipart framing and the small fields a browser adds next to the file.
OVERHEAD_BYTES = 64 * 1024
MAX_PARTS = 16
MAX_PART_HEADER_BYTES = 8192
MAX_BOUNDARY = 70
#: Loading the upload model at start-up (a FIFO or a stuck file system must not hang slr-web).
DESCRIBE_TIMEOUT_S = 300.0
FIELD = b"file"


#: The stable ``code`` of each refusal, by HTTP status: the page shows its own translated text for
#: it (the message is English, for logs and API clients).
ERROR_CODES = {
    400: "bad_upload",
    408: "too_slow",
    409: "busy",
    413: "too_big",
    415: "bad_form",
    422: "unreadable",
    500: "failed",
    504: "timeout",
}


class UploadError(Exception):
    """A refused upload: ``status`` is the HTTP code, the message goes to the user as is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = ERROR_CODES.get(status, "failed")


class ClientGone(UploadError):
    """The client disconnected before its answer: nobody reads the response."""

    def __init__(self) -> None:
        super().__init__(400, "the client went away before the upload was answered")


def _too_big(limit: int) -> UploadError:
    return UploadError(413, f"the file is larger than the {limit / 2**20:.0f} MB limit")


async def body_chunks(
    request: Any, *, max_total: int, min_rate: float, grace_s: float = GRACE_S, limit_shown: int | None = None
) -> AsyncIterator[bytes]:
    """The request body as it arrives, bounded in size (413) and by time (408; see the module).

    Reads the ASGI ``receive`` channel directly so that a wait can time out and a disconnect is
    seen (:class:`ClientGone`).
    """
    start = time.monotonic()
    received = 0
    while True:
        left = start + grace_s + received / min_rate - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            message = await asyncio.wait_for(request.receive(), left)
        except TimeoutError:
            raise UploadError(
                408, f"the upload arrived too slowly (under {min_rate / 1024:.0f} KB/s); try again"
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > max_total:
            raise _too_big(limit_shown if limit_shown is not None else max_total)
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def read_small_body(request: Any, max_bytes: int, timeout_s: float) -> bytes:
    """A whole small body (a form), at most ``max_bytes`` (413) within ``timeout_s`` (408)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UploadError(413, f"the request body is larger than {max_bytes} bytes")
    parts = []
    chunks = body_chunks(request, max_total=max_bytes, min_rate=1.0, grace_s=timeout_s)
    try:
        async for chunk in chunks:
            parts.append(chunk)
    except UploadError as exc:
        if exc.status == 413:
            raise UploadError(413, f"the request body is larger than {max_bytes} bytes") from None
        raise
    return b"".join(parts)


async def wait_for_disconnect(request: Any) -> None:
    """Returns when the client of a fully read request goes away (then nobody wants the answer)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0)


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
        self.all_parts = 0
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
        self.all_parts += 1
        if self.all_parts > MAX_PARTS:
            raise UploadError(400, f"too many parts in the upload (at most {MAX_PARTS})")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_field += data[start:end]
        self._check_header()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self._part.header_field) + len(self._part.header_value) > MAX_PART_HEADER_BYTES:
            raise UploadError(400, "a part header of the upload is too long")

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
            raise _too_big(self.max_bytes)
        self._handle.write(data[start:end])


async def receive_file(
    request: Any, directory: Path, max_bytes: int, min_rate: float = DEFAULT_MIN_RATE
) -> Path:
    """Stream the multipart ``file`` field of ``request`` into ``directory``; returns its path."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(415, "send the clip as multipart/form-data with a field named 'file'")
    boundary = params[b"boundary"]
    if not 0 < len(boundary) <= MAX_BOUNDARY:
        raise UploadError(400, f"the multipart boundary must be 1 to {MAX_BOUNDARY} characters")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + OVERHEAD_BYTES:
        raise _too_big(max_bytes)
    path = directory / "clip"  # our name: nothing the browser sent reaches a path
    sink = _FileSink(path, max_bytes)
    try:
        # python-multipart types its callbacks as a TypedDict; ours is the same mapping, built per upload.
        parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
        chunks = body_chunks(
            request, max_total=max_bytes + OVERHEAD_BYTES, min_rate=min_rate, limit_shown=max_bytes
        )
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as exc:  # malformed multipart body
        raise UploadError(400, f"malformed upload: {str(exc)[:200]}") from None
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
        min_rate: float = DEFAULT_MIN_RATE,
        tmp_root: str | None = None,
    ) -> None:
        self.model = model
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.min_rate = min_rate
        self.tmp_root = tmp_root
        #: The worker slot: held from a fully received body until its worker has ended.
        self.busy = False
        #: Uploads being received now (none of them holds the worker slot).
        self.receiving = 0
        #: pid of the running worker, for the benchmarks (memory while classifying).
        self.worker_pid: int | None = None

    async def classify(
        self, request: Any, progress: Callable[[dict[str, Any]], None], captions: float | None = None
    ) -> dict[str, Any]:
        """Receive, classify and delete one clip; raises :class:`UploadError` with the user's message.

        With ``captions`` (a minimum confidence) the clip is a long video cut into episodes with
        subtitles (the worker's ``--captions``): the same slot, one job at a time either way.
        """
        if self.busy:
            raise UploadError(409, "busy: another clip is being classified; try again in a moment")
        if self.receiving >= MAX_RECEIVING:
            raise UploadError(409, "busy: other clips are being uploaded; try again in a moment")
        self.receiving += 1
        directory = Path(tempfile.mkdtemp(prefix="slr-web-", dir=self.tmp_root))  # mode 0700
        try:
            try:
                progress({"state": "receiving"})
                path = await receive_file(request, directory, self.max_bytes, self.min_rate)
            finally:
                self.receiving -= 1
            if self.busy:  # another upload finished arriving first
                raise UploadError(409, "busy: another clip is being classified; try again in a moment")
            self.busy = True
            try:
                progress({"state": "extracting", "done": 0, "total": None})
                return await self._run_worker(path, progress, request, captions)
            finally:
                self.busy = False
                progress({"state": "done"})
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    async def _run_worker(
        self,
        path: Path,
        progress: Callable[[dict[str, Any]], None],
        request: Any = None,
        captions: float | None = None,
    ) -> dict[str, Any]:
        mode = [] if captions is None else ["--captions", repr(float(captions))]  # our number, not the user's
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge.web.clip_worker",
            self.model,
            str(path),
            *mode,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "OPENCV_LOG_LEVEL": "ERROR"},
        )
        self.worker_pid = proc.pid
        reader = asyncio.ensure_future(self._read_worker(proc, progress))
        watcher = asyncio.ensure_future(
            wait_for_disconnect(request) if request is not None else asyncio.Event().wait()
        )
        try:
            await asyncio.wait({reader, watcher}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done() and not reader.done():
                log.info("the client went away during classification; worker %d stopped", proc.pid)
                raise ClientGone
            if not reader.done():
                raise UploadError(504, f"classifying took longer than {self.timeout_s:.0f} s; gave up")
            outcome = reader.result()
        finally:
            for task in (reader, watcher):
                task.cancel()
            await asyncio.gather(reader, watcher, return_exceptions=True)
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
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), DESCRIBE_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise ValueError(f"loading model {model!r} took over {DESCRIBE_TIMEOUT_S:.0f} s; gave up") from None
    lines = out.decode("utf-8", "replace").strip().splitlines()
    message = json.loads(lines[-1]) if lines else {}
    if "model" not in message:
        raise ValueError(message.get("error", f"cannot load model {model!r}"))
    return message["model"]
