"""uvicorn's server, made to tell the app at the stop signal that it is stopping.

uvicorn waits ``timeout_graceful_shutdown`` seconds for running requests and then cancels them,
and it logs every cancelled request as "Exception in ASGI application" with a ``CancelledError``
traceback: SIGTERM during a captions job did exactly that. Setting the app's ``stopping`` event
at the signal lets such a job end at once (its worker killed, its client answered 503) before
anything is cancelled.
"""

from __future__ import annotations

import asyncio
import socket
from types import FrameType

import uvicorn


class StoppingServer(uvicorn.Server):
    """A :class:`uvicorn.Server` that sets ``stopping`` (an :class:`asyncio.Event`) on SIGTERM/SIGINT."""

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self._stopping = stopping
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)  # safe from a signal handler
