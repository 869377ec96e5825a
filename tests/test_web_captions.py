"""Long videos in the dashboard (issue 19): episodes, a timeline, captions as a ``<track>``, SRT/VTT.

``POST /api/captions`` runs the clip worker in its captions mode, which is ``slr-predict --segments
--json --srt --vtt`` on the same path: the API's episodes and subtitle texts must equal what that
command prints and writes for the same file. The video is built at test time from the sample (the
clip, a second of still scene, the clip again: two episodes). Uploads stay one at a time: a clip
sent while the long video is being captioned gets 409. In Chromium (both languages) the page shows
the episodes on a timeline and as a list that seeks the video, plays it with the captions as a
``<track>``, downloads both subtitle files, and axe-core finds nothing.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt
from conftest import assert_same_top_k
from helpers_dashboard import ARTIFACTS, ScriptedFeed, axe_violations, chrome, clip_gap_clip
from helpers_web import (
    EventStream,
    build_slovo_model,
    clean_env,
    free_port,
    multipart,
    request,
    start_web,
    stop,
    wait_for_web,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 600


@dataclass
class Site:
    port: int
    model: Path
    video: Path
    tmp: Path


@pytest.fixture(scope="module")
def site(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("captions")
    model = build_slovo_model(tmp / "slovo-tiny.onnx")
    video = clip_gap_clip(sample_video, tmp / "clip_gap_clip.mp4")
    feed = ScriptedFeed(f"tcp://127.0.0.1:{free_port()}")
    feed.start()
    port = free_port()
    # --min-confidence 0: the untrained model's episodes all become cues (what --min-confidence 0 does).
    args = ("--model", str(model), "--max-upload-mb", "20", "--min-confidence", "0")
    web = start_web(port, feed.endpoint, tmp / "web.log", *args)
    try:
        wait_for_web(port, web, tmp / "web.log")
        yield Site(port, model, video, tmp)
    finally:
        stop(web)
        feed.stop()


@pytest.fixture(scope="module")
def command_line(site: Site) -> dict[str, Any]:
    """``slr-predict --segments --json --srt --vtt --min-confidence 0`` on the same file."""
    srt_path, vtt_path = site.tmp / "cli.srt", site.tmp / "cli.vtt"
    args = [sys.executable, "-m", "edge.commands.predict", str(site.video), "--model", str(site.model)]
    args += ["--segments", "--json", "--srt", str(srt_path), "--vtt", str(vtt_path), "--min-confidence", "0"]
    run = subprocess.run(args, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=WAIT_S)
    assert run.returncode == 0, run.stderr
    return {
        "segments": json.loads(run.stdout),
        "srt": srt_path.read_text("utf-8"),
        "vtt": vtt_path.read_text("utf-8"),
    }


def post(site: Site, path: str, video: Path) -> tuple[int, dict[str, Any]]:
    body, content_type = multipart("file", video.name, video.read_bytes())
    status, _, out = request(site.port, "POST", path, body, {"Content-Type": content_type}, timeout=WAIT_S)
    return status, json.loads(out)


@pytest.fixture(scope="module")
def api_result(site: Site) -> dict[str, Any]:
    """The long video through ``POST /api/captions``, with a clip sent meanwhile (it must get 409)."""
    answer: dict[str, Any] = {}

    def captions() -> None:
        answer["status"], answer["body"] = post(site, "/api/captions", site.video)

    stream = EventStream(site.port)
    worker = threading.Thread(target=captions)
    worker.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:  # until the worker has started extracting
            kinds = [data.get("state") for kind, data in stream.events(1.0) if kind == "progress"]
            if "extracting" in kinds:
                break
        answer["meanwhile"] = post(site, "/api/predict", site.video)[0]
    finally:
        stream.close()
        worker.join(WAIT_S)
    assert answer["status"] == 200, answer["body"]
    return answer


def test_captions_api_equals_slr_predict_segments(api_result: dict[str, Any], command_line: dict) -> None:
    got, expected = api_result["body"], command_line
    assert len(got["segments"]) == len(expected["segments"]) == 2  # clip, still second, clip
    for a, b in zip(got["segments"], expected["segments"], strict=True):
        assert_same_top_k(a["top_k"], b["top_k"])
        for key in ("start", "end", "frames", "hand_frames", "cut"):
            assert a[key] == b[key], key
    assert got["srt"] == expected["srt"] and got["vtt"] == expected["vtt"]
    assert got["complete"] is True and got["frames"] == got["declared_frames"]
    assert got["source"] == "upload" and got["min_confidence"] == 0.0
    assert got["poster"].startswith("data:image/jpeg;base64,")
    # Both parse strictly, one cue per episode, inside it.
    cues = list(srt.parse(got["srt"]))
    vtt = webvtt.from_buffer(io.StringIO(got["vtt"]))
    assert len(cues) == len(vtt.captions) == len(got["cues"]) == 2
    for cue, segment in zip(cues, got["segments"], strict=True):
        assert segment["start"] - 1e-3 <= cue.start.total_seconds() < cue.end.total_seconds()
        assert cue.end.total_seconds() <= segment["end"] + 1e-3
        assert cue.content == segment["top_k"][0]["label"]


def test_uploads_stay_one_at_a_time(api_result: dict[str, Any]) -> None:
    assert api_result["meanwhile"] == 409


def test_captions_refuse_cross_site_requests_and_files_that_are_not_video(site: Site) -> None:
    body, content_type = multipart("file", "notes.mp4", b"this is text, not a video\n" * 40)
    headers = {"Content-Type": content_type, "Origin": "https://attacker.example"}
    status, _, _ = request(site.port, "POST", "/api/captions", body, headers, timeout=60)
    assert status == 403
    status, _, out = request(site.port, "POST", "/api/captions", body, {"Content-Type": content_type}, 120)
    assert status == 422 and "not a video" in json.loads(out)["error"]


# ---- the page ------------------------------------------------------------------------------------


def wait(driver: Any, check: Any, timeout: float = 60) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: check(d))


TRACK = """
const v = document.getElementById('clip-video');
const cues = (track) => track.cues ? Array.from(track.cues, (c) => [c.startTime, c.endTime, c.text]) : null;
const tracks = Array.from(v.querySelectorAll('track'),
  (e) => ({kind: e.kind, srclang: e.srclang, mode: e.track.mode, cues: cues(e.track)}));
