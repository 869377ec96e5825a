"""Access control and response headers for every request ``slr-web`` answers (pure ASGI middleware).

* **Token** (required for a non-loopback bind, optional otherwise): read from a secret file at
  start; every request must carry it, as ``Authorization: Bearer <token>`` (scripts, Prometheus)
  or as the ``slr_token`` cookie that ``POST /login`` sets (browsers: ``EventSource`` cannot send
  headers). Compared in constant time. Only the login page and its stylesheet are reachable
  without it.
* **Host check** on a loopback bind: only ``127.0.0.1``/``localhost``/``[::1]`` Host headers, so a
  web page elsewhere cannot reach the dashboard through DNS rebinding.
* **Headers** on every response: a CSP that allows only this origin (no inline script or style,
  no external origins, no framing), ``nosniff``, no referrer, no caching of API answers.
"""

from __future__ import annotations

import hmac
import json
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "slr_token"
MIN_TOKEN_CHARS = 16
PUBLIC_PATHS = frozenset({"/login", "/static/style.css"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
)


class TokenError(ValueError):
    """The token file is missing, unreadable, too short or readable by others."""


def read_token(path: str | Path) -> str:
    """The secret in ``path`` (first line, stripped); refuses files that others can read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read token file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenError(f"token file {path} is readable by others; chmod 600 it")
    if not token or len(token[0].strip()) < MIN_TOKEN_CHARS:
        raise TokenError(f"token file {path} must hold a secret of at least {MIN_TOKEN_CHARS} characters")
    return token[0].strip()


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def presented_token(scope: Scope) -> str:
    """The token a request carries (bearer header first, then the cookie), or ``""``."""
    auth = _header(scope, b"authorization")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    cookie = SimpleCookie()
    try:
        cookie.load(_header(scope, b"cookie"))
    except Exception:  # a malformed cookie header is just "no token"
        return ""
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel is not None else ""


def token_matches(expected: str | None, given: str) -> bool:
    return expected is None or hmac.compare_digest(expected.encode(), given.encode())


class SecurityMiddleware:
    """Host check, token check and security headers around the whole app."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if scope["path"].startswith(("/api/", "/metrics", "/healthz")):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        if self.loopback_only and _host_name(_header(scope, b"host")) not in LOOPBACK_HOSTS:
            await _plain(send_with_headers, 421, "this dashboard answers only to 127.0.0.1/localhost")
            return
        if scope["path"] not in PUBLIC_PATHS and not token_matches(self.token, presented_token(scope)):
            if scope["path"] == "/" and scope["method"] == "GET":
                await _redirect(send_with_headers, "/login")
            else:
                await _json_error(send_with_headers, 401, "a valid token is required (log in at /login)")
            return
        await self.app(scope, receive, send_with_headers)


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(send: Send, status: int, text: str) -> None:
    await _respond(send, status, text.encode(), b"text/plain; charset=utf-8")


async def _json_error(send: Send, status: int, text: str) -> None:
    await _respond(send, status, json.dumps({"error": text}).encode(), b"application/json")


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def cookie_header(token: str, secure: bool) -> str:
    """``Set-Cookie`` value for a logged-in browser: HttpOnly, SameSite=Strict (no cross-site use)."""
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{'; Secure' if secure else ''}"


def loopback_host(host: str) -> bool:
    """True for a bind address only this machine can reach (the daemon's rule, for HTTP)."""
    from edge.runtime.publisher import is_loopback

    return is_loopback(f"tcp://{host}:0" if ":" not in host else f"tcp://[{host.strip('[]')}]:0")


__all__ = [
    "COOKIE",
    "SecurityMiddleware",
    "TokenError",
    "cookie_header",
    "loopback_host",
    "read_token",
    "token_matches",
]
