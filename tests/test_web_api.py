"""``slr-web``'s HTTP API, against a real ``slr-web`` process and a scripted daemon (a real Publisher).

Every endpoint, the token (header, cookie, and on the event stream), the security headers, the
Host check, and uploads: the same result as ``slr-predict --json``, undecodable/empty/oversized
files, and one clip at a time. The browser-level tests are in ``test_web_browser.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers_web import (
    EventStream,
    build_slovo_model,
    clean_env,
    free_port,
    multipart,
    request,
    short_clip,
    start_web,
    stop,
    wait_for_web,
)

from edge.contract.protocol import ModelInfo, Prediction, Segment, SignEvent, Status, TopKEntry
from edge.transport.publisher import Publisher

REPO = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token-for-tests-0123456789"


def status_body(camera: str = "ok", fps: float = 25.0) -> Status:
    return Status(
        camera=camera,  # type: ignore[arg-type]
        source="/dev/video0",
        encrypted=False,
        capture_fps=fps,
        extraction_fps=fps,
        dropped_frames=3,
        inference_p50_ms=12.5,
        buffer_fill=128,
        idle=False,
        model=ModelInfo("m", "ab" * 32),
        uptime_s=10.0,
        version="0.1.0",
        state="running",
    )


PREDICTION = Prediction(
    top_k=[TopKEntry("привет", 1, 0.8), TopKEntry("спасибо", 2, 0.1)],
    window_start=0.0,
    window_end=4.2,
    frames_used=100,
    inference_ms=15.0,
    resampled=False,
    model="m",
    latency_ms=40.0,
)

SEGMENT = Segment(
    top_k=[TopKEntry("спасибо", 2, 0.7), TopKEntry("привет", 1, 0.2)],
    start=0.0,
    end=3.1,
    frames=93,
    hand_frames=80,
    cut=False,
    resampled=False,
    inference_ms=20.0,
    latency_ms=25.0,
    model="m",
)


class ScriptedDaemon(threading.Thread):
    """Publishes status, prediction and sign messages every 0.2 s, like a daemon would."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.publisher = Publisher(endpoint)
        self.camera = "ok"
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.publisher.send(status_body(self.camera))
            self.publisher.send(PREDICTION)
            self.publisher.send(SignEvent("привет", 1, 0.8, 2, 0.0, 4.2, 30.0))
            self.publisher.send(SEGMENT)
            self._halt.wait(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)
        self.publisher.close()


@dataclass
class Web:
    port: int
    daemon: ScriptedDaemon
    proc: subprocess.Popen[bytes]
    log: Path
    #: The server's TMPDIR: uploads land here (private to this test module).
    tmpdir: Path

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        return request(self.port, "GET", path, headers=headers)

    def post_file(self, data: bytes, name: str = "clip.mp4", **headers: str) -> tuple[int, dict[str, Any]]:
        body, content_type = multipart("file", name, data)
        status, _, out = request(
            self.port, "POST", "/api/predict", body, {"Content-Type": content_type, **headers}, timeout=300
        )
        return status, json.loads(out)


def _serve(tmp: Path, model: Path, *extra: str) -> Iterator[Web]:
    port = free_port()
    daemon = ScriptedDaemon(f"tcp://127.0.0.1:{free_port()}")
    daemon.start()
    log = tmp / "web.log"
    tmpdir = tmp / "tmp"
    tmpdir.mkdir()
    proc = start_web(port, daemon.publisher.endpoint, log, "--model", str(model), *extra, tmpdir=tmpdir)
    served = Web(port, daemon, proc, log, tmpdir)
    try:
        wait_for_web(port, proc, log)
        yield served
    finally:
        stop(proc)
        served.daemon.stop()  # a test may have restarted it


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_slovo_model(tmp_path_factory.mktemp("web_model") / "slovo-tiny.onnx")


