"""The standing guard for ``slr-web``'s HTTP side: a generated corpus of hostile requests and options.

Two real ``slr-web`` processes (the default loopback mode without a token, with uploads; and a
token mode whose token is Cyrillic with a space, ``;``, ``"`` and ``,``) get byte-exact requests
on raw sockets: odd and hostile Host values, Origin/Sec-Fetch-Site combinations on every
state-changing route, multipart shapes (boundaries, many parts, huge text parts, missing and
doubled parts, truncated bodies), slow and stalled bodies, token encodings (bearer, cookie and
login form in UTF-8, latin-1, percent-encoding, control characters), paths and header floods.
Then ``slr-web`` itself is started with special files and bad values as options (FIFOs,
``/dev/zero``, directories, symlinks, junk certificates, NaN numbers, a taken port).

Every case must: answer within its timeout (no hang), answer with one of the codes it lists
(never 500), leave no traceback in the server's log or on stderr, never show the token (in a
response, a log or an error), and leave no upload behind. One test reports every misbehaving
case at once; docs/RELIABILITY.md ("Hostile HTTP") has the figures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers_http import Reply, build_request, chunk, connect, exchange, read_reply, send_until_answered
from helpers_onnx import build_tiny_onnx
from helpers_web import clean_env, free_port, start_web, stop, wait_for_web

REPO = Path(__file__).resolve().parents[1]
TOKEN = 'Секрет; "fuzz", токен 2026'
#: Every way the token could show up in an answer or a log.
TOKEN_FORMS = (
    TOKEN.encode(),
    TOKEN.encode("cp1251"),
    urllib.parse.quote(TOKEN).encode(),
    urllib.parse.quote_plus(TOKEN).encode(),
    "Секрет".encode(),
)
CRASH_MARKERS = (b"Traceback (most recent call last)", b"Exception ignored", b"Fatal Python error")
FORM = ("Content-Type", "application/x-www-form-urlencoded")
REFUSED_HOST = frozenset({400, 421})
BAD_REQUEST = frozenset({400})


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    tmpdir: Path

    @property
    def here(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class HttpCase:
    """One hostile request (or a short script of them) and the codes it may get."""

    name: str
    server: str  # "open" | "token"
    codes: frozenset[int]
    #: The request's bytes, built once the server's port is known.
    build: Callable[[Server], bytes] | None = None
    #: A script instead of one request: returns the answer that ``codes`` judges.
    script: Callable[[Server], Reply] | None = None
    slow: bool = False  # runs with the other slow ones, in parallel, after the fast ones
    source: str | None = None  # client address (127.x): the login limiter counts per address
    timeout: float = 60.0
    check: Callable[[Reply], str | None] | None = None


# -- building requests ------------------------------------------------------------------------


def req(
    method: str,
    path: str,
    headers: list[tuple[str, str | bytes]] = (),
    body: bytes | None = None,
    *,
    host: str | bytes | None = "HERE",
    chunked: bool = False,
) -> Callable[[Server], bytes]:  # type: ignore[assignment]
    """A request builder; ``HERE`` / ``ORIGIN`` in header values become this server's."""

    def build(server: Server) -> bytes:
        def fill(value: str | bytes) -> str | bytes:
            if isinstance(value, str):
                return value.replace("HERE", server.here).replace("ORIGIN", server.origin)
            return value.replace(b"HERE", server.here.encode()).replace(b"ORIGIN", server.origin.encode())

        filled = [(name, fill(value)) for name, value in headers]
        return build_request(
            method, path, filled, body, host=None if host is None else fill(host), chunked=chunked
        )

    return build


def form_multipart(boundary: str, parts: list[tuple[str, bytes]], close: bool = True) -> bytes:
    """A multipart body: ``(Content-Disposition params, data)`` per part."""
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; {params}\r\n\r\n".encode() + data + b"\r\n"
        for params, data in parts
    )
    return body + (f"--{boundary}--\r\n".encode() if close else b"")


def upload(
    parts: list[tuple[str, bytes]],
    boundary: str = "fuzzb",
    extra: list[tuple[str, str]] = (),
    close: bool = True,
) -> Callable[[Server], bytes]:  # type: ignore[assignment]
    content_type = f"multipart/form-data; boundary={boundary}"
    return req(
        "POST",
        "/api/predict",
        [("Content-Type", content_type), *extra],
        form_multipart(boundary, parts, close),
    )


EMPTY_FILE = [('name="file"; filename="c.mp4"', b"")]
BEARER = ("Authorization", b"Bearer " + TOKEN.encode())


