"""The dashboard in a real browser (Debian's headless Chromium + Selenium) against a real daemon.

``slr-edge run`` loops over the sample clip with a tiny model over Slovo's 1001 Cyrillic labels
(marked untrained), ``slr-web`` serves the page, and Chromium (with a fake camera for the
recording test) loads it, preferring English (the Russian page and the language switch are covered by
``test_web_dashboard_browser.py``). Screenshots go to ``test-artifacts/web/`` (not committed).
"""

from __future__ import annotations

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
from helpers_web import (
    EventStream,
    build_slovo_model,
    chromium_paths,
    clean_env,
    free_port,
    short_clip,
    slovo_labels,
    start_daemon,
    start_web,
    stop,
    wait_for_web,
)
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "web"
CYRILLIC = re.compile("[А-Яа-яЁё]")
#: Colours app.js draws each part in (RGB); the canvas check looks for them.
HAND_COLOURS = ((0, 230, 118), (255, 145, 0))
POSE_COLOUR = (61, 139, 255)
WAIT_S = 120


@dataclass
class Stack:
    url: str
    port: int
    daemon: subprocess.Popen[bytes]
    web: subprocess.Popen[bytes]
    model: Path
    tmp: Path
    endpoint: str


@pytest.fixture(scope="module")
def stack(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("web_browser")
    model = build_slovo_model(tmp / "slovo-tiny.onnx")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    # A low threshold and one window per decision: the transcript fills with (meaningless) signs.
    # Windows only: with segments published too, the page's transcript lists segments instead.
    daemon = start_daemon(
        model,
        sample_video,
        endpoint,
        tmp / "daemon.log",
        *("--threshold", "0.05", "--consecutive", "1", "--publish", "windows"),
    )
    port = free_port()
    # --min-confidence 0: the untrained model's signs are all listed (not hidden as low-confidence).
    web = start_web(
        port,
        endpoint,
        tmp / "web.log",
        *("--model", str(model), "--max-upload-mb", "1", "--min-confidence", "0"),
    )
    try:
        wait_for_web(port, web, tmp / "web.log")
        yield Stack(f"http://127.0.0.1:{port}/", port, daemon, web, model, tmp, endpoint)
    finally:
        stop(web)
        stop(daemon)


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[webdriver.Chrome]:
    try:
        binary, driver_path = chromium_paths()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1700",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_script_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(stack.url)
        yield driver
    finally:
        driver.quit()


def wait(driver: webdriver.Chrome, check: Any, timeout: float = WAIT_S) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: check(d))


def texts(driver: webdriver.Chrome, selector: str) -> list[str]:
    """The rendered texts of every match, read in one script: the page re-renders the live lists on
    every message, so elements found first and read one by one can go stale in between."""
    script = "return Array.from(document.querySelectorAll(arguments[0]), (e) => e.innerText.trim());"
    found: list[str] = driver.execute_script(script, selector)
    return found