@pytest.fixture(scope="module")
def web(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    yield from _serve(tmp_path_factory.mktemp("web"), model, "--max-upload-mb", "1")


@pytest.fixture(scope="module")
def token_web(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    tmp = tmp_path_factory.mktemp("web_token")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    yield from _serve(tmp, model, "--token-file", str(token_file))


@pytest.fixture(scope="module")
def clip(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_clip(sample_video, tmp_path_factory.mktemp("clip") / "short.mp4", frames=30)


@pytest.fixture(scope="module")
def predicted(clip: Path, model: Path) -> dict[str, Any]:
    """What ``slr-predict --json`` says about ``clip``: the reference for uploads."""
    out = subprocess.run(
        [sys.executable, "-m", "edge.commands.predict", str(clip), "--model", str(model), "--json"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


# ---- pages and read-only endpoints ---------------------------------------------------------


def test_page_and_assets_are_served_with_restrictive_headers(web: Web) -> None:
    status, headers, body = web.get("/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script src="/static/app.js"' in body and b"<script>" not in body  # no inline script
    assert b"http://" not in body and b"https://" not in body  # no external origins
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        status, headers, body = web.get(asset)
        assert (
            status == 200 and kind in headers["content-type"] and b"http" not in body.replace(b"http.", b"")
        ), asset


def test_status_config_metrics_and_health(web: Web) -> None:
    status = wait_until(lambda: (r := web.get("/api/status"))[0] == 200 and json.loads(r[2]))
    assert status["topic"] == "status" and status["camera"] == "ok" and status["model"]["name"] == "m"
    assert web.get("/api/status")[1]["cache-control"] == "no-store"

    config = json.loads(web.get("/api/config")[2])
    assert config["upload"] and config["untrained"] is True and config["upload_model"] == "slovo-tiny"
    assert config["max_upload_bytes"] == 1024 * 1024

    code, headers, body = web.get("/metrics")
    text = body.decode()
    assert code == 200 and headers["content-type"].startswith("text/plain")
    for name in (
        "slovo_extraction_fps 25.0",
        "slovo_dropped_frames_total 3.0",
        "slovo_inference_latency_seconds_bucket",
        "slovo_publish_latency_seconds_bucket",
        "slovo_windows_total",
        "slovo_signs_total",
        'slovo_daemon_errors_total{stage="inference"} 0.0',
        "slovo_daemon_up 1.0",
    ):
        assert name in text, name

    assert web.get("/healthz")[0] == 200
    web.daemon.camera = "lost"
    try:
        code = wait_until(lambda: (r := web.get("/healthz"))[0] == 503 and r)
        assert "camera is lost" in json.loads(code[2])["reason"]
    finally:
        web.daemon.camera = "ok"
    wait_until(lambda: web.get("/healthz")[0] == 200)


def test_unknown_route_is_a_json_404(web: Web) -> None:
    status, _, body = web.get("/nope/../../etc/passwd")
    assert status == 404 and "error" in json.loads(body)


def test_event_stream_carries_prediction_sign_and_status(web: Web) -> None:
    stream = EventStream(web.port)
    try:
        assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
        events = stream.events(3.0)
    finally:
        stream.close()
    kinds = {kind for kind, _ in events}
    assert {"prediction", "sign", "status"} <= kinds
    prediction = next(data for kind, data in events if kind == "prediction")
    assert prediction["top_k"][0]["label"] == "привет"


def test_segments_reach_the_page_and_are_replayed_before_signs(web: Web) -> None:
    # The transcript lists segments once the daemon publishes them, so a page that connects late
    # must learn about them before the replayed sliding-window signs.
    stream = EventStream(web.port)
    try:
        events = stream.events(3.0)
    finally:
        stream.close()
    kinds = [kind for kind, _ in events]
    assert "segment" in kinds
    assert kinds.index("segment") < kinds.index("sign")
    segment = next(data for kind, data in events if kind == "segment")
    assert segment["top_k"][0]["label"] == "спасибо" and segment["latency_ms"] == 25.0


def test_preview_stream_turns_the_daemons_preview_on_and_off(web: Web) -> None:
    publisher = web.daemon.publisher
    assert publisher.watchers("preview") == 0
    stream = EventStream(web.port, "/api/preview")
    try:
        assert stream.status == 200
        wait_until(lambda: publisher.watchers("preview") == 1)
        body = {"jpeg": "AAAA", "width": 4, "height": 2, "frame_ts": 1.0, "keypoints": {}}
        publisher.publish(
            "preview", {**body, "keypoints": dict.fromkeys(("pose", "left_hand", "right_hand", "lips"))}
        )
        events = stream.events(2.0)
    finally:
        stream.close()
    assert [kind for kind, _ in events] == ["preview"]
    wait_until(lambda: publisher.watchers("preview") == 0)


def test_host_header_must_be_loopback(web: Web) -> None:
    status, _, _ = web.get("/api/status", Host="attacker.example")
    assert status == 421
    assert web.get("/api/status", Host=f"localhost:{web.port}")[0] == 200


# ---- uploads --------------------------------------------------------------------------------


def test_upload_gives_the_same_result_as_slr_predict(web: Web, clip: Path, predicted: dict[str, Any]) -> None:
    status, result = web.post_file(clip.read_bytes())
    assert status == 200, result
    assert result["source"] == "upload"
    for key in ("model", "frames", "hand_frames", "clip_fps", "resampled", "top_k"):
        assert result[key] == predicted[key], key
    assert 'slovo_web_uploads_total{outcome="ok"} 1.0' in web.get("/metrics")[2].decode()


def test_uploads_are_deleted_afterwards(web: Web, clip: Path) -> None:
    # The worker gets a file in a fresh private directory; after the answer that directory is gone.
    status, _ = web.post_file(b"this is not a video at all" * 10)
    assert status == 422
    status, _ = web.post_file(clip.read_bytes())
    assert status == 200
    assert not list(web.tmpdir.glob("slr-web-*"))


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"just text, named like a video\n" * 20, 422, "not a video that can be decoded"),
        (b"", 400, "the file is empty"),
        (b"\0" * (1024 * 1024 + 1), 413, "larger than the 1 MB limit"),
    ],
    ids=["text-named-mp4", "empty", "oversized"],
)
def test_bad_uploads_get_a_clear_error(web: Web, data: bytes, status: int, message: str) -> None:
    code, body = web.post_file(data, "clip.mp4")
    assert code == status and message in body["error"], body
    assert web.get("/api/status")[0] == 200  # still serving


def test_oversized_upload_is_refused_while_streaming(web: Web) -> None:
    """Without a Content-Length the limit is enforced on the bytes as they arrive."""
    import http.client

    body, content_type = multipart("file", "big.mp4", b"\0" * (3 * 1024 * 1024))
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/predict")
        conn.putheader("Content-Type", content_type)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        sent = 0
        try:
            for start in range(0, len(body), 64 * 1024):
                piece = body[start : start + 64 * 1024]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end: that is the point
        response = conn.getresponse()
        assert response.status == 413 and "limit" in json.loads(response.read())["error"]
    finally:
        conn.close()


def test_second_upload_while_busy_gets_409(web: Web, clip: Path) -> None:
    results: list[tuple[int, dict[str, Any]]] = []
    first = threading.Thread(target=lambda: results.append(web.post_file(clip.read_bytes())))
    first.start()
    try:
        wait_until(lambda: "extracting" in _progress_states(web), timeout=60)
        status, body = web.post_file(clip.read_bytes())
        assert status == 409 and body["error"].startswith("busy")
    finally:
        first.join(300)
    assert results and results[0][0] == 200


def _progress_states(web: Web) -> set[str]:
    stream = EventStream(web.port)
    try:
        return {data.get("state") for kind, data in stream.events(1.0) if kind == "progress"}
    finally:
        stream.close()


def test_upload_needs_multipart(web: Web) -> None:
    status, _, body = request(web.port, "POST", "/api/predict", b"raw", {"Content-Type": "video/mp4"})
    assert status == 415 and "multipart" in json.loads(body)["error"]


# ---- token ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/status", "/api/config", "/api/events", "/api/preview", "/metrics", "/healthz"]
)
def test_token_is_required_on_every_endpoint(token_web: Web, path: str) -> None:
    status, _, body = token_web.get(path)
    assert status == 401 and "token" in json.loads(body)["error"]
    status, _, _ = token_web.get(path, Authorization="Bearer wrong-token-wrong-token")
    assert status == 401


def test_token_opens_the_api_and_the_event_stream(token_web: Web) -> None:
    wait_until(lambda: token_web.get("/api/status", Authorization=f"Bearer {TOKEN}")[0] == 200)
    stream = EventStream(token_web.port, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        assert stream.status == 200 and stream.events(2.0)
    finally:
        stream.close()
    bad = EventStream(token_web.port, headers={"Authorization": "Bearer nope-nope-nope-nope"})
    try:
        assert bad.status == 401
    finally:
        bad.close()
    code, _, _ = request(token_web.port, "POST", "/api/predict", b"", {"Content-Type": "multipart/form-data"})
    assert code == 401


def test_login_sets_a_strict_cookie_that_works_for_the_event_stream(token_web: Web) -> None:
    status, headers, _ = token_web.get("/")
    assert status == 303 and headers["location"] == "/login"
    assert token_web.get("/login")[0] == 200
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = request(token_web.port, "POST", "/login", b"token=wrong", form)
    assert status == 303 and headers["location"].startswith("/login") and "set-cookie" not in headers
    status, headers, _ = request(token_web.port, "POST", "/login", f"token={TOKEN}".encode(), form)
    cookie = headers["set-cookie"]
    assert status == 303 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    stream = EventStream(token_web.port, headers={"Cookie": cookie.split(";")[0]})
    try:
        assert stream.status == 200 and stream.events(2.0)
    finally:
        stream.close()


# ---- command line ---------------------------------------------------------------------------


def _web_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.commands.web", *args],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_remote_bind_needs_opt_in_and_a_private_token_file(tmp_path: Path) -> None:
    out = _web_cli("--host", "0.0.0.0")
    assert out.returncode == 2 and "--allow-remote" in out.stderr and "Traceback" not in out.stderr
    out = _web_cli("--host", "0.0.0.0", "--allow-remote")
    assert out.returncode == 2 and "--token-file" in out.stderr
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    out = _web_cli("--host", "0.0.0.0", "--allow-remote", "--token-file", str(token))
    assert out.returncode == 2 and "readable by others" in out.stderr
    token.chmod(0o600)
    token.write_text("short")
    out = _web_cli("--token-file", str(token))
    assert out.returncode == 2 and "at least 16" in out.stderr
    assert TOKEN not in out.stderr + out.stdout


def test_bad_model_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    out = _web_cli("--model", str(bad))
    assert out.returncode == 2 and "slr-web: error:" in out.stderr and "Traceback" not in out.stderr


def test_daemon_restart_is_survived_by_the_page_streams(web: Web) -> None:
    """The daemon goes away (health turns 503) and comes back on the same endpoint: events resume."""
    endpoint = web.daemon.publisher.endpoint
    stream = EventStream(web.port)
    try:
        assert stream.events(1.0)
        web.daemon.stop()
        wait_until(lambda: web.get("/healthz")[0] == 503, timeout=30)
        stream.events(0.5)  # drain what was queued before the stop
        deadline = time.monotonic() + 10
        while True:  # the port can stay busy for a moment after the old socket closed
            try:
                web.daemon = ScriptedDaemon(endpoint)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        web.daemon.start()
        events = stream.events(5.0)
    finally:
        stream.close()
    assert {"status", "prediction"} <= {kind for kind, _ in events}
    wait_until(lambda: web.get("/healthz")[0] == 200)
