"""The dashboard's ASGI app (Starlette): assembles the routers of :mod:`edge.web.routes`.

``GET /`` the page (:mod:`~edge.web.routes.pages`) · ``/api/status``, ``/api/config``,
``/api/events``, ``/api/preview``, ``/metrics``, ``/healthz`` (:mod:`~edge.web.routes.live`) ·
``POST /api/predict``, ``/api/captions`` (:mod:`~edge.web.routes.uploads`) · ``GET``/``DELETE
/api/transcript`` (:mod:`~edge.web.routes.transcript`) · ``/login``, ``/logout``
(:mod:`~edge.web.routes.auth`). Every error is ``{"error": "..."}`` with a 4xx/5xx code. No route
takes a path from the user. :class:`edge.web.security.SecurityMiddleware` wraps them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from edge import __version__
from edge.captions.cues import DEFAULT_MIN_CONFIDENCE
from edge.transport.publisher import DEFAULT_ENDPOINT
from edge.web.bridge import DaemonBridge
from edge.web.metrics import STATUS_STALE_S, WebMetrics
from edge.web.routes import auth, live, pages, transcript, uploads
from edge.web.routes.common import error
from edge.web.security import Auth, SecurityMiddleware
from edge.web.transcript import Transcript
from edge.web.uploads import DEFAULT_MAX_BYTES, DEFAULT_MIN_RATE, DEFAULT_TIMEOUT_S, ClipClassifier
from edge.web.warm_worker import DEFAULT_IDLE_S

__all__ = ["DEFAULT_MIN_CONFIDENCE", "WebSettings", "build_app"]


@dataclass
class WebSettings:
    """What :func:`build_app` needs; ``slr-web`` fills it from its options (:mod:`edge.web.options`)."""

    endpoint: str = DEFAULT_ENDPOINT
    model: str | None = None
    model_info: dict[str, Any] | None = None  # from clip_worker --describe
    token: str | None = None
    loopback_only: bool = True
    secure_cookie: bool = False
    max_upload_bytes: int = DEFAULT_MAX_BYTES
    upload_timeout_s: float = DEFAULT_TIMEOUT_S
    #: Slowest average upload rate accepted (bytes/s), after a grace period: a stalled body is cut.
    upload_min_rate: float = DEFAULT_MIN_RATE
    #: How long the warm upload worker is kept after a clip (0: a process per clip).
    worker_idle_s: float = DEFAULT_IDLE_S
    curve_keys: tuple[bytes, bytes, bytes] | None = None
    #: Where the transcript is kept (None: in memory only, for tests and embedding).
    state_dir: Path | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE


def page_config(settings: WebSettings, uploads_on: bool) -> dict[str, Any]:
    """``GET /api/config``: what the page needs to know about this server."""
    info = settings.model_info or {}
    return {
        "version": __version__,
        "upload": uploads_on,
        "upload_model": info.get("name"),
        "untrained": bool(info.get("untrained", False)),
        "upload_model_sha256": info.get("sha256"),
        "max_upload_bytes": settings.max_upload_bytes,
        "min_confidence": settings.min_confidence,
        "login": settings.token is not None,
        "status_stale_s": STATUS_STALE_S,
    }


async def _http_error(_: Request, exc: Exception) -> Response:
    return error(getattr(exc, "status_code", 500), str(getattr(exc, "detail", "error")))


def build_app(settings: WebSettings) -> Starlette:
    """The app; ``app.state`` holds its parts (bridge, classifier, metrics, auth, transcript) and
    ``stopping``, an :class:`asyncio.Event` the server sets when told to stop (running jobs end)."""
    bridge_ref: list[DaemonBridge] = []
    metrics = WebMetrics(
        lambda: (bridge_ref[0].status, bridge_ref[0].status_age()) if bridge_ref else (None, None)
    )
    bridge = DaemonBridge(settings.endpoint, metrics, curve_keys=settings.curve_keys)
    bridge_ref.append(bridge)
    classifier = (
        ClipClassifier(
            settings.model,
            max_bytes=settings.max_upload_bytes,
            timeout_s=settings.upload_timeout_s,
            min_rate=settings.upload_min_rate,
            worker_idle_s=settings.worker_idle_s,
        )
        if settings.model
        else None
    )
    if classifier is not None:
        metrics.watch_worker(classifier.warm)
    access = Auth(settings.token, secure_cookie=settings.secure_cookie)
    store = Transcript(settings.state_dir)
    transcript.connect(store, bridge, metrics)
    stopping = asyncio.Event()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await bridge.start()
        saver = asyncio.create_task(transcript.keep_saved(store), name="transcript-flush")
        try:
            yield
        finally:
            stopping.set()
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
            await bridge.stop()
            if classifier is not None:
                await classifier.close()
            store.flush()

    routes: list[BaseRoute] = [
        *pages.routes(),
        *auth.routes(access),
        *live.routes(bridge, metrics, lambda: page_config(settings, classifier is not None)),
        *uploads.routes(classifier, bridge, metrics, stopping, settings.min_confidence),
        *transcript.routes(store, bridge, metrics, settings.min_confidence),
        Mount("/static", app=StaticFiles(packages=[("edge.web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.bridge = bridge
    app.state.classifier = classifier
    app.state.metrics = metrics
    app.state.auth = access
    app.state.transcript = store
    app.state.stopping = stopping
    app.add_middleware(SecurityMiddleware, auth=access, loopback_only=settings.loopback_only)
    return app