def shot(driver: webdriver.Chrome, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


@pytest.fixture(scope="module")
def clip(sample_video: Path, stack: Stack) -> Path:
    return short_clip(sample_video, stack.tmp / "short.mp4", frames=30)


def test_live_top5_with_cyrillic_labels_and_untrained_banner(browser: webdriver.Chrome) -> None:
    wait(browser, lambda d: len(texts(d, "#top5 li .label")) == 5)
    # One snapshot of the headline and the list (a new prediction may re-render them at any time).
    top, *labels = texts(browser, "#top-label, #top5 li .label")  # in document order
    known = set(slovo_labels())
    assert len(labels) == 5 and all(label in known for label in labels), labels
    assert any(CYRILLIC.search(label) for label in labels), labels
    assert top == labels[0]
    banner = browser.find_element(By.ID, "untrained")
    assert banner.is_displayed() and "meaningless" in banner.text
    shot(browser, "live")


def test_status_panel_updates(browser: webdriver.Chrome) -> None:
    wait(browser, lambda d: "ok" in d.find_element(By.ID, "st-camera").text)
    details = browser.find_element(By.ID, "details")  # the technician's numbers are behind "Details"
    if details.get_attribute("open") is None:
        browser.find_element(By.CSS_SELECTOR, "#details summary").click()
    first = browser.find_element(By.ID, "st-uptime").text
    wait(browser, lambda d: d.find_element(By.ID, "st-uptime").text != first, 15)
    assert "frames/s" in browser.find_element(By.ID, "st-extraction").text
    assert browser.find_element(By.ID, "st-model").text.startswith("slovo-tiny")
    assert browser.find_element(By.ID, "st-inference").text.endswith("ms")
    assert browser.find_element(By.ID, "link").text == "live"


COUNT_COLOURS = """
const [colours, tolerance] = arguments;
const canvas = document.getElementById('preview');
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
const counts = colours.map(() => 0);
for (let i = 0; i < data.length; i += 4) {
  colours.forEach((c, k) => {
    if (Math.abs(data[i] - c[0]) <= tolerance && Math.abs(data[i + 1] - c[1]) <= tolerance
        && Math.abs(data[i + 2] - c[2]) <= tolerance) counts[k] += 1;
  });
}
return counts;
"""


def test_preview_canvas_draws_the_camera_and_keypoints(browser: webdriver.Chrome) -> None:
    wait(browser, lambda d: d.execute_script("return window.slrStats.previewFrames") >= 2)
    # The sample has hands in most frames: wait for a frame with one, then look for its colour.
    wait(browser, lambda d: "hands: none" not in d.find_element(By.ID, "preview-meta").text, 60)
    counts = browser.execute_script(COUNT_COLOURS, [*HAND_COLOURS, POSE_COLOUR], 8)
    assert counts[0] + counts[1] > 30, counts  # hand skeleton pixels
    assert counts[2] > 30, counts  # pose skeleton pixels
    width = browser.execute_script("return document.getElementById('preview').width")
    assert 0 < width <= 640
    shot(browser, "preview")


def test_everything_subscribers_get_no_preview_while_the_page_watches(
    browser: webdriver.Chrome, stack: Stack
) -> None:
    import zmq

    assert browser.execute_script("return window.slrStats.previewFrames") >= 1  # the page watches
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")  # an old-style client: "everything"
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.endpoint)
    topics: set[bytes] = set()
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            if sock.poll(200):
                topics.add(bytes(sock.recv_multipart()[0]))
    finally:
        sock.close()
    assert b"status" in topics and topics <= {b"prediction", b"sign", b"status"}, topics
    frames = browser.execute_script("return window.slrStats.previewFrames")
    wait(browser, lambda d: d.execute_script("return window.slrStats.previewFrames") > frames, 30)


def test_transcript_fills_and_clears(browser: webdriver.Chrome) -> None:
    wait(browser, lambda d: len(texts(d, "#transcript .word")) >= 2)
    words = texts(browser, "#transcript .word")
    assert all(words) and any(CYRILLIC.search(w) for w in words)
    assert all(texts(browser, "#transcript time"))
    browser.find_element(By.ID, "copy").click()
    wait(browser, lambda d: d.find_element(By.ID, "copy-msg").text in ("copied", "nothing to copy yet"), 10)
    shot(browser, "transcript")
    browser.find_element(By.ID, "clear").click()  # asks first, then clears it for every viewer
    browser.find_element(By.ID, "clear-confirm").click()
    wait(browser, lambda d: d.find_element(By.ID, "copy-msg").text == "transcript cleared for everyone", 30)
    assert len(texts(browser, "#transcript .word")) <= 2  # new signs may land right after


