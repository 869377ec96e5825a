"""The dashboard's ASGI app: the page, its API, the event streams and the metrics (Starlette).

``GET /`` the page · ``GET /api/status`` latest daemon status · ``GET /api/events`` SSE
(``prediction``, ``sign``, ``status``, and ``progress`` of an upload) · ``GET /api/preview`` SSE of
camera frames (the daemon makes them only while one is open) · ``GET /api/config`` what the page
needs to know (upload model, untrained flag, size limit) · ``POST /api/predict`` classify a clip ·
``GET /metrics`` Prometheus · ``GET /healthz`` 200 only while the daemon publishes and extracts
(503 while it says ``stopping`` or its status is stale) · ``GET``/``DELETE /api/transcript`` the
shared transcript (:mod:`edge.web.transcript`) · ``POST /login`` / ``POST /logout`` the token form's
session cookie. The page and the login form are rendered in the negotiated language
(:mod:`edge.web.i18n`). Every error is ``{"error": "..."}`` with a 4xx/5xx code. No route takes a
path from the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge import __version__
from edge.web import i18n
from edge.web.bridge import DaemonBridge
from edge.web.metrics import STATUS_STALE_S, WebMetrics
from edge.web.security import Auth, SecurityMiddleware, client_address, session_cookie
from edge.web.transcript import Transcript
from edge.web.uploads import ClipClassifier, UploadError, read_small_body

log = logging.getLogger(__name__)

STATIC = resources.files("edge.web").joinpath("static")
SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}
#: The login form is one field; a bigger or slower body is not a login.
LOGIN_BODY_BYTES = 4096
LOGIN_BODY_TIMEOUT_S = 10.0
#: Default minimum confidence: the headline says "уверен" at or above it, the transcript lists those.
DEFAULT_MIN_CONFIDENCE = 0.5
TRANSCRIPT_FLUSH_S = 1.0


@dataclass
class WebSettings:
    """What :func:`build_app` needs; ``slr-web`` fills it from its options."""

    endpoint: str = "tcp://127.0.0.1:5556"
    model: str | None = None
    model_info: dict[str, Any] | None = None  # from clip_worker --describe
    token: str | None = None
    loopback_only: bool = True
    secure_cookie: bool = False
    max_upload_bytes: int = 50 * 1024 * 1024
    upload_timeout_s: float = 600.0
    #: Slowest average upload rate accepted (bytes/s), after a grace period: a stalled body is cut.
    upload_min_rate: float = 32 * 1024
    curve_keys: tuple[bytes, bytes, bytes] | None = None
    #: Where the transcript is kept (None: in memory only, for tests and embedding).
    state_dir: Path | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE


def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    body = {"error": message} if code is None else {"error": message, "code": code}
    return JSONResponse(body, status_code=status)


def build_app(settings: WebSettings) -> Starlette:
    """The app with its bridge (``app.state.bridge``) and classifier (``app.state.classifier``)."""
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
        )
        if settings.model
        else None
    )
    auth = Auth(settings.token, secure_cookie=settings.secure_cookie)

    transcript = Transcript(settings.state_dir)
    metrics.transcript_entries.set(len(transcript.entries))

    def on_message(topic: str, payload: dict[str, Any]) -> None:
        entry = transcript.add(topic, payload)
        if entry is not None:
            bridge.broadcast("transcript", entry)
            metrics.transcript_entries.set(len(transcript.entries))

    bridge.listeners.append(on_message)
    bridge.initial_events.append(lambda: [("transcript-all", {"entries": transcript.snapshot()})])

    def localized(request: Request, template: str) -> Response:
        """The template in the negotiated language; ``?lang=xx`` switches and is remembered."""
        chosen = request.query_params.get("lang")
        if chosen is not None:
            lang = chosen if chosen in i18n.LANGUAGES else i18n.DEFAULT
            response: Response = RedirectResponse(request.url.path, status_code=303)
            response.headers["set-cookie"] = i18n.cookie_header(lang)
            return response
        lang = i18n.negotiate(request.headers.get("accept-language", ""), request.cookies.get(i18n.COOKIE))
        headers = {"content-language": lang, "vary": "cookie, accept-language"}
        return HTMLResponse(i18n.render(template, lang), headers=headers)

    async def page(request: Request) -> Response:
        return localized(request, "index.html")

    async def favicon(_: Request) -> Response:
        return FileResponse(str(STATIC.joinpath("favicon.svg")), media_type="image/svg+xml")

    async def login_page(request: Request) -> Response:
        if request.method == "GET":
            return localized(request, "login.html")
        client = client_address(request.scope)
        wait = auth.limiter.retry_after(client)
        if wait is not None:
            refused = _error(429, f"too many failed logins; try again in {wait} s")
            refused.headers["retry-after"] = str(wait)
            return refused
        try:
            body = await read_small_body(request, LOGIN_BODY_BYTES, LOGIN_BODY_TIMEOUT_S)
        except UploadError as exc:
            return _error(exc.status, str(exc), exc.code)
        # The form is urlencoded UTF-8; a token that does not decode simply does not match.
        try:
            fields = parse_qsl(body.decode("utf-8", "replace"), max_num_fields=4, errors="replace")
        except ValueError:  # more fields than a login form has
            return _error(400, "the login form has one field, 'token'")
        given = next((value for key, value in fields if key == "token"), "")
        if not auth.token_matches(given):
            auth.limiter.failed(client)
            return RedirectResponse("/login#failed", status_code=303)
        auth.limiter.succeeded(client)
        response = RedirectResponse("/", status_code=303)
        response.headers["set-cookie"] = auth.cookie(auth.sessions.new())
        return response

    async def logout(request: Request) -> Response:
        auth.sessions.drop(session_cookie(request.scope))
        response = RedirectResponse("/login", status_code=303)
        response.headers["set-cookie"] = auth.cleared_cookie()
        return response

    async def api_status(_: Request) -> Response:
        if bridge.status is None:
            return _error(503, "no status received from the daemon yet")
        return JSONResponse({**bridge.status, "age_s": round(bridge.status_age() or 0.0, 3)})

    async def api_config(_: Request) -> Response:
        info = settings.model_info or {}
        return JSONResponse(
            {
                "version": __version__,
                "upload": classifier is not None,
                "upload_model": info.get("name"),
                "untrained": bool(info.get("untrained", False)),
                "upload_model_sha256": info.get("sha256"),
                "max_upload_bytes": settings.max_upload_bytes,
                "min_confidence": settings.min_confidence,
                "login": settings.token is not None,
                "status_stale_s": STATUS_STALE_S,
            }
        )

    async def api_transcript(request: Request) -> Response:
        if request.method == "DELETE":  # same-origin only: the security middleware checks it
            cleared = transcript.clear()
            metrics.transcript_entries.set(0)
            bridge.broadcast("transcript-clear", {"cleared": cleared})
            log.info("transcript cleared (%d entries)", cleared)
            return JSONResponse({"cleared": cleared})
        return JSONResponse({"entries": transcript.snapshot(), "min_confidence": settings.min_confidence})

    async def api_events(_: Request) -> Response:
        return StreamingResponse(bridge.events(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def api_preview(_: Request) -> Response:
        return StreamingResponse(bridge.previews(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def api_predict(request: Request) -> Response:
        return await run_upload(request, captions=False)

    async def api_captions(request: Request) -> Response:
        return await run_upload(request, captions=True)

    async def run_upload(request: Request, captions: bool) -> Response:
        """One clip through the worker: a top-5 (``/api/predict``) or episodes and captions."""
        if classifier is None:
            return _error(404, "uploads are off: start slr-web with --model MODEL.onnx", "uploads_off")
        progress = functools.partial(bridge.broadcast, "progress")
        try:
            result = await classifier.classify(
                request, progress, captions=settings.min_confidence if captions else None
            )
        except UploadError as exc:
            metrics.uploads.labels("busy" if exc.status == 409 else "refused").inc()
            return _error(exc.status, str(exc), exc.code)
        metrics.uploads.labels("ok").inc()
        result["source"] = "upload"  # the server's temp path means nothing to the user
        return JSONResponse(result)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        ok, reason = bridge.healthy()
        return JSONResponse({"ok": ok, "reason": reason}, status_code=200 if ok else 503)

    async def flush_transcript() -> None:
        while True:
            await asyncio.sleep(TRANSCRIPT_FLUSH_S)
            await transcript.flush_async()

    @asynccontextmanager
    async def lifespan(_: Starlette):
        await bridge.start()
        flusher = asyncio.create_task(flush_transcript(), name="transcript-flush")
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await bridge.stop()
            transcript.flush()

    routes = [
        Route("/", page),
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/status", api_status),
        Route("/api/config", api_config),
        Route("/api/events", api_events),
        Route("/api/preview", api_preview),
        Route("/api/predict", api_predict, methods=["POST"]),
        Route("/api/captions", api_captions, methods=["POST"]),
        Route("/api/transcript", api_transcript, methods=["GET", "DELETE"]),
        Route("/favicon.ico", favicon),
        Route("/metrics", metrics_endpoint),
        Route("/healthz", healthz),
        Mount("/static", app=StaticFiles(packages=[("edge.web", "static")]), name="static"),
    ]

    async def http_error(_: Request, exc: Exception) -> Response:
        return _error(getattr(exc, "status_code", 500), str(getattr(exc, "detail", "error")))

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.bridge = bridge
    app.state.classifier = classifier
    app.state.metrics = metrics
    app.state.auth = auth
    app.state.transcript = transcript
    app.add_middleware(SecurityMiddleware, auth=auth, loopback_only=settings.loopback_only)
    return app
