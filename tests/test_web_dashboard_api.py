"""The dashboard's server side: languages, the shared transcript on disk, stale state, latency metrics,
``complete: false`` for truncated clips. Real ``slr-web`` processes against a scripted daemon
(``helpers_dashboard.ScriptedFeed``); the transcript store and the catalogues are also checked directly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_dashboard import ScriptedFeed, catalogue, mjpeg_avi, truncated
from helpers_web import (
    build_slovo_model,
    clean_env,
    free_port,
    multipart,
    request,
    start_web,
    stop,
    wait_for_web,
)

from edge.web import i18n
from edge.web.transcript import FILENAME, Transcript

REPO = Path(__file__).resolve().parents[1]


def wait_until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def feed() -> Iterator[ScriptedFeed]:
    scripted = ScriptedFeed(f"tcp://127.0.0.1:{free_port()}")
    scripted.start()
    yield scripted
    scripted.stop()


class Server:
    def __init__(self, feed: ScriptedFeed, tmp: Path, *extra: str) -> None:
        self.port = free_port()
        self.log = tmp / f"web-{self.port}.log"
        self.proc = start_web(self.port, feed.endpoint, self.log, *extra)
        wait_for_web(self.port, self.proc, self.log)

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        return request(self.port, "GET", path, headers=headers)

    def stop(self) -> int | None:
        return stop(self.proc)


@pytest.fixture(scope="module")
def web(feed: ScriptedFeed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("dash_api")
    server = Server(feed, tmp, "--state-dir", str(tmp / "state"))
    yield server
    server.stop()


# ---- languages ----------------------------------------------------------------------------------


def test_catalogues_have_the_same_keys_and_cover_every_string_the_page_uses() -> None:
    ru, en = catalogue("ru"), catalogue("en")
    assert set(ru) == set(en)
    static = REPO / "edge/web/static"
    used = set(
        re.findall(
            r"\{\{([a-z0-9_]+)\}\}", (static / "index.html").read_text() + (static / "login.html").read_text()
        )
    )
    script = (static / "app.js").read_text()
    used |= set(re.findall(r"\bt\(\s*\"([a-z0-9_]+)\"", script))
    used |= {f"state_{s}" for s in ("starting", "running", "idle", "stopping")}
    used |= {f"camera_{s}" for s in ("ok", "connecting", "lost", "eof")}
    used |= {f"err_{c}" for c in (400, 409, 413, 415, 422, 504)}
    assert used - {"lang"} <= set(ru), sorted(used - {"lang"} - set(ru))
    assert re.search(r"[А-Яа-я]", "".join(ru.values())) and not re.search(r"[А-Яа-я]", en["live_heading"])
    for lang in i18n.LANGUAGES:
        for template in ("index.html", "login.html"):
            assert "{{" not in i18n.render(template, lang)


@pytest.mark.parametrize(
    ("header", "cookie", "query", "expected"),
    [
        ("", None, None, "ru"),
        ("en-US,en;q=0.9", None, None, "en"),
        ("de-DE,de;q=0.9,en;q=0.5,ru;q=0.4", None, None, "en"),
        ("fr, ru;q=0.1", None, None, "ru"),
        ("en;q=0, ru", None, None, "ru"),
        ("en;q=bogus," * 100, None, None, "ru"),
        ("en-US", "ru", None, "ru"),
        ("ru", "en", None, "en"),
        ("ru", "xx", "en", "en"),
        ("ru", "<script>", None, "ru"),
    ],
)
def test_language_negotiation(header: str, cookie: str | None, query: str | None, expected: str) -> None:
    assert i18n.negotiate(header, cookie, query) == expected


def test_page_and_login_are_russian_by_default_and_english_when_asked(
    web: Server, feed: ScriptedFeed
) -> None:
    status, headers, body = web.get("/")
    assert status == 200 and b'<html lang="ru">' in body and catalogue("ru")["live_heading"].encode() in body
    assert headers["content-language"] == "ru"
    status, headers, body = web.get("/", **{"Accept-Language": "en-GB,en;q=0.8"})
    assert b'<html lang="en">' in body and b">Live<" in body and headers["content-language"] == "en"
    status, headers, _ = web.get("/?lang=en")
    assert status == 303 and headers["location"] == "/" and "slr_lang=en" in headers["set-cookie"]
    assert b'<html lang="en">' in web.get("/", Cookie="slr_lang=en")[2]
    assert b'<html lang="ru">' in web.get("/", Cookie="slr_lang=<b>")[2]  # only known codes
    assert web.get("/?lang=%3Cx%3E")[1]["set-cookie"].startswith("slr_lang=ru;")


# ---- health, metrics, staleness -----------------------------------------------------------------


def metrics(web: Server) -> str:
    return web.get("/metrics")[2].decode()


def test_healthz_is_503_while_the_daemon_stops_and_metrics_drop_stale_gauges(
    web: Server, feed: ScriptedFeed
) -> None:
    wait_until(lambda: web.get("/healthz")[0] == 200)
    text = metrics(web)
    assert "slovo_daemon_up 1.0" in text and "slovo_extraction_fps 24.5" in text
    assert "slovo_latency_p50_seconds 0.05" in text and "slovo_latency_p95_seconds 0.08" in text
    assert 'slovo_latency_seconds_bucket{le="0.1",topic="prediction"}' in text
    feed.state = "stopping"
    try:
        _code, _, body = wait_until(lambda: (r := web.get("/healthz"))[0] == 503 and r)
        assert json.loads(body)["reason"] == "the daemon is stopping"
        text = metrics(web)
        assert "slovo_daemon_up 0.0" in text and "slovo_extraction_fps" not in text
        assert "slovo_dropped_frames_total 7.0" in text  # totals stay: they only grow
    finally:
        feed.state = "running"
    wait_until(lambda: web.get("/healthz")[0] == 200)
    feed.paused = True
    try:
        _code, _, body = wait_until(lambda: (r := web.get("/healthz"))[0] == 503 and r)
        assert "no status from the daemon" in json.loads(body)["reason"]
        text = metrics(web)
        assert "slovo_daemon_up 0.0" in text and "slovo_capture_fps" not in text
        assert "slovo_latency_p50_seconds" not in text
        age = float(re.search(r"^slovo_status_age_seconds (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
        assert age > 5.0
    finally:
        feed.paused = False
    wait_until(lambda: web.get("/healthz")[0] == 200)
    config = json.loads(web.get("/api/config")[2])
    assert config["status_stale_s"] == 5.0 and config["min_confidence"] == 0.5


def test_segments_are_counted_in_metrics(web: Server, feed: ScriptedFeed) -> None:
    def count() -> float:
        found = re.search(r"^slovo_segments_total (\S+)$", metrics(web), re.M)
        return float(found.group(1)) if found else 0.0

    before = count()
    for _ in range(3):
        feed.segment("да", 0.8)
    wait_until(lambda: count() >= before + 3)
    assert 'slovo_latency_seconds_count{topic="segment"}' in metrics(web)


# ---- transcript ---------------------------------------------------------------------------------


def test_transcript_survives_a_restart_and_delete_clears_it(feed: ScriptedFeed, tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = Server(feed, tmp_path, "--state-dir", str(state))
    try:
        for word, prob in (("один", 0.9), ("два", 0.3), ("три", 0.7)):
            feed.segment(word, prob)
        got = wait_until(lambda: len(json.loads(server.get("/api/transcript")[2])["entries"]) >= 3 and server)
        assert got
    finally:
        assert server.stop() in (0, None)
    stored = json.loads((state / FILENAME).read_text("utf-8"))
    assert [e["label"] for e in stored["entries"]][-3:] == ["один", "два", "три"]
    assert not list(state.glob(".transcript-*"))  # no temp file left behind
    server = Server(feed, tmp_path, "--state-dir", str(state))
    try:
        body = json.loads(server.get("/api/transcript")[2])
        assert [e["label"] for e in body["entries"]][-3:] == ["один", "два", "три"]
        assert body["min_confidence"] == 0.5
        status, _, out = request(server.port, "DELETE", "/api/transcript")
        assert status == 200 and json.loads(out)["cleared"] >= 3
        assert json.loads(server.get("/api/transcript")[2])["entries"] == []
    finally:
        server.stop()
    assert json.loads((state / FILENAME).read_text("utf-8"))["entries"] == []
    server = Server(feed, tmp_path, "--state-dir", str(state))
    try:
        assert json.loads(server.get("/api/transcript")[2])["entries"] == []
    finally:
        server.stop()


def test_transcript_store_is_bounded_validated_and_keeps_an_unreadable_file(tmp_path: Path) -> None:
    store = Transcript(tmp_path, max_entries=5)
    for i in range(8):
        store.add("segment", {"ts": 100.0 + i, "top_k": [{"label": f"w{i}", "index": 1, "prob": 0.9}]})
    for bad in (
        {"ts": "x", "top_k": []},
        {"ts": 1.0, "top_k": [{"label": 5, "prob": 0.5}]},
        {"ts": float("nan")},
    ):
        assert store.add("segment", bad) is None
    assert store.add("segment", {"ts": 1.0, "top_k": [{"label": "x" * 5000, "prob": 1.5}]}) is None
    store.flush()
    assert [e["label"] for e in Transcript(tmp_path).snapshot()] == ["w3", "w4", "w5", "w6", "w7"]
    long = Transcript(tmp_path)
    long.add("segment", {"ts": 1.0, "top_k": [{"label": "я" * 5000, "prob": 0.5}]})
    assert len(long.snapshot()[-1]["label"]) == 200
    # Window signs fill in only until the first segment (which replaces those this process added).
    fresh = Transcript(None)
    fresh.add("sign", {"ts": 1.0, "label": "a", "prob": 0.9})
    fresh.add("segment", {"ts": 2.0, "top_k": [{"label": "b", "index": 1, "prob": 0.9}]})
    fresh.add("sign", {"ts": 3.0, "label": "c", "prob": 0.9})
    assert [e["label"] for e in fresh.snapshot()] == ["b"]
    (tmp_path / FILENAME).write_text("{not json", encoding="utf-8")
    assert Transcript(tmp_path).snapshot() == []
    assert (tmp_path / (FILENAME + ".unreadable")).read_text() == "{not json"  # kept, not overwritten


@pytest.mark.parametrize("value", ["nan", "-0.1", "1.5"])
def test_bad_min_confidence_or_state_dir_exit_2(value: str, tmp_path: Path) -> None:
    args = [
        sys.executable,
        "-m",
        "edge.commands.web",
        "--min-confidence",
        value,
        "--state-dir",
        str(tmp_path),
    ]
    run = subprocess.run(args, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--min-confidence" in run.stderr and "Traceback" not in run.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = [sys.executable, "-m", "edge.commands.web", "--state-dir", str(blocker / "sub")]
    run = subprocess.run(args, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--state-dir" in run.stderr and "Traceback" not in run.stderr


# ---- truncated uploads: complete: false ---------------------------------------------------------


def test_truncated_clip_is_reported_by_slr_predict_and_the_upload_api(
    feed: ScriptedFeed, sample_video: Path, tmp_path: Path
) -> None:
    model = build_slovo_model(tmp_path / "slovo-tiny.onnx")
    whole = mjpeg_avi(sample_video, tmp_path / "whole.avi")
    cut = truncated(whole, tmp_path / "cut.avi")

    def predict(path: Path) -> dict[str, Any]:
        args = [sys.executable, "-m", "edge.commands.predict", str(path), "--model", str(model), "--json"]
        run = subprocess.run(args, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        result: dict[str, Any] = json.loads(run.stdout)
        return result

    full, part = predict(whole), predict(cut)
    assert full["complete"] is True and full["declared_frames"] == full["frames"] == 40
    assert part["complete"] is False and part["declared_frames"] == 40 and 0 < part["frames"] < 40
    server = Server(feed, tmp_path, "--model", str(model), "--state-dir", str(tmp_path / "state"))
    try:
        body, content_type = multipart("file", "cut.avi", cut.read_bytes(), "video/x-msvideo")
        status, _, out = request(
            server.port, "POST", "/api/predict", body, {"Content-Type": content_type}, timeout=300
        )
        assert status == 200, out
        result = json.loads(out)
        for key in ("complete", "declared_frames", "frames", "hand_frames", "top_k"):
            assert result[key] == part[key], key
        assert result["poster"].startswith("data:image/jpeg;base64,")
    finally:
        server.stop()


def test_clearing_the_transcript_from_another_site_is_refused(web: Server, feed: ScriptedFeed) -> None:
    feed.segment("остаётся", 0.9)
    wait_until(lambda: "остаётся" in web.get("/api/transcript")[2].decode())
    for headers in ({"Origin": "https://attacker.example"}, {"Sec-Fetch-Site": "cross-site"}):
        status, _, _ = request(web.port, "DELETE", "/api/transcript", headers=headers)
        assert status == 403, headers
    assert "остаётся" in web.get("/api/transcript")[2].decode()  # nothing was cleared


@pytest.mark.parametrize("kind", ["fifo", "symlink", "oversized"])
def test_a_transcript_file_that_is_not_ours_is_moved_aside_not_read(tmp_path: Path, kind: str) -> None:
    import os

    from edge.web.transcript import MAX_FILE_BYTES

    path = tmp_path / FILENAME
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"format": 1, "entries": []}), encoding="utf-8")
    if kind == "fifo":
        os.mkfifo(path)  # reading it would block slr-web's start for ever
    elif kind == "symlink":
        path.symlink_to(target)
    else:
        path.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    store = Transcript(tmp_path)
    assert store.snapshot() == [] and not os.path.lexists(path)
    assert os.path.lexists(tmp_path / (FILENAME + ".unreadable"))
    assert target.read_text(encoding="utf-8").startswith('{"format"')  # the link's target untouched
    store.add("segment", {"ts": 1.0, "top_k": [{"label": "да", "index": 1, "prob": 0.9}]})
    store.flush()
    assert path.is_file() and not path.is_symlink() and "да" in path.read_text(encoding="utf-8")


def test_app_js_builds_no_html_and_no_selector_from_data() -> None:
    """A standing guard for issue 16's page injection: markup sinks are absent and every selector is a
    literal (a selector built from a message's ``seq`` once let a crafted message remove the body)."""
    script = (REPO / "edge/web/static/app.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    calls = re.findall(r"querySelector(?:All)?\(([^)]*)\)", script)
    assert calls, "the guard no longer sees the selector calls"
    for argument in calls:
        assert re.fullmatch(r'"[^"`$+]*"', argument.strip()), argument
