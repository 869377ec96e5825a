"""``slr-web``'s defences, one test per defect of issue 16, against real ``slr-web`` processes.

Cross-site requests (403 in every mode), strict Host parsing, UTF-8 tokens (login form, cookie,
bearer), a session cookie that is not the token, login rate limiting and logout, an upload slot
that a stalled or vanished client cannot hold, multipart limits (boundary, every part counted,
number of parts), status messages with missing fields, and the command line's exit codes. The
broad fuzzing is in ``test_hostile_http.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_http import Reply, build_request, chunk, connect, exchange, read_reply, send_until_answered
from helpers_web import (
    EventStream,
    build_slovo_model,
    clean_env,
    free_port,
    multipart,
    short_clip,
    start_web,
    stop,
    wait_for_web,
)
from prometheus_client import generate_latest
from test_web_api import Web, _serve

from edge.web.bridge import DaemonBridge
from edge.web.metrics import WebMetrics

REPO = Path(__file__).resolve().parents[1]
#: Every character the old cookie could not carry: Cyrillic, space, ';', '"' and ','.
TOKEN = 'Пароль; "с пробелом", и запятая 42'
FORM = ("Content-Type", "application/x-www-form-urlencoded")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_slovo_model(tmp_path_factory.mktemp("sec_model") / "slovo-tiny.onnx")


@pytest.fixture(scope="module")
def clip(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_clip(sample_video, tmp_path_factory.mktemp("sec_clip") / "short.mp4", frames=20)


@pytest.fixture(scope="module")
def open_web(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """The default mode: loopback, no token (and a 5 MB upload limit)."""
    yield from _serve(tmp_path_factory.mktemp("sec_open"), model, "--max-upload-mb", "5")


def _token_file(directory: Path, token: str = TOKEN) -> Path:
    path = directory / "token"
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def token_web(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    tmp = tmp_path_factory.mktemp("sec_token")
    yield from _serve(tmp, model, "--token-file", str(_token_file(tmp)))


def _post(web: Web, path: str, headers: list[tuple[str, str | bytes]], body: bytes = b"") -> Reply:
    return exchange(web.port, build_request("POST", path, headers, body, host=f"127.0.0.1:{web.port}"))


def _get(web: Web, path: str, headers: list[tuple[str, str | bytes]] = (), host: str | None = None) -> Reply:  # type: ignore[assignment]
    return exchange(
        web.port,
        build_request("GET", path, list(headers), host=f"127.0.0.1:{web.port}" if host is None else host),
    )


def _login(web: Web, token: str, raw: bool = False) -> Reply:
    body = ("token=" + token).encode() if raw else urllib.parse.urlencode({"token": token}).encode()
    return _post(web, "/login", [FORM], body)


def _cookie(reply: Reply) -> str:
    return reply.set_cookies[0].split(";")[0]


# ---- cross-site requests ------------------------------------------------------------------


CROSS_SITE = {
    "origin-attacker": [("Origin", "https://attacker.example")],
    "fetch-cross-site": [("Sec-Fetch-Site", "cross-site")],
    "fetch-same-site": [("Sec-Fetch-Site", "same-site")],  # another port of this machine is same-site
    "origin-null": [("Origin", "null")],
    "origin-other-port": [("Origin", "http://127.0.0.1:1")],
    "origin-https": [("Origin", "https://127.0.0.1")],
    "same-origin-but-fetch-cross": [("Origin", "http://127.0.0.1:{port}"), ("Sec-Fetch-Site", "cross-site")],
}


@pytest.mark.parametrize("case", sorted(CROSS_SITE))
def test_cross_site_upload_is_refused_without_a_token(open_web: Web, case: str) -> None:
    body, content_type = multipart("file", "clip.mp4", b"")
    headers = [(k, v.format(port=open_web.port)) for k, v in CROSS_SITE[case]]
    reply = _post(open_web, "/api/predict", [("Content-Type", content_type), *headers], body)
    assert reply.status == 403 and "cross-site" in json.loads(reply.body)["error"]


def test_same_origin_upload_is_processed(open_web: Web) -> None:
    body, content_type = multipart("file", "clip.mp4", b"")
    origin = [("Origin", f"http://127.0.0.1:{open_web.port}"), ("Sec-Fetch-Site", "same-origin")]
    reply = _post(open_web, "/api/predict", [("Content-Type", content_type), *origin], body)
    assert reply.status == 400 and "empty" in json.loads(reply.body)["error"]  # reached the upload code
    reply = _post(open_web, "/api/predict", [("Content-Type", content_type)], body)  # a script: no Origin
    assert reply.status == 400


def test_null_origin_is_accepted_only_when_the_browser_says_same_origin(open_web: Web) -> None:
    # Chromium's form POST from our own page (served with "Referrer-Policy: no-referrer") says
    # "Origin: null" with "Sec-Fetch-Site: same-origin": the login form must work in a real browser.
    body, content_type = multipart("file", "clip.mp4", b"")
    vouched = [("Origin", "null"), ("Sec-Fetch-Site", "same-origin")]
    reply = _post(open_web, "/api/predict", [("Content-Type", content_type), *vouched], body)
    assert reply.status == 400 and "empty" in json.loads(reply.body)["error"]
    for site in ("same-site", "cross-site", "none"):
        headers = [("Content-Type", content_type), ("Origin", "null"), ("Sec-Fetch-Site", site)]
        reply = _post(open_web, "/api/predict", headers, body)
        assert reply.status == 403, site


def test_cross_site_is_refused_with_a_valid_token_too(token_web: Web) -> None:
    bearer = ("Authorization", b"Bearer " + TOKEN.encode())
    body, content_type = multipart("file", "clip.mp4", b"")
    reply = _post(token_web, "/api/predict", [bearer, ("Content-Type", content_type)], body)
    assert reply.status == 400  # the token alone opens it
    reply = _post(
        token_web,
        "/api/predict",
        [bearer, ("Content-Type", content_type), ("Origin", "https://a.example")],
        body,
    )
    assert reply.status == 403
    reply = _post(token_web, "/login", [FORM, ("Sec-Fetch-Site", "cross-site")], b"token=x")
    assert reply.status == 403 and not reply.set_cookies


# ---- Host header --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "[::1]attacker.example",
        "127.0.0.1:attacker.example",
        "127.0.0.1:8080:80",
        "[::1",
        "127.0.0.1:99999",
        "",
    ],
)
def test_malformed_host_headers_are_refused(open_web: Web, host: str) -> None:
    reply = _get(open_web, "/api/config", host=host)
    assert reply.status in (400, 421), reply.raw[:200]


def test_well_formed_loopback_hosts_are_served(open_web: Web) -> None:
    for host in (f"127.0.0.1:{open_web.port}", f"[::1]:{open_web.port}", "localhost", "LOCALHOST:80"):
        assert _get(open_web, "/api/config", host=host).status == 200, host


# ---- tokens, cookie, login limit, logout ----------------------------------------------------


def test_utf8_token_works_in_the_login_form_and_as_bearer(token_web: Web) -> None:
    for raw in (False, True):  # percent-encoded as browsers send it, or raw UTF-8 as curl may
        reply = _login(token_web, TOKEN, raw=raw)
        assert reply.status == 303 and reply.headers["location"] == "/", reply.raw[:300]
        assert _get(token_web, "/api/config", [("Cookie", _cookie(reply))]).status == 200
    assert _get(token_web, "/api/config", [("Authorization", b"Bearer " + TOKEN.encode())]).status == 200
    assert (
        _get(token_web, "/api/config", [("Authorization", b"Bearer " + TOKEN.encode("cp1251"))]).status == 401
    )
    assert (
        _get(
            token_web, "/api/config", [("Authorization", "Bearer " + TOKEN.encode().decode("latin-1"))]
        ).status
        == 401
    )


def test_cookie_is_a_session_not_the_token(token_web: Web) -> None:
    reply = _login(token_web, TOKEN)
    cookie = reply.set_cookies[0]
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes and "Secure" not in attributes
    value = _cookie(reply).split("=", 1)[1]
    assert len(value) >= 32 and value.isascii()
    for piece in ("Пароль", "пробелом", "запятая", urllib.parse.quote("Пароль")):
        assert piece not in urllib.parse.unquote(cookie) and piece not in cookie
    assert (
        _get(token_web, "/api/config", [("Cookie", f"slr_session={TOKEN.encode().decode('latin-1')}")]).status
        == 401
    )
    # Another site's malformed cookie on localhost does not hide ours.
    both = f'other="unterminated; {_cookie(reply)}; x'
    assert _get(token_web, "/api/config", [("Cookie", both)]).status == 200


def test_logout_ends_the_session(token_web: Web) -> None:
    cookie = _cookie(_login(token_web, TOKEN))
    refused = _post(token_web, "/logout", [("Cookie", cookie), ("Origin", "https://attacker.example")])
    assert refused.status == 403
    assert _get(token_web, "/api/config", [("Cookie", cookie)]).status == 200  # still logged in
    reply = _post(
        token_web, "/logout", [("Cookie", cookie), ("Origin", f"http://127.0.0.1:{token_web.port}")]
    )
    assert reply.status == 303 and reply.headers["location"] == "/login"
    assert "Max-Age=0" in reply.set_cookies[0]
    assert _get(token_web, "/api/config", [("Cookie", cookie)]).status == 401


def test_failed_logins_are_rate_limited_per_client(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "web.log"
    proc = start_web(port, f"tcp://127.0.0.1:{free_port()}", log, "--token-file", str(_token_file(tmp_path)))
    try:
        wait_for_web(port, proc, log)
        web = Web(port, None, proc, log, tmp_path)  # type: ignore[arg-type]
        codes = [_login(web, f"wrong-guess-number-{n}").status for n in range(5)]
        assert codes == [303] * 5
        limited = _login(web, "wrong-guess-number-6")
        assert limited.status == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
        assert _login(web, TOKEN).status == 429  # not even the right token while limited
        assert _get(web, "/api/config", [("Authorization", b"Bearer " + TOKEN.encode())]).status == 200
    finally:
        stop(proc)
    assert "Пароль" not in log.read_text(encoding="utf-8", errors="replace")


def test_unprintable_tokens_are_refused_at_start_up(tmp_path: Path) -> None:
    for token in ("tab\tinside-the-token-xx", "zero-width\u200b-space-inside", "bell\x07-inside-the-token"):
        path = _token_file(tmp_path, token)
        out = _cli("--token-file", str(path))
        assert out.returncode == 2 and "printable" in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert token not in out.stderr


def test_tls_cookie_is_secure(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    log = tmp_path / "web.log"
    extra = ["--token-file", str(_token_file(tmp_path)), "--tls-cert", str(cert), "--tls-key", str(key)]
    proc = start_web(port, f"tcp://127.0.0.1:{free_port()}", log, *extra)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with connect(port, tls=True, timeout=5) as sock:
                    body = urllib.parse.urlencode({"token": TOKEN}).encode()
                    sock.sendall(build_request("POST", "/login", [FORM], body, host=f"localhost:{port}"))
                    reply = read_reply(sock)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        assert reply.status == 303
        assert "Secure" in [part.strip() for part in reply.set_cookies[0].split(";")]
    finally:
        stop(proc)


# ---- the upload slot ----------------------------------------------------------------------


def _stalled_upload(port: int) -> socket.socket:
    """A chunked upload that sends 16 bytes of its body and then nothing."""
    _, content_type = multipart("file", "clip.mp4", b"")
    head = build_request("POST", "/api/predict", [("Content-Type", content_type)], host=f"127.0.0.1:{port}")
    head = head.replace(b"Connection: close\r\n", b"Connection: close\r\nTransfer-Encoding: chunked\r\n")
    sock = connect(port, timeout=120)
    sock.sendall(head + chunk(b"--" + content_type.split("boundary=")[1][:14].encode()))
    return sock


def test_stalled_uploads_neither_hold_the_slot_nor_stay_open(open_web: Web, clip: Path) -> None:
    stalled = [_stalled_upload(open_web.port) for _ in range(3)]
    try:
        time.sleep(1.0)
        # Three uploads may be arriving at once; a fourth is told to come back.
        status, body = open_web.post_file(clip.read_bytes())
        assert status == 409 and "uploaded" in body["error"]
        started = time.monotonic()
        replies = [read_reply(sock, timeout=120) for sock in stalled]
        waited = time.monotonic() - started
    finally:
        for sock in stalled:
            sock.close()
    assert [reply.status for reply in replies] == [408] * 3, [r.raw[:200] for r in replies]
    print(f"stalled uploads cut off after {waited + 1.0:.1f} s")
    status, body = open_web.post_file(clip.read_bytes())
    assert status == 200, body


def test_a_stalled_upload_does_not_block_a_real_one(open_web: Web, clip: Path) -> None:
    stalled = _stalled_upload(open_web.port)
    try:
        time.sleep(0.5)
        status, body = open_web.post_file(clip.read_bytes())
        assert status == 200, body
        assert read_reply(stalled, timeout=120).status == 408
    finally:
        stalled.close()


def _workers(pid: int) -> list[int]:
    """Clip worker processes (not ``--describe``) that are children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"edge.web.clip_worker" in cmdline and b"--describe" not in cmdline:
            found.append(int(entry.name))
    return found


