"""Access control and response headers for every request ``slr-web`` answers (pure ASGI middleware).

* **Token** (required for a non-loopback bind, optional otherwise): read from a secret file at
  start (any printable UTF-8, at least 16 characters); every request must carry it, as
  ``Authorization: Bearer <token>`` (scripts, Prometheus; the header's raw UTF-8 bytes are
  compared) or as the ``slr_session`` cookie that ``POST /login`` sets (browsers: ``EventSource``
  cannot send headers). The cookie is never the token: it is a random session id known only to
  this process (``POST /logout`` forgets it), so it needs no quoting, shows nothing if it leaks
  into a log, and dies with the process. Compared in constant time. Failed logins are limited per
  client address (:class:`LoginLimiter`: 429 with ``Retry-After``). Only the login page, the
  logout and the stylesheet are reachable without it.
* **Host check**: the Host header must be a host name or a bracketed IPv6 literal with an optional
  numeric port (else 400); on a loopback bind only ``127.0.0.1``/``localhost``/``[::1]`` (else
  421), so a web page elsewhere cannot reach the dashboard through DNS rebinding.
* **Cross-site check** in every mode: a request that changes something (any method but GET/HEAD)
  is refused with 403 when the browser says it comes from another site (``Sec-Fetch-Site`` other
  than ``same-origin``/``none``) or from another origin (``Origin`` not this scheme, host and
  port, or ``null`` unless ``Sec-Fetch-Site: same-origin`` vouches for it). Without a token the
  dashboard is open to this machine, so this is what keeps any web page the operator visits from
  using the device; scripts (no ``Origin``) are unaffected.
* **Headers** on every response: a CSP that allows only this origin (no inline script or style,
  no external origins, no framing), ``nosniff``, no referrer, no caching of API answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import stat
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from starlette.requests import cookie_parser

from edge.util.files import read_small_regular_file

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "slr_session"
MIN_TOKEN_CHARS = 16
#: A token file is one short line; anything bigger is not one (and /dev/zero is not read).
MAX_TOKEN_FILE_BYTES = 4096
PUBLIC_PATHS = frozenset({"/login", "/logout", "/static/style.css"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Logged-in browsers: a week, at most this many at once (the oldest is logged out first).
SESSION_TTL_S = 7 * 24 * 3600.0
MAX_SESSIONS = 256
#: Failed logins allowed per client address within the window, and addresses remembered.
LOGIN_FAILURES = 5
LOGIN_WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 4096

_HOST = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?))(?::(?P<port>\d{1,5}))?"
)
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>[^/?#@]+)")

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
    """The token file is missing, unreadable, too short, not printable text or readable by others."""


def read_token(path: str | Path) -> str:
    """The secret in ``path`` (first line, stripped); refuses files that others can read.

    The rule, enforced here so that a token that could never be sent fails at start-up: printable
    UTF-8 (letters of any script, digits, punctuation, spaces inside), at least 16 characters.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        text = read_small_regular_file(path, MAX_TOKEN_FILE_BYTES).decode("utf-8")
    except OSError as exc:
        raise TokenError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TokenError(f"token file {path} is not UTF-8 text") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenError(f"token file {path} is readable by others; chmod 600 it")
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenError(f"token file {path} must hold a secret of at least {MIN_TOKEN_CHARS} characters")
    if not token.isprintable():
        raise TokenError(f"the token in {path} has control or invisible characters; use printable text")
    return token


def _raw_header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return b""


def _header(scope: Scope, name: bytes) -> str:
    return _raw_header(scope, name).decode("latin-1")


# -- Host and Origin --------------------------------------------------------------------------