def test_upload_shows_the_same_top5_as_slr_predict(
    browser: webdriver.Chrome, clip: Path, stack: Stack
) -> None:
    expected = json.loads(
        subprocess.run(
            [sys.executable, "-m", "edge.commands.predict", str(clip), "--model", str(stack.model), "--json"],
            cwd=REPO,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
    )
    browser.find_element(By.ID, "file").send_keys(str(clip))
    wait(browser, lambda d: d.find_element(By.ID, "send").is_enabled(), 10)
    browser.find_element(By.ID, "send").click()
    wait(browser, lambda d: d.find_element(By.ID, "clip-result").is_displayed(), 300)
    labels = texts(browser, "#clip-top5 li .label")
    percents = texts(browser, "#clip-top5 li .pct")
    assert labels == [entry["label"] for entry in expected["top_k"]]
    assert percents == [f"{entry['prob'] * 100:.1f}%" for entry in expected["top_k"]]
    assert f"frames: {expected['frames']}," in browser.find_element(By.ID, "clip-meta").text
    shot(browser, "upload")


def _pick(browser: webdriver.Chrome, path: Path) -> None:
    browser.find_element(By.ID, "file").send_keys(str(path))


@pytest.mark.parametrize(
    ("name", "data", "message", "server"),
    [
        ("notes.mp4", b"this is a text file, not a video\n" * 50, "not a video that can be decoded", True),
        ("empty.mp4", b"", "The file is empty.", False),
        ("big.mp4", b"\0" * (2 * 1024 * 1024), "the limit is 1 MB", False),
    ],
    ids=["text-named-mp4", "empty", "oversized"],
)
def test_bad_files_show_a_clear_error_and_the_page_keeps_working(
    browser: webdriver.Chrome, stack: Stack, name: str, data: bytes, message: str, server: bool
) -> None:
    path = stack.tmp / name
    path.write_bytes(data)
    _pick(browser, path)
    if server:  # decodable or not is decided by the server, by decoding
        wait(browser, lambda d: d.find_element(By.ID, "send").is_enabled(), 10)
        browser.find_element(By.ID, "send").click()
    error = wait(browser, lambda d: (e := d.find_element(By.ID, "clip-error")).is_displayed() and e, 120)
    assert message in error.text
    shot(browser, f"error-{name.split('.')[0]}")
    before = browser.find_element(By.ID, "pred-meta").text
    wait(browser, lambda d: d.find_element(By.ID, "pred-meta").text != before, 30)  # still live
    assert browser.find_element(By.ID, "link").text == "live"


def test_record_three_seconds_from_the_browser_camera(browser: webdriver.Chrome) -> None:
    browser.find_element(By.ID, "record").click()
    wait(browser, lambda d: d.find_element(By.ID, "countdown").is_displayed(), 20)
    shot(browser, "recording")

    def finished(d: webdriver.Chrome) -> bool | str:
        error = d.find_element(By.ID, "clip-error")
        failed = error.is_displayed() and "classify" in error.text
        return d.find_element(By.ID, "clip-result").is_displayed() or (failed and error.text)

    result = wait(browser, finished, 300)
    assert result is True, browser.find_element(By.ID, "clip-error").text
    assert len(texts(browser, "#clip-top5 li")) == 5
    # Chromium's fake camera shows a test pattern, not a signer: the page says so.
    assert "No hands" in browser.find_element(By.ID, "clip-error").text
    # A MediaRecorder WebM declares no honest frame count: the recording is a whole file (issue 27).
    assert not browser.find_element(By.ID, "clip-warning").is_displayed(), browser.find_element(
        By.ID, "clip-warning"
    ).text
    shot(browser, "recorded")


def test_twenty_event_stream_clients_for_a_minute_all_get_events(stack: Stack) -> None:
    counts: list[dict[str, int]] = [{} for _ in range(20)]

    def client(i: int) -> None:
        stream = EventStream(stack.port)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for kind, _ in stream.events(min(5.0, deadline - time.monotonic())):
                    counts[i][kind] = counts[i].get(kind, 0) + 1
        finally:
            stream.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert stack.daemon.poll() is None and stack.web.poll() is None
    for i, count in enumerate(counts):
        assert count.get("status", 0) >= 30, (i, count)  # one a second
        assert count.get("prediction", 0) >= 1 and count.get("sign", 0) >= 1, (i, count)