def test_client_that_goes_away_mid_classification_frees_the_slot(open_web: Web, sample_video: Path) -> None:
    body, content_type = multipart("file", "clip.mp4", sample_video.read_bytes())
    events = EventStream(open_web.port)  # an earlier upload's warm worker exists before this job runs
    sock = connect(open_web.port, timeout=60)
    try:
        sock.sendall(build_request("POST", "/api/predict", [("Content-Type", content_type)], body))
        deadline = time.monotonic() + 120
        classifying = False
        while not (classifying and (workers := _workers(open_web.proc.pid))):
            assert time.monotonic() < deadline, "no clip worker started"
            states = [data.get("state") for kind, data in events.events(0.2) if kind == "progress"]
            classifying = classifying or "extracting" in states
    finally:
        sock.close()
        events.close()
    gone_at = time.monotonic()
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() - gone_at < 60, "the worker outlived its client"
        time.sleep(0.05)
    print(f"worker stopped {time.monotonic() - gone_at:.2f} s after the client went away")
    deadline = time.monotonic() + 20
    while "went away during classification" not in open_web.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "slr-web did not notice the client going away"
        time.sleep(0.1)
    status, body = open_web.post_file(b"not a video" * 10)
    assert status == 422, body  # the slot is free: classified, not 409


# ---- multipart limits -----------------------------------------------------------------------