def login(value: bytes, extra: list[tuple[str, str]] = ()) -> Callable[[Server], bytes]:  # type: ignore[assignment]
    return req("POST", "/login", [FORM, *extra], b"token=" + value)


def _no_cookie(reply: Reply) -> str | None:
    return "a failed login set a cookie" if reply.set_cookies else None


def _session_cookie(reply: Reply) -> str | None:
    if not reply.set_cookies or reply.headers.get("location") != "/":
        return "a good login set no cookie"
    cookie = reply.set_cookies[0]
    if not all(flag in cookie for flag in ("HttpOnly", "SameSite=Strict")):
        return f"weak cookie: {cookie}"
    return None


def _retry_after(reply: Reply) -> str | None:
    return None if reply.headers.get("retry-after", "").isdigit() else "429 without Retry-After"


# -- scripts (several requests; the last answer is judged) --------------------------------------


def _rate_limit(server: Server) -> Reply:
    for n in range(5):
        exchange(server.port, login(f"guess-{n}".encode())(server), source="127.0.0.250")
    return exchange(server.port, login(TOKEN.encode())(server), source="127.0.0.250")


def _login_then_cookie(value: Callable[[Reply], str]) -> Callable[[Server], Reply]:
    def script(server: Server) -> Reply:
        reply = exchange(server.port, login(urllib.parse.quote(TOKEN).encode())(server), source="127.0.0.77")
        return exchange(server.port, req("GET", "/api/config", [("Cookie", value(reply))])(server))

    return script


def _logout_then_cookie(server: Server) -> Reply:
    reply = exchange(server.port, login(urllib.parse.quote(TOKEN).encode())(server), source="127.0.0.78")
    cookie = reply.set_cookies[0].split(";")[0]
    exchange(server.port, req("POST", "/logout", [("Cookie", cookie), ("Origin", "ORIGIN")])(server))
    return exchange(server.port, req("GET", "/api/config", [("Cookie", cookie)])(server))


def _stalled_after(
    sent: bytes, path: str = "/api/predict", content_type: str = "multipart/form-data; boundary=fuzzb"
) -> Callable[[Server], Reply]:
    def script(server: Server) -> Reply:
        head = build_request("POST", path, [("Content-Type", content_type)], host=server.here, chunked=True)
        head = head[: head.rindex(b"\r\n\r\n") + 4]
        with connect(server.port, timeout=120) as sock:
            sock.sendall(head + chunk(sent))
            return read_reply(sock, timeout=120)

    return script


def _drip(server: Server) -> Reply:
    head = build_request(
        "POST",
        "/api/predict",
        [("Content-Type", "multipart/form-data; boundary=fuzzb")],
        host=server.here,
        chunked=True,
    )
    head = head[: head.rindex(b"\r\n\r\n") + 4]
    with connect(server.port, timeout=120) as sock:
        sock.sendall(head + chunk(b'--fuzzb\r\nContent-Disposition: form-data; name="file"\r\n\r\n'))
        started = time.monotonic()
        try:
            while time.monotonic() - started < 60:
                sock.sendall(chunk(b"x"))
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_reply(sock, timeout=60)


def _others_served_during_slow_headers(server: Server) -> Reply:
    with connect(server.port, timeout=60) as slow:
        slow.sendall(b"GET /api/config HTTP/1.1\r\nHost: " + server.here.encode() + b"\r\nX-Slow: ")
        return exchange(server.port, req("GET", "/api/config")(server))