def parse_host(host: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header value (name lower-cased, IPv6 in brackets), or None if
    it is not exactly ``name[:port]`` / ``[v6]:port`` with a numeric port."""
    match = _HOST.fullmatch(host.strip())
    if match is None:
        return None
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        return None
    name = f"[{match['v6'].lower()}]" if match["v6"] else match["name"].lower()
    return name, port


def same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether an ``Origin`` header names this server (scheme, host and port; default ports
    filled in). ``null`` and anything unparsable are another origin."""
    match = _ORIGIN.fullmatch(origin.strip())
    here = parse_host(host)
    if match is None or here is None:
        return False
    there = parse_host(match["host"])
    if there is None or match["scheme"].lower() != scheme:
        return False
    default = DEFAULT_PORTS.get(scheme)
    return there[0] == here[0] and (there[1] or default) == (here[1] or default)


def cross_site(scope: Scope) -> bool:
    """True for a state-changing request that a browser made on behalf of another site or origin."""
    if scope.get("method", "GET") in SAFE_METHODS:
        return False
    site = _header(scope, b"sec-fetch-site").strip().lower()
    if site and site not in SAME_SITE_FETCHES:
        return True
    origin = _header(scope, b"origin")
    if not origin:
        return False  # not a browser (curl, scripts): the token, if any, decides
    if origin.strip() == "null" and site == "same-origin":
        # Chromium sends "Origin: null" for a form POST from a page served with our
        # "Referrer-Policy: no-referrer" (the login form); Sec-Fetch-Site, which no page can set, vouches.
        return False
    return not same_origin(origin, scope.get("scheme", "http"), _header(scope, b"host"))


# -- sessions and login attempts --------------------------------------------------------------


class Sessions:
    """Random session ids of logged-in browsers, kept in this process only (stored hashed)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S, limit: int = MAX_SESSIONS) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._expiry: dict[bytes, float] = {}

    @staticmethod
    def _key(session: str) -> bytes:
        return hashlib.sha256(session.encode("utf-8", "replace")).digest()

    def new(self) -> str:
        now = time.monotonic()
        self._expiry = {key: until for key, until in self._expiry.items() if until > now}
        while len(self._expiry) >= self.limit:
            self._expiry.pop(next(iter(self._expiry)))
        session = secrets.token_urlsafe(32)
        self._expiry[self._key(session)] = now + self.ttl_s
        return session

    def valid(self, session: str) -> bool:
        until = self._expiry.get(self._key(session)) if session else None
        return until is not None and until > time.monotonic()

    def drop(self, session: str) -> None:
        self._expiry.pop(self._key(session), None)


class LoginLimiter:
    """At most ``failures`` failed logins per client address per ``window_s`` seconds."""

    def __init__(
        self,
        failures: int = LOGIN_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.clients = clients
        self._seen: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None if it may now."""
        times = self._seen.get(client)
        now = time.monotonic()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times or len(times) < self.failures:
            return None
        return max(1, math.ceil(times[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        if client not in self._seen and len(self._seen) >= self.clients:
            cutoff = time.monotonic() - self.window_s
            self._seen = {key: t for key, t in self._seen.items() if t and t[-1] > cutoff}
            while len(self._seen) >= self.clients:
                self._seen.pop(next(iter(self._seen)))
        self._seen.setdefault(client, deque(maxlen=self.failures)).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        self._seen.pop(client, None)


class Auth:
    """The token, the sessions it opened and the login limiter: one per app."""

    def __init__(self, token: str | None, *, secure_cookie: bool = False) -> None:
        self.token = token
        self._token_bytes = token.encode("utf-8") if token is not None else None
        self.secure_cookie = secure_cookie
        self.sessions = Sessions()
        self.limiter = LoginLimiter()

    def token_matches(self, given: str | bytes) -> bool:
        """Constant-time comparison of ``given`` (text, or the raw UTF-8 bytes of a header)."""
        if self._token_bytes is None:
            return False
        raw = given.encode("utf-8", "replace") if isinstance(given, str) else given
        return hmac.compare_digest(self._token_bytes, raw)

    def allows(self, scope: Scope) -> bool:
        """Whether the request carries the token (bearer header) or a live session cookie."""
        if self._token_bytes is None:
            return True
        auth = _raw_header(scope, b"authorization")
        if auth[:7].lower() == b"bearer ":
            return self.token_matches(auth[7:].strip(b" \t"))
        return self.sessions.valid(session_cookie(scope))

    def cookie(self, session: str) -> str:
        """``Set-Cookie`` for a logged-in browser: HttpOnly, SameSite=Strict, Secure over TLS."""
        secure = "; Secure" if self.secure_cookie else ""
        return f"{COOKIE}={session}; Path=/; Max-Age={int(SESSION_TTL_S)}; HttpOnly; SameSite=Strict{secure}"

    def cleared_cookie(self) -> str:
        secure = "; Secure" if self.secure_cookie else ""
        return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"


def session_cookie(scope: Scope) -> str:
    """The session id a request's cookie carries, or ``""`` (malformed cookies are just absent)."""
    try:
        return cookie_parser(_header(scope, b"cookie")).get(COOKIE, "")
    except Exception:  # nothing a browser sends should end the request
        return ""


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


# -- the middleware -----------------------------------------------------------------------------


class SecurityMiddleware:
    """Host check, cross-site check, token check and security headers around the whole app."""

    def __init__(self, app: ASGIApp, *, auth: Auth, loopback_only: bool) -> None:
        self.app = app
        self.auth = auth
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

        host = parse_host(_header(scope, b"host"))
        if host is None:
            await _json_error(send_with_headers, 400, "the Host header must be host[:port]")
            return
        if self.loopback_only and host[0] not in LOOPBACK_HOSTS:
            await _plain(send_with_headers, 421, "this dashboard answers only to 127.0.0.1/localhost")
            return
        if cross_site(scope):
            await _json_error(send_with_headers, 403, "cross-site request refused")
            return
        if scope["path"] not in PUBLIC_PATHS and not self.auth.allows(scope):
            if scope["path"] == "/" and scope["method"] == "GET":
                await _redirect(send_with_headers, "/login")
            else:
                await _json_error(send_with_headers, 401, "a valid token is required (log in at /login)")
            return
        await self.app(scope, receive, send_with_headers)


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


def loopback_host(host: str) -> bool:
    """True for a bind address only this machine can reach (the daemon's rule, for HTTP)."""
    from edge.transport.publisher import is_loopback

    return is_loopback(f"tcp://{host}:0" if ":" not in host else f"tcp://[{host.strip('[]')}]:0")


__all__ = [
    "COOKIE",
    "Auth",
    "LoginLimiter",
    "SecurityMiddleware",
    "Sessions",
    "TokenError",
    "cross_site",
    "loopback_host",
    "parse_host",
    "read_token",
    "same_origin",
]
