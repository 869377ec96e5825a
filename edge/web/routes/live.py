"""What the daemon is doing: ``/api/status``, ``/api/config``, the event streams, health and metrics.

``GET /api/status`` latest daemon status · ``GET /api/events`` SSE (``prediction``, ``sign``,
``status``, and ``progress`` of an upload) · ``GET /api/preview`` SSE of camera frames (the daemon
makes them only while one is open) · ``GET /api/config`` what the page needs to know ·
``GET /metrics`` Prometheus · ``GET /healthz`` 200 only while the daemon publishes and extracts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edge.web.bridge import DaemonBridge
from edge.web.metrics import WebMetrics
from edge.web.routes.common import SSE_HEADERS, error


async def status(_: Request, bridge: DaemonBridge) -> Response:
    if bridge.status is None:
        return error(503, "no status received from the daemon yet")
    return JSONResponse({**bridge.status, "age_s": round(bridge.status_age() or 0.0, 3)})


async def config(_: Request, page_config: Callable[[], dict[str, Any]]) -> Response:
    return JSONResponse(page_config())


async def events(_: Request, bridge: DaemonBridge) -> Response:
    return StreamingResponse(bridge.events(), media_type="text/event-stream", headers=SSE_HEADERS)


async def preview(_: Request, bridge: DaemonBridge) -> Response:
    return StreamingResponse(bridge.previews(), media_type="text/event-stream", headers=SSE_HEADERS)


async def metrics_text(_: Request, metrics: WebMetrics) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def healthz(_: Request, bridge: DaemonBridge) -> Response:
    ok, reason = bridge.healthy()
    return JSONResponse({"ok": ok, "reason": reason}, status_code=200 if ok else 503)


def routes(
    bridge: DaemonBridge, metrics: WebMetrics, page_config: Callable[[], dict[str, Any]]
) -> list[Route]:
    """``page_config`` builds ``/api/config``'s answer (the app knows the settings it is made of)."""
    return [
        Route("/api/status", partial(status, bridge=bridge)),
        Route("/api/config", partial(config, page_config=page_config)),
        Route("/api/events", partial(events, bridge=bridge)),
        Route("/api/preview", partial(preview, bridge=bridge)),
        Route("/metrics", partial(metrics_text, metrics=metrics)),
        Route("/healthz", partial(healthz, bridge=bridge)),
    ]
