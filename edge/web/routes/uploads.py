"""``POST /api/predict`` (a clip's top-5) and ``POST /api/captions`` (a long video's episodes and subtitles).

Both run one clip through :class:`edge.web.uploads.ClipClassifier` (one at a time, in a child
process). A job still running when ``slr-web`` is told to stop is ended here at once (worker
killed, upload deleted, 503 to its client) instead of being cancelled by the server's
shutdown timeout, which logged a ``CancelledError`` traceback for every such stop.
"""

from __future__ import annotations

import asyncio
from functools import partial

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.web.bridge import DaemonBridge
from edge.web.metrics import WebMetrics
from edge.web.routes.common import error
from edge.web.uploads import ClipClassifier, UploadError

STOPPING_MESSAGE = "slr-web is stopping; the clip was not classified, send it again once it is back"


async def upload(
    request: Request,
    *,
    classifier: ClipClassifier | None,
    bridge: DaemonBridge,
    metrics: WebMetrics,
    stopping: asyncio.Event,
    captions: float | None,
) -> Response:
    """One clip through the worker: a top-5, or (``captions``: a minimum confidence) its captions."""
    if classifier is None:
        return error(404, "uploads are off: start slr-web with --model MODEL.onnx", "uploads_off")
    progress = partial(bridge.broadcast, "progress")
    job = asyncio.ensure_future(classifier.classify(request, progress, captions=captions))
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({job, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not job.done():  # stopping (or this request cancelled): the worker is killed in classify()
            job.cancel()
        await asyncio.gather(job, stop, return_exceptions=True)
    if job.cancelled():
        metrics.uploads.labels("refused").inc()
        return error(503, STOPPING_MESSAGE, "stopping")
    try:
        result = job.result()
    except UploadError as exc:
        metrics.uploads.labels("busy" if exc.status == 409 else "refused").inc()
        return error(exc.status, str(exc), exc.code)
    metrics.uploads.labels("ok").inc()
    result["source"] = "upload"  # the server's temp path means nothing to the user
    return JSONResponse(result)


def routes(
    classifier: ClipClassifier | None,
    bridge: DaemonBridge,
    metrics: WebMetrics,
    stopping: asyncio.Event,
    min_confidence: float,
) -> list[Route]:
    """``stopping`` is set when the server is told to stop (see :func:`edge.web.app.build_app`)."""
    bound = partial(upload, classifier=classifier, bridge=bridge, metrics=metrics, stopping=stopping)
    return [
        Route("/api/predict", partial(bound, captions=None), methods=["POST"]),
        Route("/api/captions", partial(bound, captions=min_confidence), methods=["POST"]),
    ]