def test_a_ten_thousand_character_boundary_is_a_400(open_web: Web) -> None:
    boundary = "b" * 10_000
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\nxx\r\n'
    body = (part + f"--{boundary}--\r\n").encode()
    reply = _post(
        open_web, "/api/predict", [("Content-Type", f"multipart/form-data; boundary={boundary}")], body
    )
    assert reply.status == 400 and "boundary" in json.loads(reply.body)["error"]


def test_a_huge_text_part_counts_towards_the_limit(open_web: Web) -> None:
    boundary = "----slovo-huge"
    head = build_request(
        "POST",
        "/api/predict",
        [("Content-Type", f"multipart/form-data; boundary={boundary}")],
        host="127.0.0.1",
    ).replace(b"Connection: close\r\n", b"Connection: close\r\nTransfer-Encoding: chunked\r\n")
    first = f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
    pieces = [chunk(first)] + [chunk(b"a" * (1 << 20)) for _ in range(200)]  # 200 MB of "text"
    reply, sent = send_until_answered(open_web.port, head, iter(pieces))
    assert reply.status == 413, reply.raw[:200]
    assert sent < 40 * (1 << 20), f"{sent / 2**20:.0f} MB read under a 5 MB limit"


def test_too_many_parts_are_refused(open_web: Web) -> None:
    boundary = "----slovo-parts"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n' for n in range(100)
    )
    body = (parts + f"--{boundary}--\r\n").encode()
    reply = _post(
        open_web, "/api/predict", [("Content-Type", f"multipart/form-data; boundary={boundary}")], body
    )
    assert reply.status == 400 and "parts" in json.loads(reply.body)["error"]


