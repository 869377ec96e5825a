"""``GET``/``DELETE /api/transcript``: the shared transcript (:mod:`edge.web.transcript`), and its wiring.

Entries come from the bridge's messages (:func:`connect`); a new event stream gets the whole list
first; :func:`keep_saved` writes changes at most once a second. ``DELETE`` (same-origin only: the
security middleware checks it) is answered 200 only once the empty list is on disk: a state
directory that is full (507) or failing (500) leaves every entry in place, in memory and on disk,
so what a restart shows is what the page showed.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.web.bridge import DaemonBridge
from edge.web.metrics import WebMetrics
from edge.web.routes.common import error
from edge.web.transcript import SaveError, Transcript

log = logging.getLogger(__name__)
#: Seconds between two writes of a changed transcript (a power cut loses at most this much).
FLUSH_S = 1.0


def connect(transcript: Transcript, bridge: DaemonBridge, metrics: WebMetrics) -> None:
    """Feed the transcript from the bridge's messages and give each new event stream the list."""
    metrics.transcript_entries.set(len(transcript.entries))

    def on_message(topic: str, payload: dict[str, Any]) -> None:
        entry = transcript.add(topic, payload)
        if entry is not None:
            bridge.broadcast("transcript", entry)
            metrics.transcript_entries.set(len(transcript.entries))

    bridge.listeners.append(on_message)
    bridge.initial_events.append(lambda: [("transcript-all", {"entries": transcript.snapshot()})])


async def keep_saved(transcript: Transcript) -> None:
    """Write the transcript when it changed, once a second, until cancelled."""
    while True:
        await asyncio.sleep(FLUSH_S)
        await transcript.flush_async()


async def entries(
    request: Request,
    *,
    transcript: Transcript,
    bridge: DaemonBridge,
    metrics: WebMetrics,
    min_confidence: float,
) -> Response:
    if request.method != "DELETE":
        return JSONResponse({"entries": transcript.snapshot(), "min_confidence": min_confidence})
    try:
        cleared = await transcript.clear_async()
    except SaveError as exc:
        log.error("transcript not cleared: %s", exc)
        return error(507 if exc.full else 500, f"the transcript was not cleared: {exc}")
    metrics.transcript_entries.set(len(transcript.entries))
    bridge.broadcast("transcript-clear", {"cleared": cleared})
    log.info("transcript cleared (%d entries)", cleared)
    return JSONResponse({"cleared": cleared})


def routes(
    transcript: Transcript, bridge: DaemonBridge, metrics: WebMetrics, min_confidence: float
) -> list[Route]:
    handler = partial(
        entries, transcript=transcript, bridge=bridge, metrics=metrics, min_confidence=min_confidence
    )
    return [Route("/api/transcript", handler, methods=["GET", "DELETE"])]