def _vanish_mid_upload(server: Server) -> Reply:
    body = form_multipart("fuzzb", [('name="file"; filename="c.mp4"', b"\0" * 500_000)])
    data = upload([('name="file"; filename="c.mp4"', b"\0" * 500_000)])(server)
    with connect(server.port, timeout=30) as sock:
        sock.sendall(data[: len(data) - len(body) // 2])
    time.sleep(0.5)
    return exchange(server.port, upload([('name="file"; filename="c.mp4"', b"not a video" * 50)])(server))


def _huge_text_part(server: Server) -> Reply:
    head = build_request(
        "POST",
        "/api/predict",
        [("Content-Type", "multipart/form-data; boundary=fuzzb")],
        host=server.here,
        chunked=True,
    )
    head = head[: head.rindex(b"\r\n\r\n") + 4]
    pieces = [chunk(b'--fuzzb\r\nContent-Disposition: form-data; name="note"\r\n\r\n')]
    pieces += [chunk(b"a" * (1 << 20)) for _ in range(200)]
    reply, sent = send_until_answered(server.port, head, iter(pieces))
    if sent > 40 * (1 << 20):
        reply.status = -sent  # judged as a wrong code: the limit did not count the text part
    return reply


# -- the corpus -------------------------------------------------------------------------------


def build_http_cases() -> list[HttpCase]:
    cases: list[HttpCase] = []

    def add(name: str, server: str, codes: set[int] | frozenset[int], **kw: object) -> None:
        cases.append(HttpCase(name, server, frozenset(codes), **kw))  # type: ignore[arg-type]

    # Host values: only a well-formed loopback name is served; nothing hostile gets a 200.
    for name, host in {
        "attacker": "attacker.example",
        "v6-then-name": "[::1]attacker.example",
        "port-is-a-name": "127.0.0.1:attacker.example",
        "port-zero": "127.0.0.1:0",
        "port-huge": "127.0.0.1:65536",
        "two-ports": "127.0.0.1:80:80",
        "list": "127.0.0.1, attacker.example",
        "userinfo": "attacker.example@127.0.0.1",
        "rebinding-suffix": "127.0.0.1.attacker.example",
        "mapped-v4": "[::ffff:127.0.0.1]",
        "unclosed-v6": "[::1",
        "trailing-dot": "localhost.",
        "cyrillic-utf8": "локалхост".encode(),
        "latin1-bytes": b"caf\xe9",
        "very-long": "a" * 5000,
        "empty": "",
    }.items():
        add(f"host/{name}", "open", REFUSED_HOST, build=req("GET", "/api/config", host=host))
    add("host/missing", "open", BAD_REQUEST, build=req("GET", "/api/config", host=None))
    add("host/http10-missing", "open", BAD_REQUEST, build=lambda s: b"GET /api/config HTTP/1.0\r\n\r\n")
    add(
        "host/two-headers",
        "open",
        BAD_REQUEST,
        build=req("GET", "/api/config", [("Host", "attacker.example")]),
    )
    for name, host in {
        "v6-port": "[::1]:PORT",
        "localhost-upper": "LOCALHOST",
        "v4-port": "127.0.0.1:PORT",
    }.items():
        add(
            f"host/ok-{name}",
            "open",
            {200},
            build=lambda s, h=host: req("GET", "/api/config", host=h.replace("PORT", str(s.port)))(s),
        )

    # Cross-site: every state-changing request a browser makes for another site or origin is 403.
    hostile_origins = {
        "attacker": [("Origin", "https://attacker.example")],
        "null": [("Origin", "null")],
        "other-port": [("Origin", "http://127.0.0.1:1")],
        "other-scheme": [("Origin", "https://HERE")],
        "other-name": [("Origin", "http://localhost")],
        "with-path": [("Origin", "ORIGIN/x")],
        "garbage": [("Origin", "\x7f\x7f")],  # h11 may refuse the header itself (400)
        "long": [("Origin", "http://" + "a" * 4000)],
        "fetch-cross-site": [("Sec-Fetch-Site", "cross-site")],
        "fetch-same-site": [("Sec-Fetch-Site", "same-site")],
        "fetch-upper": [("Sec-Fetch-Site", "CROSS-SITE")],
        "fetch-unknown": [("Sec-Fetch-Site", "sideways")],
        "same-origin-fetch-cross": [("Origin", "ORIGIN"), ("Sec-Fetch-Site", "cross-site")],
    }
    for name, headers in hostile_origins.items():
        codes = {400, 403} if name == "garbage" else {403}
        add(f"origin/predict-{name}", "open", codes, build=upload(EMPTY_FILE, extra=headers))
        add(
            f"origin/token-predict-{name}", "token", codes, build=upload(EMPTY_FILE, extra=[BEARER, *headers])
        )
    for name in ("attacker", "null", "fetch-cross-site", "fetch-same-site"):
        headers = hostile_origins[name]
        add(
            f"origin/login-{name}",
            "token",
            {403},
            build=login(urllib.parse.quote(TOKEN).encode(), headers),
            check=_no_cookie,
        )
        add(f"origin/logout-{name}", "token", {403}, build=req("POST", "/logout", headers))
    for method in ("PUT", "DELETE", "PATCH"):
        add(
            f"origin/{method.lower()}-attacker",
            "open",
            {403},
            build=req(method, "/api/predict", [("Origin", "https://attacker.example")], b""),
        )
        add(f"origin/{method.lower()}-plain", "open", {405}, build=req(method, "/api/predict", [], b""))
    for name, headers in {
        "same-origin": [("Origin", "ORIGIN"), ("Sec-Fetch-Site", "same-origin")],
        "fetch-none": [("Sec-Fetch-Site", "none")],
        "script": [],
    }.items():
        add(f"origin/ok-{name}", "open", {400}, build=upload(EMPTY_FILE, extra=headers))  # 400: empty file
    add(
        "origin/read-cross-site",
        "open",
        {200},
        build=req("GET", "/api/config", [("Sec-Fetch-Site", "cross-site")]),
    )

    # Multipart shapes: each a clear 4xx, never a 500, the limit counting every byte.
    content = "Content-Type"
    for name, headers, body, codes in (
        ("no-content-type", [], b"x", {415}),
        ("not-multipart", [(content, "video/mp4")], b"x", {415}),
        ("multipart-mixed", [(content, "multipart/mixed; boundary=b")], b"x", {415}),
        ("no-boundary", [(content, "multipart/form-data")], b"x", {415}),
        ("empty-boundary", [(content, "multipart/form-data; boundary=")], b"x", {400, 415}),
        ("boundary-71", [(content, "multipart/form-data; boundary=" + "b" * 71)], b"x", {400}),
        ("boundary-10000", [(content, "multipart/form-data; boundary=" + "b" * 10_000)], b"x", {400}),
        ("boundary-quoted", [(content, 'multipart/form-data; boundary="a b;c"')], b"--a b;c--\r\n", {400}),
        (
            "declared-too-big",
            [(content, "multipart/form-data; boundary=b"), ("Content-Length", "999999999999")],
            None,
            {413},
        ),
        ("garbage-body", [(content, "multipart/form-data; boundary=fuzzb")], os.urandom(4096), {400}),
        ("preamble-only", [(content, "multipart/form-data; boundary=fuzzb")], b"hello\r\n", {400}),
    ):
        add(f"multipart/{name}", "open", codes, build=req("POST", "/api/predict", headers, body))
    f = 'name="file"; filename="c.mp4"'
    for name, parts, codes in (
        ("no-file-part", [('name="other"', b"x")], {400}),
        ("two-file-parts", [(f, b"a"), (f, b"b")], {400}),
        ("hundred-parts", [(f'name="f{n}"', b"x") for n in range(100)], {400}),
        ("empty-file", [(f, b"")], {400}),
        ("traversal-filename", [('name="file"; filename="../../../etc/passwd"', b"")], {400}),
        ("cyrillic-names", [('name="файл"; filename="клип.mp4"', b"x")], {400}),
        ("no-disposition-name", [("filename=c.mp4", b"x")], {400}),
        ("file-over-limit", [(f, b"\0" * (5 * 1024 * 1024 + 1))], {413}),
    ):
        add(f"multipart/{name}", "open", codes, build=upload(parts))
    add(
        "multipart/huge-part-header",
        "open",
        {400},
        build=upload([('name="file"; x="' + "h" * 100_000 + '"', b"x")]),
    )
    add("multipart/unclosed", "open", {400, 422}, build=upload([(f, b"not a video at all")], close=False))
    add("multipart/not-a-video", "open", {422}, build=upload([(f, b"just text named like a video\n" * 20)]))
    add("multipart/huge-text-part", "open", {413}, script=_huge_text_part)
    add(
        "multipart/chunked-garbage",
        "open",
        {400},
        build=lambda s: build_request(
            "POST",
            "/api/predict",
            [(content, "multipart/form-data; boundary=fuzzb")],
            os.urandom(2048),
            host=s.here,
            chunked=True,
        ),
    )

    # Slow and vanishing clients: cut off by the read deadline, never holding the upload slot.
    add(
        "slow/stall-after-16-bytes",
        "open",
        {408},
        script=_stalled_after(b"--fuzzb\r\nContent-"),
        slow=True,
        timeout=120,
    )
    add("slow/drip-a-byte-each-half-second", "open", {408}, script=_drip, slow=True, timeout=120)
    add(
        "slow/vanish-mid-upload-then-upload", "open", {422}, script=_vanish_mid_upload, slow=True, timeout=120
    )
    add(
        "slow/headers-stall-others-served",
        "open",
        {200},
        script=_others_served_during_slow_headers,
        slow=True,
    )
    add(
        "slow/login-body-stall",
        "token",
        {408},
        script=_stalled_after(b"token=", "/login", FORM[1]),
        slow=True,
        timeout=120,
    )

    # Token encodings: only the exact UTF-8 token opens; nothing else errs or is echoed.
    utf8 = TOKEN.encode()
    for name, value, codes in (
        ("utf8", b"Bearer " + utf8, {200}),
        ("lowercase-scheme", b"bearer " + utf8, {200}),
        ("extra-spaces", b"Bearer   " + utf8 + b"  ", {200}),
        ("latin1-cp1251", b"Bearer " + TOKEN.encode("cp1251"), {401}),
        ("double-utf8", b"Bearer " + TOKEN.encode().decode("latin-1").encode(), {401}),
        ("percent-encoded", b"Bearer " + urllib.parse.quote(TOKEN).encode(), {401}),
        ("prefix", b"Bearer " + utf8[:-1], {401}),
        ("suffix", b"Bearer " + utf8 + b"x", {401}),
        ("control-char", b"Bearer \x01" + utf8, {400, 401}),
        ("nul", b"Bearer " + utf8 + b"\x00", {400, 401}),
        ("basic", b"Basic " + utf8, {401}),
        ("empty", b"", {401}),
        ("scheme-only", b"Bearer", {401}),
        ("huge", b"Bearer " + b"x" * 60_000, {400, 401, 431}),
    ):
        add(
            f"token/bearer-{name}",
            "token",
            codes,
            build=req("GET", "/api/config", [("Authorization", value)]),
        )
    for name, cookie, codes in (
        ("raw-token", b"slr_session=" + utf8, {401}),
        ("old-name-raw-token", b"slr_token=" + utf8, {401}),
        ("quoted-token", b'slr_session="' + utf8 + b'"', {401}),
        ("garbage", b'slr_session=;;;===""', {401}),
        ("many-cookies", b"; ".join(b"c%d=v" % n for n in range(500)), {400, 401, 431}),
        ("latin1", b"slr_session=\xe9\xe9\xe9", {401}),
    ):
        add(f"token/cookie-{name}", "token", codes, build=req("GET", "/api/config", [("Cookie", cookie)]))
    add(
        "token/cookie-session-amid-garbage",
        "token",
        {200},
        script=_login_then_cookie(lambda r: 'x="open; ' + r.set_cookies[0].split(";")[0] + "; y"),
    )
    add("token/cookie-after-logout", "token", {401}, script=_logout_then_cookie)
    add("token/no-auth-predict", "token", {401}, build=upload(EMPTY_FILE))
    add("token/with-auth-predict", "token", {404}, build=upload(EMPTY_FILE, extra=[BEARER]))  # no --model
    add("token/page-redirects", "token", {303}, build=req("GET", "/"))
    add("token/login-page-public", "token", {200}, build=req("GET", "/login"))
    for n, (name, value, codes, check) in enumerate(
        (
            ("percent-utf8", urllib.parse.quote(TOKEN).encode(), {303}, _session_cookie),
            ("plus-utf8", urllib.parse.quote_plus(TOKEN).encode(), {303}, _session_cookie),
            ("raw-utf8", utf8, {303}, _session_cookie),
            ("percent-latin1", urllib.parse.quote(TOKEN, encoding="cp1251").encode(), {303}, _no_cookie),
            ("raw-latin1", TOKEN.encode("cp1251"), {303}, _no_cookie),
            ("nul", b"%00" + urllib.parse.quote(TOKEN).encode(), {303}, _no_cookie),
            ("control", b"%01%02%1b[2J", {303}, _no_cookie),
            ("empty", b"", {303}, _no_cookie),
            ("bad-percent", b"%zz%", {303}, _no_cookie),
        )
    ):
        add(f"login/{name}", "token", codes, build=login(value), source=f"127.0.0.{10 + n}", check=check)
    add("login/too-big", "token", {413}, build=login(b"x" * 10_000), source="127.0.0.30")
    add(
        "login/many-fields",
        "token",
        {400},
        build=req("POST", "/login", [FORM], b"&".join(b"f%d=1" % n for n in range(100))),
        source="127.0.0.31",
    )
    multipart_login = [("Content-Type", "multipart/form-data; boundary=fuzzb")]
    body = form_multipart("fuzzb", [('name="token"', utf8)])
    add(
        "login/multipart",
        "token",
        {303},
        build=req("POST", "/login", multipart_login, body),
        check=_no_cookie,
        source="127.0.0.32",
    )
    add("login/rate-limited", "token", {429}, script=_rate_limit, check=_retry_after)

    # Paths, methods and header floods.
    for name, path, codes in (
        ("static-traversal", "/static/../../etc/passwd", {404}),
        ("static-encoded-traversal", "/static/%2e%2e/%2e%2e/etc/passwd", {404}),
        ("nul-in-path", "/api/config%00", {404}),
        ("very-long-path", "/" + "a" * 60_000, {400, 404, 414, 431}),
        ("query-script", "/api/config?x=<script>alert(1)</script>", {200}),
        ("unknown", "/nope", {404}),
    ):
        add(f"path/{name}", "open", codes, build=req("GET", path))
    add(
        "headers/flood-200",
        "open",
        {200, 400, 431},
        build=req("GET", "/api/config", [(f"X-H{n}", "v") for n in range(200)]),
    )
    add("headers/one-huge", "open", {400, 431}, build=req("GET", "/api/config", [("X-Big", "v" * 100_000)]))
    add("headers/non-ascii-name", "open", {400}, build=req("GET", "/api/config", [("X-Ключ", "v")]))
    add(
        "headers/te-and-cl",
        "open",
        {400, 415},  # h11 lets Transfer-Encoding win (RFC 9112); then there is no Content-Type
        build=req(
            "POST", "/api/predict", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"
        ),
    )
    add(
        "headers/te-gzip",
        "open",
        {400, 501},
        build=req("POST", "/api/predict", [("Transfer-Encoding", "gzip")], b"x"),
    )
    add(
        "headers/bad-content-length",
        "open",
        {400},
        build=req("POST", "/api/predict", [("Content-Length", "-1")]),
    )
    add("headers/metrics-ok", "open", {200}, build=req("GET", "/metrics"))
    add("headers/healthz-no-daemon", "open", {503}, build=req("GET", "/healthz"))
    return cases


# -- command-line cases -------------------------------------------------------------------------


@dataclass
class CliCase:
    name: str
    argv: list[str]
    code: int = 2
    timeout: float = 90.0


def _pem_pair(directory: Path, name: str, encrypted: bool = False) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    args = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-subj", "/CN=localhost", "-days", "1"]
    args += ["-passout", "pass:secret-pass"] if encrypted else ["-nodes"]
    subprocess.run(
        [*args, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=120
    )
    return cert, key


def build_cli_cases(root: Path, keep: list[object]) -> list[CliCase]:
    """The command lines; ``keep`` receives what must stay open while they run (a taken port)."""
    d = root / "special"
    d.mkdir()
    fifo = d / "fifo"
    os.mkfifo(fifo)
    directory = d / "dir"
    directory.mkdir()
    link_fifo = d / "link-to-fifo"
    os.symlink(fifo, link_fifo)
    dangling = d / "dangling"
    os.symlink(d / "nowhere", dangling)
    loop = d / "loop"
    os.symlink(loop, loop)

    def token_file(name: str, data: bytes, mode: int = 0o600) -> Path:
        path = d / name
        path.write_bytes(data)
        path.chmod(mode)
        return path

    sparse = d / "sparse-token"
    with sparse.open("wb") as handle:
        handle.truncate(10 * 1024**3)
    sparse.chmod(0o600)
    tokens = {
        "fifo": fifo,
        "dev-zero": Path("/dev/zero"),
        "dev-null": Path("/dev/null"),
        "directory": directory,
        "symlink-to-fifo": link_fifo,
        "dangling-symlink": dangling,
        "symlink-loop": loop,
        "missing": d / "missing",
        "empty": token_file("empty", b""),
        "short": token_file("short", "Секрет".encode()),
        "binary": token_file("binary", b"\xff\xfe" + b"\x00" * 40),
        "control-chars": token_file("control", (TOKEN + "\x1b[2J").encode()),
        "world-readable": token_file("readable", TOKEN.encode(), 0o644),
        "too-big": token_file("big", TOKEN.encode() * 1000),
        "sparse-10gb": sparse,
    }
    good_cert, good_key = _pem_pair(d, "good")
    other_cert, _ = _pem_pair(d, "other")
    enc_cert, enc_key = _pem_pair(d, "encrypted", encrypted=True)
    junk = token_file(
        "junk.pem", b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", 0o644
    )
    tls = {
        "cert-fifo": (fifo, good_key),
        "key-fifo": (good_cert, fifo),
        "cert-dev-zero": (Path("/dev/zero"), good_key),
        "cert-directory": (directory, good_key),
        "cert-junk": (junk, good_key),
        "key-junk": (good_cert, junk),
        "key-mismatch": (other_cert, good_key),
        "key-encrypted": (enc_cert, enc_key),
        "cert-missing": (d / "missing.crt", good_key),
    }
    model_fifo = d / "model.onnx"
    os.mkfifo(model_fifo)
    cases = [CliCase(f"cli/token-{name}", ["--token-file", str(path)]) for name, path in tokens.items()]
    cases += [
        CliCase(f"cli/tls-{name}", ["--tls-cert", str(c), "--tls-key", str(k)])
        for name, (c, k) in tls.items()
    ]
    cases.append(CliCase("cli/tls-cert-alone", ["--tls-cert", str(good_cert)]))
    for name, args in {
        "endpoint-carrier-pigeon": ["--endpoint", "carrier-pigeon://x"],
        "endpoint-empty": ["--endpoint", ""],
        "endpoint-no-port": ["--endpoint", "tcp://127.0.0.1"],
        "port-zero": ["--port", "0"],
        "port-huge": ["--port", "70000"],
        "port-text": ["--port", "http"],
        "max-upload-nan": ["--max-upload-mb", "nan"],
        "max-upload-zero": ["--max-upload-mb", "0"],
        "max-upload-huge": ["--max-upload-mb", "1e9"],
        "upload-timeout-nan": ["--upload-timeout", "nan"],
        "upload-timeout-inf": ["--upload-timeout", "inf"],
        "upload-timeout-negative": ["--upload-timeout", "-1"],
        "upload-timeout-zero": ["--upload-timeout", "0"],
        "upload-min-rate-zero": ["--upload-min-rate", "0"],
        "upload-min-rate-inf": ["--upload-min-rate", "inf"],
        "worker-idle-nan": ["--worker-idle-s", "nan"],
        "worker-idle-negative": ["--worker-idle-s", "-1"],
        "worker-idle-huge": ["--worker-idle-s", "1e9"],
        "remote-without-opt-in": ["--host", "0.0.0.0"],
        "remote-without-token": ["--host", "0.0.0.0", "--allow-remote"],
        "model-fifo": ["--model", str(model_fifo)],
        "model-directory": ["--model", str(directory)],
        "model-dev-zero": ["--model", "/dev/zero"],
        "curve-key-fifo": ["--curve-server-key", str(fifo), "--curve-client-key", str(fifo)],
    }.items():
        cases.append(CliCase(f"cli/{name}", args))

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    keep.append(taken)
    cases.append(CliCase("cli/port-taken", ["--port", str(taken.getsockname()[1])], code=1))
    return cases


# -- running ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    root = tmp_path_factory.mktemp("hostile_http")
    model = build_tiny_onnx(root / "tiny.onnx")
    token_path = root / "token"
    token_path.write_text(TOKEN + "\n", encoding="utf-8")
    token_path.chmod(0o600)
    started: dict[str, Server] = {}
    for name, extra in {
        "open": ["--model", str(model), "--max-upload-mb", "5"],
        "token": ["--token-file", str(token_path)],
    }.items():
        port, log, tmpdir = free_port(), root / f"{name}.log", root / f"tmp-{name}"
        tmpdir.mkdir()
        proc = start_web(port, f"tcp://127.0.0.1:{free_port()}", log, *extra, tmpdir=tmpdir)
        started[name] = Server(name, port, proc, log, tmpdir)
    try:
        for server in started.values():
            wait_for_web(server.port, server.proc, server.log)
        yield started
    finally:
        for server in started.values():
            stop(server.proc)


@dataclass
class Tally:
    cases: int = 0
    tracebacks: int = 0
    hangs: int = 0
    wrong_codes: int = 0
    leaks: int = 0
    left_behind: int = 0
    report: list[str] = field(default_factory=list)


def _judge_http(case: HttpCase, reply: Reply, seconds: float, tally: Tally) -> None:
    problems = []
    if reply.status == 0:
        tally.hangs += 1
        problems.append(f"no answer within {case.timeout:g} s")
    elif reply.status not in case.codes:
        tally.wrong_codes += 1
        problems.append(f"answered {reply.status}, expected {sorted(case.codes)}")
    if any(marker in reply.raw for marker in CRASH_MARKERS) or (
        reply.status >= 500 and reply.status not in case.codes
    ):
        tally.tracebacks += 1
        problems.append("server error")
    if any(form in reply.raw for form in TOKEN_FORMS):
        tally.leaks += 1
        problems.append("the token is in the answer")
    if case.check is not None and reply.status in case.codes and (problem := case.check(reply)):
        tally.wrong_codes += 1
        problems.append(problem)
    if problems:
        tally.report.append(f"{case.name} ({seconds:.1f} s): {'; '.join(problems)}\n    {reply.raw[:160]!r}")


def _run_http(case: HttpCase, server: Server) -> tuple[Reply, float]:
    started = time.monotonic()
    try:
        if case.script is not None:
            reply = case.script(server)
        else:
            assert case.build is not None
            reply = exchange(server.port, case.build(server), timeout=case.timeout, source=case.source)
    except OSError as exc:  # reset or timed out: no answer
        reply = Reply(0, raw=f"client error: {exc}".encode())
    except (IndexError, KeyError, ValueError) as exc:  # a script's earlier step went wrong
        reply = Reply(-1, raw=f"script failed: {type(exc).__name__}: {exc}".encode())
    return reply, time.monotonic() - started


def _run_cli(case: CliCase) -> subprocess.CompletedProcess[bytes] | None:
    port = [] if "--port" in case.argv else ["--port", str(free_port())]
    try:
        return subprocess.run(
            [sys.executable, "-m", "edge.commands.web", *case.argv, *port],
            cwd=REPO,
            env=clean_env(),
            capture_output=True,
            timeout=case.timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None


def test_hostile_http_corpus(servers: dict[str, Server], tmp_path: Path) -> None:
    """Every HTTP and command-line case; one report listing every misbehaving one."""
    http_cases = build_http_cases()
    keep: list[object] = []
    cli_cases = build_cli_cases(tmp_path, keep)
    assert len({c.name for c in http_cases} | {c.name for c in cli_cases}) == len(http_cases) + len(cli_cases)
    assert len(http_cases) + len(cli_cases) >= 150
    tally = Tally(cases=len(http_cases) + len(cli_cases))
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        cli_futures = [(case, pool.submit(_run_cli, case)) for case in cli_cases]
        for case in (c for c in http_cases if not c.slow):  # one at a time: the upload slot is shared
            reply, seconds = _run_http(case, servers[case.server])
            _judge_http(case, reply, seconds, tally)
        slow = [
            (case, pool.submit(_run_http, case, servers[case.server])) for case in http_cases if case.slow
        ]
        for case, future in slow:
            reply, seconds = future.result()
            _judge_http(case, reply, seconds, tally)
            print(f"{case.name}: {reply.status} after {seconds:.1f} s")
        for case, cli_future in cli_futures:
            _judge_cli(case, cli_future.result(), tally)
    for server in servers.values():
        assert server.proc.poll() is None, f"slr-web ({server.name}) died:\n{server.log.read_text()[-3000:]}"
        log = server.log.read_bytes()
        if any(marker in log for marker in CRASH_MARKERS):
            tally.tracebacks += 1
            tally.report.append(
                f"{server.name} server log has a traceback:\n{log.decode(errors='replace')[-3000:]}"
            )
        if any(form in log for form in TOKEN_FORMS):
            tally.leaks += 1
            tally.report.append(f"{server.name} server log shows the token")
        if leftovers := sorted(p.name for p in server.tmpdir.glob("slr-web-*")):
            tally.left_behind += 1
            tally.report.append(f"{server.name}: uploads left behind: {leftovers}")
    print(
        f"hostile HTTP corpus: {tally.cases} cases ({len(http_cases)} requests, "
        f"{len(cli_cases)} command lines) "
        f"in {time.monotonic() - started:.0f} s: {tally.tracebacks} tracebacks/5xx, {tally.hangs} hangs, "
        f"{tally.wrong_codes} wrong codes, {tally.leaks} leaks, {tally.left_behind} left behind"
    )
    assert not tally.report, f"{len(tally.report)} hostile HTTP cases misbehaved:\n" + "\n".join(tally.report)


def _judge_cli(case: CliCase, out: subprocess.CompletedProcess[bytes] | None, tally: Tally) -> None:
    if out is None:
        tally.hangs += 1
        tally.report.append(f"{case.name}: still running after {case.timeout:g} s")
        return
    problems = []
    err = out.stderr + out.stdout
    if any(marker in err for marker in CRASH_MARKERS):
        tally.tracebacks += 1
        problems.append("traceback")
    if out.returncode != case.code:
        tally.wrong_codes += 1
        problems.append(f"exit {out.returncode}, documented {case.code}")
    lines = out.stderr.decode(errors="replace").strip().splitlines()
    usage = bool(lines) and lines[0].startswith("usage:")  # argparse's own form: usage, then the error
    if not (len(lines) == 1 or usage) or not lines[-1].startswith("slr-web: error:"):
        tally.wrong_codes += 1
        problems.append("not one 'slr-web: error:' line")
    if any(form in err for form in TOKEN_FORMS):
        tally.leaks += 1
        problems.append("printed the token")
    if problems:
        tally.report.append(f"{case.name}: {'; '.join(problems)}\n    {out.stderr[-300:]!r}")


def test_reliability_doc_has_the_http_figures() -> None:
    doc = (REPO / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    assert "## Hostile HTTP" in doc
    section = doc.split("## Hostile HTTP", 1)[1]
    for word in ("cases", "tracebacks", "hangs", "wrong codes", "leaks"):
        assert word in section, word
