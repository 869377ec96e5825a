"""What every route module shares: the JSON error shape and the event-stream headers."""

from __future__ import annotations

from starlette.responses import JSONResponse

#: Event streams must reach the browser as they are written: no caching, no proxy buffering.
SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def error(status: int, message: str, code: str | None = None) -> JSONResponse:
    """Every error the API answers: ``{"error": message}`` with a 4xx/5xx status, and the stable
    ``code`` the page translates where there is one (:data:`edge.web.uploads.ERROR_CODES`)."""
    body = {"error": message} if code is None else {"error": message, "code": code}
    return JSONResponse(body, status_code=status)
