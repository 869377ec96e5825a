"""``GET /`` and ``/favicon.ico``: the page, rendered in the negotiated language (:mod:`edge.web.i18n`)."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from edge.web import i18n

STATIC = resources.files("edge.web").joinpath("static")


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


def routes() -> list[Route]:
    return [Route("/", page), Route("/favicon.ico", favicon)]