return {tracks, duration: v.duration, hidden: v.hidden,
  marks: Array.from(document.querySelectorAll('#timeline .mark'), (m) => [m.style.left, m.style.width]),
  items: Array.from(document.querySelectorAll('#episode-list button'), (b) => b.textContent)};
"""


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_page_shows_the_timeline_plays_with_captions_and_downloads_them(
    site: Site, api_result: dict[str, Any], lang: str
) -> None:
    downloads = site.tmp / f"downloads-{lang}"
    downloads.mkdir()
    driver = chrome(lang, downloads)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(f"http://127.0.0.1:{site.port}/")
        wait(driver, lambda d: d.execute_script("return window.slrStats !== undefined"))
        driver.find_element(By.ID, "captions-mode").click()
        driver.find_element(By.ID, "file").send_keys(str(site.video))
        wait(driver, lambda d: d.find_element(By.ID, "send").is_enabled(), 20)
        driver.find_element(By.ID, "send").click()
        wait(driver, lambda d: d.find_element(By.ID, "episodes").is_displayed(), WAIT_S)
        expected = api_result["body"]
        state = wait(
            driver, lambda d: (s := d.execute_script(TRACK))["tracks"] and s["tracks"][0]["cues"] and s
        )
        assert len(state["items"]) == len(state["marks"]) == 2
        for item, segment in zip(state["items"], expected["segments"], strict=True):
            assert segment["top_k"][0]["label"] in item and re.match(r"0:0\d[.,]\d–0:\d\d[.,]\d", item), item
        track = state["tracks"][0]
        # The page draws the cues itself (#caption-text), large enough on a phone; full screen: the track.
        assert track["kind"] == "captions" and track["srclang"] == "ru" and track["mode"] == "hidden"
        assert [c[2] for c in track["cues"]] == [c["text"] for c in expected["cues"]]
        for (start, end, _), cue in zip(track["cues"], expected["cues"], strict=True):
            assert abs(start - cue["start_ms"] / 1000) < 1e-3 and abs(end - cue["end_ms"] / 1000) < 1e-3
        # The list seeks the video to the episode.
        driver.find_elements(By.CSS_SELECTOR, "#episode-list button")[1].click()
        second = expected["segments"][1]["start"]
        position = "return document.getElementById('clip-video').currentTime"
        wait(driver, lambda d: d.execute_script(position) >= second)
        driver.save_screenshot(str(ARTIFACTS / f"captions-{lang}.png"))
        assert axe_violations(driver) == []
        for fmt in ("srt", "vtt"):
            driver.find_element(By.ID, f"download-{fmt}").click()
            target = downloads / f"captions.{fmt}"
            deadline = time.monotonic() + 30
            while not target.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert target.read_text("utf-8") == expected[fmt], fmt
    finally:
        driver.quit()
