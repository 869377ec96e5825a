"""slr-web's one warm classification process (issue 29): started by the first upload, kept between
uploads, let go after an idle time.

A fresh :mod:`edge.web.clip_worker` per upload spent ~2 s of every answer importing, starting
MediaPipe and building the ONNX session, for ~0.1 s of inference. This keeps one such process
(``--serve``: jobs on stdin, answers on stdout) alive between uploads, so an upload costs about
its keypoints. It stays isolated as before: its own low-priority process, one job at a time (the
caller's slot), killed on a crash, a hang, a client gone or a stop, and the next job then starts
a fresh one. After ``idle_s`` without a job its stdin is closed (it exits between jobs) so a
device does not hold its memory all day; ``idle_s`` 0 lets it go after every job (a process per
upload, as before). Nothing here blocks the event loop: every wait is awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: slr-web's default ``--worker-idle-s``: a few minutes covers a person trying several clips.
DEFAULT_IDLE_S = 300.0
#: How long a let-go worker may take to exit after its stdin closes before it is killed.
EXIT_GRACE_S = 10.0


class WarmWorker:
    """One ``clip_worker --serve`` process at most, started when a job needs it.

    ``command`` starts it (no shell; our model path, never a user string); ``line_limit`` bounds
    each line read from its stdout (the caller reads it: :meth:`job` returns the process).
    """

    def __init__(self, command: Sequence[str], *, idle_s: float, line_limit: int) -> None:
        self.command = tuple(command)
        self.idle_s = idle_s
        self.line_limit = line_limit
        #: Processes started so far (a warm upload starts none).
        self.starts = 0
        self._proc: asyncio.subprocess.Process | None = None
        #: True from a job sent until it was answered or its worker killed.
        self._busy = False
        self._idle: asyncio.TimerHandle | None = None
        self._letting_go: set[asyncio.Task[None]] = set()

    @property
    def pid(self) -> int | None:
        """The running worker's pid, or None when there is none."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def rss_bytes(self) -> int:
        """The worker's resident memory (0 when there is none): what keeping it warm costs."""
        pid = self.pid
        if pid is None:
            return 0
        try:
            resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile, or not Linux
            return 0
        return resident_pages * os.sysconf("SC_PAGE_SIZE")

    async def job(self, message: dict[str, Any]) -> asyncio.subprocess.Process:
        """Send ``message`` as one job line to the worker, started first if none is running.

        A worker that died meanwhile gets a fresh one; a write that fails (it died just now) is
        left to the caller's reader, which then sees the end of its output.
        """
        self._cancel_idle()
        self._busy = True
        proc = self._proc
        if proc is None or proc.returncode is not None:
            proc = self._proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env={**os.environ, "OPENCV_LOG_LEVEL": "ERROR"},
                limit=self.line_limit,
            )
            self.starts += 1
            log.debug("clip worker %d started", proc.pid)
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(json.dumps(message).encode("utf-8") + b"\n")
            await proc.stdin.drain()
        return proc

    async def finished(self) -> None:
        """The job was answered: keep the worker for ``idle_s`` (0: let it go now)."""
        self._busy = False
        if self.idle_s <= 0:
            await self.let_go()
            return
        self._cancel_idle()
        self._idle = asyncio.get_running_loop().call_later(self.idle_s, self._let_go_in_background)

    async def kill(self, proc: asyncio.subprocess.Process) -> None:
        """End ``proc`` (a job's worker) now: it crashed, hung, lost its client, or slr-web is stopping."""
        if proc is self._proc:
            self._cancel_idle()
            self._proc, self._busy = None, False
        await _kill(proc)

    async def let_go(self) -> None:
        """Close the worker's stdin (it exits between jobs); kill it if it lingers."""
        self._cancel_idle()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), EXIT_GRACE_S)
        except TimeoutError:
            log.warning("clip worker %d did not exit when let go; killed", proc.pid)
            await _kill(proc)
        else:
            log.debug("clip worker %d let go after %.0f s idle", proc.pid, self.idle_s)

    async def close(self) -> None:
        """slr-web stops: no worker outlives it (an idle one exits, a busy one is killed)."""
        if self._busy and self._proc is not None:
            await self.kill(self._proc)
        await self.let_go()
        await asyncio.gather(*self._letting_go, return_exceptions=True)

    def _let_go_in_background(self) -> None:
        self._idle = None
        task = asyncio.ensure_future(self.let_go())
        self._letting_go.add(task)  # a reference until done: an unreferenced task may be collected
        task.add_done_callback(self._letting_go.discard)

    def _cancel_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()