# ---- status messages with missing or odd fields ---------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        {"camera": "ok"},
        {
            "camera": "ok",
            "extraction_fps": "fast",
            "capture_fps": None,
            "errors": 3,
            "dropped_frames": 10**400,
        },
        {"errors": {"inference": "many"}, "buffer_fill": [1], "idle": {"x": 1}},
        {},
    ],
)
def test_metrics_and_health_survive_a_partial_status(status: dict[str, object]) -> None:
    metrics = WebMetrics(lambda: (status, 0.5))
    text = generate_latest(metrics.registry).decode()
    assert "slovo_daemon_up 1.0" in text
    metrics.observe_message("prediction", {"inference_ms": "x", "ts": "y"})
    metrics.observe_message("prediction", {"inference_ms": None})
    bridge = DaemonBridge("tcp://127.0.0.1:9", metrics, status=status, status_received_at=time.monotonic())
    ok, reason = bridge.healthy()
    assert not ok and reason


# ---- command line ---------------------------------------------------------------------------


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.commands.web", *args],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_busy_port_is_exit_1_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _cli("--port", str(port))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"slr-web: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_with_0(tmp_path: Path, signum: int) -> None:
    port = free_port()
    log = tmp_path / "web.log"
    proc = start_web(port, f"tcp://127.0.0.1:{free_port()}", log)
    try:
        wait_for_web(port, proc, log)
        proc.send_signal(signum)
        code = proc.wait(timeout=60)
    finally:
        stop(proc)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_options_that_would_hang_or_misbehave_exit_2(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    results = {}
    cases = {
        "token-fifo": ["--token-file", str(fifo)],
        "token-dev-zero": ["--token-file", "/dev/zero"],
        "tls-fifo": ["--tls-cert", str(fifo), "--tls-key", str(fifo)],
        "tls-junk": ["--tls-cert", str(junk), "--tls-key", str(junk)],
        "endpoint": ["--endpoint", "carrier-pigeon://x"],
        "upload-timeout-nan": ["--upload-timeout", "nan"],
        "upload-timeout-inf": ["--upload-timeout", "inf"],
        "upload-timeout-negative": ["--upload-timeout", "-5"],
        "upload-min-rate-nan": ["--upload-min-rate", "nan"],
    }

    def one(name: str, args: list[str]) -> None:
        results[name] = _cli(*args, timeout=60)

    threads = [threading.Thread(target=one, args=item) for item in cases.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, out in results.items():
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("slr-web: error:"), (
            name,
            out.stderr,
        )
