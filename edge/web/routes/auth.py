"""``GET``/``POST /login`` and ``POST /logout``: the token form and its session cookie.

The login limiter (:class:`edge.web.security.LoginLimiter`) is consulted and charged in one step
before anything is awaited: each attempt takes a slot first and gives it back only if its token
matches. Checking first and counting after the (awaited) body read let 40 concurrent wrong logins
from one address all be checked against a limit of 5 a minute.
"""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from edge.web.routes.common import error
from edge.web.routes.pages import localized
from edge.web.security import Auth, client_address, session_cookie
from edge.web.uploads import UploadError, read_small_body

#: The login form is one field; a bigger or slower body is not a login.
LOGIN_BODY_BYTES = 4096
LOGIN_BODY_TIMEOUT_S = 10.0


async def login(request: Request, auth: Auth) -> Response:
    if request.method == "GET":
        return localized(request, "login.html")
    client = client_address(request.scope)
    wait = auth.limiter.take(client)  # no await between the check and the charge
    if wait is not None:
        refused = error(429, f"too many failed logins; try again in {wait} s")
        refused.headers["retry-after"] = str(wait)
        return refused
    try:
        body = await read_small_body(request, LOGIN_BODY_BYTES, LOGIN_BODY_TIMEOUT_S)
    except UploadError as exc:
        return error(exc.status, str(exc), exc.code)
    # The form is urlencoded UTF-8; a token that does not decode simply does not match.
    try:
        fields = parse_qsl(body.decode("utf-8", "replace"), max_num_fields=4, errors="replace")
    except ValueError:  # more fields than a login form has
        return error(400, "the login form has one field, 'token'")
    given = next((value for key, value in fields if key == "token"), "")
    if not auth.token_matches(given):
        return RedirectResponse("/login#failed", status_code=303)  # the slot it took stays taken
    auth.limiter.succeeded(client)
    response = RedirectResponse("/", status_code=303)
    response.headers["set-cookie"] = auth.cookie(auth.sessions.new())
    return response


async def logout(request: Request, auth: Auth) -> Response:
    auth.sessions.drop(session_cookie(request.scope))
    response = RedirectResponse("/login", status_code=303)
    response.headers["set-cookie"] = auth.cleared_cookie()
    return response


def routes(auth: Auth) -> list[Route]:
    return [
        Route("/login", partial(login, auth=auth), methods=["GET", "POST"]),
        Route("/logout", partial(logout, auth=auth), methods=["POST"]),
    ]
