"""The dashboard as its users meet it, in headless Chromium, in Russian and in English.

A scripted daemon (a real Publisher on the daemon's endpoint, ``helpers_dashboard.ScriptedFeed``)
drives a real ``slr-web``: language negotiation and the switch, the verdict wording with its
threshold, clock times and durations, the stale state when the daemon goes silent or stops, the
shared transcript (minimum confidence, reload, copy, download, clear for everyone), speech, uploads
(truncated file, no hands, a poster frame for an AVI the browser can't play), the layout at
1280×800 and 390×844, touch targets, keyboard-only use with visible focus, axe-core (0 violations
on the page and the login form), and hostile strings from a rogue publisher that must stay text.
Screenshots go to ``test-artifacts/web/`` (not committed).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers_dashboard import (
    ARTIFACTS,
    ScriptedFeed,
    axe_violations,
    catalogue,
    chrome,
    handless_clip,
    mjpeg_avi,
    truncated,
    viewport,
)
from helpers_web import build_slovo_model, free_port, request, start_web, stop, wait_for_web
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

LANGS = ("ru", "en")
TOKEN = "dashboard-login-token-0123456789"
WAIT_S = 60
CLOCK = re.compile(r"\b\d{2}:\d{2}:\d{2}\b")
UNIX_TIME = re.compile(r"\d{9,}")


@dataclass
class Site:
    url: str
    port: int
    feed: ScriptedFeed
    tmp: Path
    login_url: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("dashboard")
    model = build_slovo_model(tmp / "slovo-tiny.onnx")
    feed = ScriptedFeed(f"tcp://127.0.0.1:{free_port()}")
    feed.start()
    port, login_port = free_port(), free_port()
    (tmp / "main").mkdir()
    (tmp / "login").mkdir()
    web = start_web(
        port, feed.endpoint, tmp / "main" / "web.log", "--model", str(model), "--max-upload-mb", "5"
    )
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    login = start_web(login_port, feed.endpoint, tmp / "login" / "web.log", "--token-file", str(token_file))
    try:
        wait_for_web(port, web, tmp / "main" / "web.log")
        wait_for_web(login_port, login, tmp / "login" / "web.log")
        yield Site(f"http://127.0.0.1:{port}/", port, feed, tmp, f"http://127.0.0.1:{login_port}/login")
    finally:
        stop(web)
        stop(login)
        feed.stop()


@pytest.fixture(scope="module", params=LANGS)
def lang(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def page(site: Site, lang: str) -> Iterator[Any]:
    downloads = site.tmp / f"downloads-{lang}"
    downloads.mkdir()
    driver = chrome(lang, downloads)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(site.url)
        wait(driver, lambda d: d.execute_script("return window.slrStats !== undefined"))
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def t(lang: str) -> Any:
    strings = catalogue(lang)

    def translate(key: str, **params: Any) -> str:
        return re.sub(r"\{([a-z0-9_]+)\}", lambda m: str(params.get(m.group(1), m.group(0))), strings[key])

    return translate


def wait(driver: Any, check: Any, timeout: float = WAIT_S) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: check(d))


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def text_of(driver: Any, element_id: str) -> str:
    return str(
        js(
            driver,
            "const e = document.getElementById(arguments[0]); return e ? e.textContent : null",
            element_id,
        )
    )


def percent(lang: str, value: int) -> str:
    return f"{value} %" if lang == "ru" else f"{value}%"


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def fresh(driver: Any, site: Site) -> None:
    """Back to a live page with the feed running, the layout at 1280×800."""
    site.feed.paused, site.feed.state = False, "running"
    site.feed.top = [("привет", 0.82), ("спасибо", 0.1), ("пока", 0.04), ("да", 0.02), ("нет", 0.01)]
    viewport(driver, 1280, 800)
    driver.get(site.url)
    wait(driver, lambda d: js(d, "return !document.getElementById('live').classList.contains('stale')"))


def transcript_words(driver: Any) -> list[str]:
    return list(
        js(driver, "return Array.from(document.querySelectorAll('#transcript .word'), (e) => e.textContent)")
    )


# ---- language -----------------------------------------------------------------------------------


def test_page_speaks_the_browsers_language_and_switches(page: Any, site: Site, lang: str, t: Any) -> None:
    fresh(page, site)
    assert js(page, "return document.documentElement.lang") == lang
    assert text_of(page, "live-h") == t("live_heading") and page.title == t("page_title")
    wait(page, lambda d: text_of(d, "link") == t("link_live"))
    other = "en" if lang == "ru" else "ru"
    foreign = set(catalogue(other).values()) - set(catalogue(lang).values()) - {t("other_lang_name")}
    shown = js(page, "return document.body.innerText")
    leaked = [s for s in foreign if len(s) > 3 and "{" not in s and s in shown]
    assert not leaked, leaked
    switch = page.find_element(By.CSS_SELECTOR, "nav a[hreflang]")
    assert switch.text == t("other_lang_name")
    switch.click()
    wait(page, lambda d: js(d, "return document.documentElement.lang") == other)
    assert text_of(page, "live-h") == catalogue(other)["live_heading"]
    page.find_element(By.CSS_SELECTOR, "nav a[hreflang]").click()  # and back (remembered in a cookie)
    wait(page, lambda d: js(d, "return document.documentElement.lang") == lang)


# ---- live result, status, staleness ------------------------------------------------------------


def test_headline_says_confident_or_not_with_the_threshold(page: Any, site: Site, lang: str, t: Any) -> None:
    fresh(page, site)
    sure = t("verdict_sure", pct=percent(lang, 82), threshold=percent(lang, 50))
    wait(page, lambda d: text_of(d, "verdict") == sure)
    assert text_of(page, "top-label") == "привет"
    site.feed.top = [("спасибо", 0.3), ("привет", 0.25), ("пока", 0.2), ("да", 0.15), ("нет", 0.1)]
    unsure = t("verdict_unsure", pct=percent(lang, 30), threshold=percent(lang, 50))
    wait(page, lambda d: text_of(d, "verdict") == unsure)
    assert "unsure" in page.find_element(By.ID, "top-label").get_attribute("class")


def test_times_are_clock_times_and_durations_and_latency_is_the_daemons(
    page: Any, site: Site, lang: str, t: Any
) -> None:
    fresh(page, site)
    wait(page, lambda d: CLOCK.search(text_of(d, "pred-meta")) and CLOCK.search(text_of(d, "st-last")))
    assert CLOCK.fullmatch(text_of(page, "pred-meta").split()[-1])
    meta = text_of(page, "st-window")  # the technician's numbers: behind "Details"
    decimal = "4,2" if lang == "ru" else "4.2"
    assert t("unit_s", n=decimal) in meta and t("unit_ms", n="61") in meta, meta
    assert not UNIX_TIME.search(meta), meta
    wait(page, lambda d: text_of(d, "st-latency") == f"{t('unit_ms', n='50')} / {t('unit_ms', n='80')}")
    assert text_of(page, "st-uptime") == t("duration_hm", h=1, m=2)
    assert CLOCK.match(text_of(page, "st-last")), text_of(page, "st-last")
    for element_id in ("st-uptime", "st-last", "pred-meta", "st-latency", "st-window"):
        assert not UNIX_TIME.search(text_of(page, element_id))
    shot(page, f"live-{lang}")


def note_pattern(t: Any, key: str) -> re.Pattern[str]:
    """The stale note ``key`` with any clock time and any age in it."""
    return re.compile(
        re.escape(t(key, time="@T", age="@A")).replace("@T", r"(\d{2}:\d{2}:\d{2})").replace("@A", ".+?")
    )


STALE_STATE = """
return Array.from(document.querySelectorAll('.live-panel'), (p) => ({
  id: p.id, stale: p.classList.contains('stale'),
  note: p.querySelector('.stale-note').hidden ? '' : p.querySelector('.stale-note').textContent}));
"""


def test_every_live_panel_goes_stale_when_the_daemon_stops_or_goes_silent(
    page: Any, site: Site, lang: str, t: Any
) -> None:
    fresh(page, site)
    panels = js(page, STALE_STATE)
    assert {p["id"] for p in panels} == {"live", "camera", "transcript-box", "status-box"}
    assert not any(p["stale"] for p in panels)
    since = note_pattern(t, "stale_since")
    stopped = note_pattern(t, "stopped_at")

    site.feed.state = "stopping"
    wait(page, lambda d: text_of(d, "link") == t("link_stopping"))
    wait(page, lambda d: all(p["stale"] and stopped.fullmatch(p["note"]) for p in js(d, STALE_STATE)))
    site.feed.state = "running"
    wait(page, lambda d: not any(p["stale"] for p in js(d, STALE_STATE)))

    site.feed.paused = True  # the daemon is gone: no status at all
    try:
        wait(page, lambda d: all(p["stale"] and since.fullmatch(p["note"]) for p in js(d, STALE_STATE)), 30)
        assert text_of(page, "link") == t("link_not_responding")
        # "camera ok" no longer looks fine: the stale panel's values are muted, not green.
        colour = js(page, "return getComputedStyle(document.getElementById('st-camera')).color")
        assert colour == "rgb(82, 90, 102)", colour  # --muted
        shot(page, f"stale-{lang}")
        assert axe_violations(page) == []
    finally:
        site.feed.paused = False
    wait(page, lambda d: not any(p["stale"] for p in js(d, STALE_STATE)))


# ---- transcript ---------------------------------------------------------------------------------


def test_transcript_is_shared_persistent_and_filtered_by_confidence(
    page: Any, site: Site, lang: str, t: Any
) -> None:
    fresh(page, site)
    word, low = f"пока-{lang}", f"может-{lang}"
    site.feed.segment(word, 0.9)
    site.feed.segment(low, 0.2)
    wait(page, lambda d: word in transcript_words(d))
    time.sleep(1.0)  # the low one arrived too; it is hidden
    assert low not in transcript_words(page)
    assert t("transcript_note", threshold=percent(lang, 50), hidden="@").split("@")[0] in text_of(
        page, "transcript-note"
    )
    page.find_element(By.ID, "show-low").click()
    wait(page, lambda d: low in transcript_words(d))
    assert js(page, "return document.querySelector('#transcript li.low .word').textContent") == low
    page.find_element(By.ID, "show-low").click()

    page.refresh()  # kept by slr-web: a reload (or another viewer) sees the same list
    wait(page, lambda d: word in transcript_words(d))
    status, _, body = request(site.port, "GET", "/api/transcript")
    assert status == 200 and {e["label"] for e in json.loads(body)["entries"]} >= {word, low}

    page.find_element(By.ID, "copy").click()
    wait(page, lambda d: text_of(d, "copy-msg") == t("copy_done"))
    target = site.tmp / f"downloads-{lang}" / t("transcript_filename")
    target.unlink(missing_ok=True)  # an earlier test's download (Chromium would save "… (1).txt")
    page.find_element(By.ID, "download").click()
    wait(page, lambda d: text_of(d, "copy-msg") == t("download_done"))
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    saved = target.read_text(encoding="utf-8")
    assert word in saved and low not in saved and CLOCK.search(saved), saved
    shot(page, f"transcript-{lang}")

    page.find_element(By.ID, "clear").click()  # asks first
    dialog = page.find_element(By.ID, "clear-dialog")
    assert dialog.is_displayed() and t("clear_dialog_heading") in dialog.text
    page.find_element(By.ID, "clear-cancel").click()
    assert not dialog.is_displayed() and word in transcript_words(page)
    page.find_element(By.ID, "clear").click()
    page.find_element(By.ID, "clear-confirm").click()
    wait(page, lambda d: transcript_words(d) == [])
    assert json.loads(request(site.port, "GET", "/api/transcript")[2])["entries"] == []
    page.refresh()
    wait(page, lambda d: text_of(d, "link") == t("link_live"))
    assert transcript_words(page) == []


FAKE_VOICE = """
window.speechSynthesis.getVoices = () => [{name: 'Test ru', lang: 'ru-RU', voiceURI: 'test', default: true}];
window.speechSynthesis.speak = (u) => { window.spokenTexts = (window.spokenTexts || []).concat([u.text]); };
// A real utterance accepts only a real SpeechSynthesisVoice: the stand-in voice needs a stand-in utterance.
window.SpeechSynthesisUtterance = function (text) { this.text = text; };
"""


def test_speak_reads_new_entries_with_a_russian_voice_or_says_there_is_none(
    page: Any, site: Site, lang: str, t: Any
) -> None:
    fresh(page, site)
    real_voices = js(page, "return speechSynthesis.getVoices().map((v) => v.lang)")
    page.find_element(By.ID, "speak").click()
    note = text_of(page, "speak-note")
    if any(v.lower().startswith("ru") for v in real_voices):
        assert note.startswith(t("speak_on", voice="@").split("@")[0]), note
    else:  # headless Chromium here has no voices: the page says so
        assert note == t("speak_no_voice"), note
    page.find_element(By.ID, "speak").click()
    js(page, FAKE_VOICE)  # a voice the page can use, and a recorder in place of the loudspeaker
    page.find_element(By.ID, "speak").click()
    assert text_of(page, "speak-note") == t("speak_on", voice="Test ru")
    site.feed.segment(f"говорить-{lang}", 0.95)
    site.feed.segment(f"тихо-{lang}", 0.1)  # below the minimum confidence: not read
    wait(page, lambda d: js(d, "return window.slrStats.spoken.length") >= 1)
    time.sleep(1.0)
    assert js(page, "return window.spokenTexts") == [f"говорить-{lang}"]
    page.find_element(By.ID, "speak").click()


# ---- uploads ------------------------------------------------------------------------------------


def _upload(page: Any, path: Path) -> None:
    page.find_element(By.ID, "file").send_keys(str(path))
    wait(page, lambda d: d.find_element(By.ID, "send").is_enabled(), 10)
    page.find_element(By.ID, "send").click()
    wait(
        page,
        lambda d: (
            d.find_element(By.ID, "clip-result").is_displayed()
            or d.find_element(By.ID, "clip-error").is_displayed()
        ),
        300,
    )


def test_truncated_avi_gets_a_warning_and_a_poster_frame(
    page: Any, site: Site, sample_video: Path, lang: str, t: Any
) -> None:
    fresh(page, site)
    avi = site.tmp / "clip.avi"
    if not avi.exists():
        mjpeg_avi(sample_video, avi)
    cut = truncated(avi, site.tmp / f"cut-{lang}.avi")
    page.find_element(By.ID, "file").send_keys(str(cut))
    # Chrome cannot play MJPEG AVI: no dead black box, a note instead ...
    wait(page, lambda d: d.find_element(By.ID, "clip-preview-note").is_displayed(), 20)
    assert not page.find_element(By.ID, "clip-video").is_displayed()
    page.find_element(By.ID, "send").click()
    wait(page, lambda d: d.find_element(By.ID, "clip-result").is_displayed(), 300)
    warning = page.find_element(By.ID, "clip-warning")
    assert warning.is_displayed()
    match = re.search(r"(\d+)\D+(\d+)", warning.text)
    assert match and int(match.group(1)) < int(match.group(2)) == 40, warning.text
    assert warning.text == t("clip_incomplete", decoded=match.group(1), declared=40)
    # ... and, once classified, the clip's first frame.
    poster = page.find_element(By.ID, "clip-poster")
    assert (
        poster.is_displayed() and js(page, "return document.getElementById('clip-poster').naturalWidth") > 0
    )
    assert page.find_element(By.ID, "clip-poster").get_attribute("alt") == t("clip_poster_alt")
    shot(page, f"upload-avi-{lang}")


def test_clip_without_hands_shows_no_headline_word(page: Any, site: Site, lang: str, t: Any) -> None:
    fresh(page, site)
    clip = site.tmp / "nohands.mp4"
    if not clip.exists():
        handless_clip(clip)
    _upload(page, clip)
    assert text_of(page, "clip-top") == t("clip_no_hands_headline")
    assert text_of(page, "clip-verdict") == ""
    assert page.find_element(By.ID, "clip-error").text == t("clip_no_hands")
    assert "dim" in page.find_element(By.ID, "clip-top5").get_attribute("class")
    assert not page.find_element(By.ID, "clip-warning").is_displayed()  # a whole file: no warning


# ---- layout, touch, keyboard, axe ---------------------------------------------------------------

RECTS = """
const r = (sel) => { const e = document.querySelector(sel); const b = e.getBoundingClientRect();
  return {top: b.top, bottom: b.bottom, left: b.left, right: b.right, shown: !e.hidden && b.height > 0}; };
return {live: r('#top5'), verdict: r('#verdict'), camera: r('#preview'), transcript: r('#transcript-box h2'),
  entry: r('#transcript li'), nav: r('nav a[href="#clip"]'), w: innerWidth, h: innerHeight};
"""


@pytest.mark.parametrize(
    ("width", "height", "mobile"), [(1280, 800, False), (390, 844, True)], ids=["laptop", "phone"]
)
def test_camera_live_result_and_transcript_fit_the_screen(
    page: Any, site: Site, lang: str, width: int, height: int, mobile: bool
) -> None:
    fresh(page, site)
    site.feed.segment("здравствуйте", 0.9)
    viewport(page, width, height, mobile)
    page.refresh()
    wait(page, lambda d: js(d, "return window.slrStats.previewFrames") >= 1 and transcript_words(d))
    rects = js(page, RECTS)
    assert rects["w"] == width and rects["h"] == height
    for name in ("live", "verdict", "camera", "transcript", "entry", "nav"):
        box = rects[name]
        assert box["shown"] and box["top"] >= 0 and box["top"] < height and box["right"] <= width, (
            name,
            box,
        )
    shot(page, f"{'phone' if mobile else 'laptop'}-{lang}")
    page.find_element(By.CSS_SELECTOR, 'nav a[href="#clip"]').click()  # the clip classifier: one tap
    wait(
        page,
        lambda d: 0 <= js(d, "return document.getElementById('clip-h').getBoundingClientRect().top") < height,
    )
    assert page.find_element(By.ID, "file-label").is_displayed()
    viewport(page, 1280, 800)


TARGETS = """
return Array.from(document.querySelectorAll('button, a[href], input, label.toggle, label.file, summary'))
  .filter((e) => e.offsetParent !== null || e.type === 'file')
  .map((e) => { const t = (e.type === 'checkbox' || e.type === 'file') ? e.closest('label') : e;
    const b = t.getBoundingClientRect();
    return {id: e.id || e.textContent.trim(), w: b.width, h: b.height}; });
"""


def test_touch_targets_are_at_least_44_px(page: Any, site: Site, lang: str) -> None:
    fresh(page, site)
    for width, height, mobile in ((1280, 800, False), (390, 844, True)):
        viewport(page, width, height, mobile)
        targets = js(page, TARGETS)
        assert len(targets) >= 12
        small = [t for t in targets if t["w"] < 44 or t["h"] < 44]
        assert not small, (width, small)
    viewport(page, 1280, 800)


FOCUS = """
const e = document.activeElement;
const shown = (e.type === 'file') ? e.closest('label') : e;
const s = getComputedStyle(shown);
return {id: e.id || e.getAttribute('href') || e.tagName, outline: s.outlineStyle,
  width: parseFloat(s.outlineWidth)};
"""


def test_every_control_works_by_keyboard_with_visible_focus(page: Any, site: Site, lang: str, t: Any) -> None:
    fresh(page, site)
    js(page, "document.activeElement.blur(); window.scrollTo(0, 0)")
    seen: list[dict[str, Any]] = []
    for _ in range(40):
        ActionChains(page).send_keys(Keys.TAB).perform()  # to the page: a file input takes keys as a path
        focus = js(page, FOCUS)
        if focus["id"] == "BODY":  # past the last control: focus left the page for the browser's own UI
            if seen:
                break
            continue
        if seen and focus["id"] == seen[0]["id"]:
            break
        seen.append(focus)
    ids = [f["id"] for f in seen]
    for wanted in (
        "#clip",
        "?lang=" + ("en" if lang == "ru" else "ru"),
        "preview-on",
        "copy",
        "download",
        "clear",
        "speak",
        "show-low",
        "transcript",
        "file",
        "record",
    ):
        assert wanted in ids, (wanted, ids)
    invisible = [f for f in seen if f["outline"] == "none" or f["width"] < 2]
    assert not invisible, invisible

    def press(element_id: str, key: str) -> None:
        js(page, "document.getElementById(arguments[0]).focus()", element_id)
        page.switch_to.active_element.send_keys(key)

    press("preview-on", Keys.SPACE)  # camera view off: the frame is gone, not frozen
    assert not page.find_element(By.ID, "preview").is_displayed()
    assert text_of(page, "preview-meta") == t("camera_off")
    press("preview-on", Keys.SPACE)
    wait(page, lambda d: d.find_element(By.ID, "preview").is_displayed())
    press("show-low", Keys.SPACE)
    assert page.find_element(By.ID, "show-low").is_selected()
    press("show-low", Keys.SPACE)
    press("clear", Keys.ENTER)
    assert page.find_element(By.ID, "clear-dialog").is_displayed()
    assert js(page, "return document.activeElement.id") == "clear-cancel"
    page.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(page, lambda d: not d.find_element(By.ID, "clear-dialog").is_displayed())
    press("copy", Keys.ENTER)
    wait(page, lambda d: text_of(d, "copy-msg") in (t("copy_done"), t("copy_empty")))
    js(page, "document.querySelector('nav a[href=\"#clip\"]').focus()")
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait(page, lambda d: js(d, "return location.hash") == "#clip")


def test_axe_finds_no_violations_on_the_page_and_the_login_form(page: Any, site: Site, lang: str) -> None:
    fresh(page, site)
    site.feed.segment("спасибо", 0.9)
    wait(page, lambda d: transcript_words(d) and js(d, "return window.slrStats.previewFrames") >= 1)
    assert axe_violations(page) == []
    page.find_element(By.ID, "clear").click()  # the confirmation dialog too
    assert axe_violations(page) == []
    page.find_element(By.ID, "clear-cancel").click()
    viewport(page, 390, 844, True)
    assert axe_violations(page) == []
    viewport(page, 1280, 800)
    page.get(site.login_url)
    assert js(page, "return document.documentElement.lang") == lang
    assert text_of(page, "login-h") == catalogue(lang)["login_heading"]  # (CSS shows it in capitals)
    assert axe_violations(page) == []
    page.get(site.login_url + "#failed")
    assert page.find_element(By.ID, "failed").is_displayed()
    assert axe_violations(page) == []
    shot(page, f"login-{lang}")
    # The login form still logs in (field name and action unchanged), and the page can log out.
    page.find_element(By.NAME, "token").send_keys(TOKEN + Keys.ENTER)
    wait(page, lambda d: js(d, "return document.getElementById('live') !== null"))
    logout = wait(page, lambda d: (b := d.find_element(By.ID, "logout")).is_displayed() and b)
    assert logout.text == catalogue(lang)["logout"]
    logout.click()
    wait(page, lambda d: js(d, "return document.getElementById('login-h') !== null"))
    page.get(site.login_url.removesuffix("login"))  # the session is gone: back to the form
    wait(page, lambda d: js(d, "return document.getElementById('login-h') !== null"))


def test_logout_is_offered_only_when_a_token_is_in_use(page: Any, site: Site) -> None:
    fresh(page, site)
    wait(page, lambda d: js(d, "return window.slrStats !== undefined"))
    assert not page.find_element(By.ID, "logout").is_displayed()


def test_no_favicon_404(site: Site) -> None:
    assert request(site.port, "GET", "/favicon.ico")[0] == 200
    assert request(site.port, "GET", "/static/favicon.svg")[0] == 200


# ---- hostile strings (issue 16) -----------------------------------------------------------------

HOSTILE = [
    '<img src=x onerror="window.pwned=1">',
    "<script>window.pwned=2</script>",
    '"><svg onload=window.pwned=3>',
    "\u202eevil\u202c rtl",
    "a\u0000b\u009b2J",
    '"] , body, [x="',
    "#transcript li, body",
    "{{live_heading}} ${document.cookie}",
]

INTACT = """
return {
  body: document.body !== null && document.body.children.length,
  main: document.querySelector('main') !== null,
  pwned: window.pwned === undefined ? null : window.pwned,
  imgs: Array.from(document.images, (i) => i.id),
  svgs: document.querySelectorAll('svg').length,
  scripts: Array.from(document.scripts, (s) => s.getAttribute('src')),
  panels: document.querySelectorAll('section.panel').length,
};
"""


def _forged(topic: str, body: dict[str, Any], seq: Any) -> dict[str, Any]:
    return {**body, "v": 1, "seq": seq, "ts": time.time(), "topic": topic}


def test_hostile_strings_from_a_rogue_publisher_stay_text(page: Any, site: Site, lang: str, t: Any) -> None:
    fresh(page, site)
    before = js(page, INTACT)
    feed = site.feed
    segment = feed.segment  # valid segments whose labels are attacks
    for label in HOSTILE:
        segment(label, 0.9)
    # A prediction and a status carrying them too, and forged envelopes with selector-like seq values.
    top = [{"label": label, "index": i, "prob": 0.9 - i * 0.1} for i, label in enumerate(HOSTILE[:5])]
    pred = feed.prediction().to_payload() | {"top_k": top}
    feed.raw("prediction", _forged("prediction", pred, 10**6))
    seg = {
        "top_k": top,
        "start": 0,
        "end": 1,
        "frames": 9,
        "hand_frames": 9,
        "cut": False,
        "resampled": False,
        "inference_ms": 1,
        "latency_ms": 1,
        "model": "<b>m</b>",
    }
    for seq in ('1"] , body, [x="', "#live", "*", "1e400", None, -1, [1], {"a": 1}):
        feed.raw("segment", _forged("segment", seg, seq))
        feed.raw(
            "sign",
            _forged(
                "sign",
                {
                    "label": HOSTILE[5],
                    "index": 1,
                    "prob": 0.9,
                    "windows": 1,
                    "window_start": 0,
                    "window_end": 1,
                },
                seq,
            ),
        )
    feed.raw("segment", b'{"v": 1, "seq": 1' + b"0" * 500 + b', "topic": "segment"}')
    feed.raw("segment", b"\xff\xfe not json")
    feed.source = HOSTILE[0]
    try:
        # A valid message afterwards still arrives: the page (and slr-web) kept working.
        feed.segment(f"после-{lang}", 0.9)
        wait(page, lambda d: f"после-{lang}" in transcript_words(d))
        wait(page, lambda d: text_of(d, "st-source") == HOSTILE[0])
    finally:
        feed.source = "/dev/video0"
    after = js(page, INTACT)
    assert after["body"] and after["main"] and after["pwned"] is None, after
    assert after["imgs"] == before["imgs"] == ["clip-poster"] and after["svgs"] == 0
    assert after["scripts"] == ["/static/app.js"] and after["panels"] == before["panels"] == 5
    words = transcript_words(page)
    for label in HOSTILE:  # each attack is shown, as the literal text it is (cut to 200 characters)
        assert label in words, (label, words)
    assert js(page, "return document.querySelectorAll('#top5 li').length") == 5
    status, _, _ = request(site.port, "GET", "/api/status")
    assert status == 200
    shot(page, f"hostile-{lang}")
    request(site.port, "DELETE", "/api/transcript")


# ---- what people meet on the page (issue 27) ----------------------------------------------------

LINK_LOG = """
document.addEventListener('DOMContentLoaded', () => {
  const link = document.getElementById('link');
  if (!link) return;
  window.linkSeen = [link.textContent];
  new MutationObserver(() => window.linkSeen.push(link.textContent))
    .observe(link, {childList: true, characterData: true, subtree: true});
});
"""


def _status_age(site: Site) -> float:
    status, _, body = request(site.port, "GET", "/api/status")
    return float(json.loads(body)["age_s"]) if status == 200 else 0.0


def _open_watching_the_pill(page: Any, site: Site) -> float:
    """Load the page with every text the status pill takes recorded from the first paint; returns
    the time it was opened (epoch seconds)."""
    script = page.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": LINK_LOG})
    try:
        opened = time.time()
        page.get(site.url)
        wait(page, lambda d: js(d, "return window.slrStats !== undefined && window.linkSeen !== undefined"))
        time.sleep(3.0)  # long enough for a replayed status to be taken for news (it used to show "live")
    finally:
        page.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
    return opened


def _clock_seconds(value: str) -> int:
    h, m, s = (int(x) for x in value.split(":"))
    return h * 3600 + m * 60 + s


def test_a_page_opened_after_a_crash_or_a_stop_is_honest_from_its_first_paint(
    page: Any, site: Site, lang: str, t: Any
) -> None:
    fresh(page, site)
    since, stopped = note_pattern(t, "stale_since"), note_pattern(t, "stopped_at")
    site.feed.paused = True  # the daemon was killed: slr-web keeps its last status
    try:
        deadline = time.monotonic() + 30
        while _status_age(site) < 7.0 and time.monotonic() < deadline:
            time.sleep(0.5)
        opened = _open_watching_the_pill(page, site)
        assert t("link_live") not in js(page, "return window.linkSeen"), js(page, "return window.linkSeen")
        assert text_of(page, "link") == t("link_not_responding")
        panels = js(page, STALE_STATE)
        assert all(p["stale"] for p in panels), panels
        match = since.fullmatch(panels[0]["note"])
        assert match, panels[0]["note"]
        # The time of the last data, not the time the page was opened.
        opened_clock = _clock_seconds(time.strftime("%H:%M:%S", time.localtime(opened)))
        assert opened_clock - _clock_seconds(match.group(1)) >= 5, (match.group(1), opened)
        assert text_of(page, "verdict").startswith(t("last_word", time="@").split("@")[0])
        shot(page, f"after-crash-{lang}")

        site.feed.state, site.feed.paused = "stopping", False  # a clean stop: its last status says so
        time.sleep(1.5)
        site.feed.paused = True
        _open_watching_the_pill(page, site)
        assert t("link_live") not in js(page, "return window.linkSeen")
        notes = [p["note"] for p in js(page, STALE_STATE)]
        assert all(stopped.fullmatch(n) for n in notes), notes
        # The last word is shown as the last word, with its time: not as if it were current.
        verdict = text_of(page, "verdict")
        assert re.fullmatch(re.escape(t("last_word", time="@")).replace("@", r"\d{2}:\d{2}:\d{2}"), verdict)
        shot(page, f"after-stop-{lang}")
    finally:
        site.feed.paused, site.feed.state = False, "running"
    wait(page, lambda d: text_of(d, "link") == t("link_live"))


WORDS_WHOLE = """
const [labels, batch] = arguments;
const live = document.getElementById('live');
const bad = [];
// Each word of node's text on one line, and nothing cut off at the box's edge.
const check = (node, where) => {
  const textNode = node.firstChild;
  if (!textNode) return;
  if (node.scrollWidth > node.clientWidth + 1) bad.push([where, node.textContent, 'clipped']);
  // A line may end at a space or after a hyphen (розовато-/лиловый), never inside a word.
  for (const m of textNode.textContent.matchAll(/[^\\s-]+/g)) {
    const range = document.createRange();
    range.setStart(textNode, m.index);
    range.setEnd(textNode, m.index + m[0].length);
    const tops = new Set(Array.from(range.getClientRects(), (r) => Math.round(r.top)));
    if (tops.size > 1) bad.push([where, m[0], 'broken']);
  }
  const row = node.closest('li');
  if (row && row.scrollWidth > row.clientWidth + 1) bad.push([where, node.textContent, 'row overflows']);
};
const now = Date.now() / 1000;
for (let i = 0; i < labels.length; i += batch) {
  const chunk = labels.slice(i, i + batch);
  const top = chunk.map((label, k) => ({label, index: i + k, prob: 0.9 - k * 0.1}));
  onPrediction({top_k: top, window_start: 0, window_end: 2, frames_used: 60, inference_ms: 10,
    latency_ms: 50, model: 'm', ts: now});
  check(document.getElementById('top-label'), 'headline');
  for (const label of document.querySelectorAll('#top5 .label')) check(label, 'top5');
  for (const label of document.querySelectorAll('#top5 .label')) {
    if (label.title) bad.push(['top5', label.textContent, 'tooltip']);
  }
}
return {bad, liveWidth: live.getBoundingClientRect().width, titles: 0};
"""


@pytest.mark.parametrize(
    ("width", "height", "mobile"), [(1280, 800, False), (390, 844, True)], ids=["laptop", "phone"]
)
def test_every_recognised_word_is_readable_whole(
    page: Any, site: Site, lang: str, width: int, height: int, mobile: bool
) -> None:
    from helpers_web import slovo_labels

    labels = slovo_labels()
    assert len(labels) == 1001
    fresh(page, site)
    viewport(page, width, height, mobile)
    found = js(page, WORDS_WHOLE, labels, 5)  # every name in the top-5 list and as the headline
    if mobile:
        assert found["liveWidth"] >= 0.9 * (width - 16), found["liveWidth"]  # the phone's whole width
    assert not found["bad"], found["bad"][:20]
    # A "word" longer than any gloss (a hostile label) is broken at the edge: the page never scrolls sideways.
    js(page, WORDS_WHOLE, ["ж" * 200, "щ" * 120, "да", "нет", "пока"], 5)
    assert js(page, "return document.documentElement.scrollWidth") <= width
    js(page, WORDS_WHOLE, ["разочарованный", "летучая мышь", "креветка", "привет", "спасибо"], 5)
    if mobile:
        shot(page, f"phone-words-{lang}")
    viewport(page, 1280, 800)


def test_the_russian_page_speaks_to_people_and_keeps_numbers_in_details(
    page: Any, site: Site, lang: str, t: Any
) -> None:
    fresh(page, site)
    wait(page, lambda d: text_of(d, "st-dropped") == "7")
    shown = js(page, "return document.body.innerText")
    for word in ("p50", "p95", "tcp://", "/dev/video0", "ab" * 6, "slr-export", t("st_dropped")):
        assert word not in shown, word
    assert t("pred_meta", duration="@").split("@")[0] not in shown  # "окно …": in the details
    if lang == "ru":
        latin = set(re.findall(r"[A-Za-z][A-Za-z-]+", shown))
        # The product, the language switch, file formats and the model's name (a proper noun) only.
        assert latin <= {"slovo-edge", "English", "MP", "AVI", "MOV", "MKV", "WebM", "slovo-tiny"}, latin
    page.find_element(By.CSS_SELECTOR, "#details summary").click()  # a technician opens the details
    wait(page, lambda d: d.find_element(By.ID, "st-latency").is_displayed())
    assert text_of(page, "st-model").startswith("slovo-tiny")
    assert axe_violations(page) == []
    page.find_element(By.CSS_SELECTOR, "#details summary").click()


def test_every_server_error_is_shown_in_the_pages_language(page: Any, site: Site, lang: str, t: Any) -> None:
    from edge.web.uploads import ERROR_CODES

    fresh(page, site)
    strings = catalogue(lang)
    for code in [*ERROR_CODES.values(), "uploads_off"]:
        assert f"err_code_{code}" in strings, code
        shown = js(
            page, "return uploadError(arguments[0], {error: 'English text', code: arguments[1]})", 500, code
        )
        assert shown == strings[f"err_code_{code}"] and "English" not in shown
    unknown = js(page, "return uploadError(418, {error: 'the teapot is not a video', code: 'teapot'})")
    assert unknown == t("err_other", status=418)
    # A real refusal: a text file named .mp4 (the server's English text is not shown).
    bad = site.tmp / f"notes-{lang}.mp4"
    bad.write_bytes(b"this is a text file, not a video\n" * 50)
    _upload(page, bad)
    assert page.find_element(By.ID, "clip-error").text == t("err_code_unreadable")


def test_russian_words_carry_lang_ru_speech_is_remembered_and_download_takes_what_is_shown(
    page: Any, site: Site, lang: str, t: Any
) -> None:
    fresh(page, site)
    request(site.port, "DELETE", "/api/transcript")
    low = f"может-{lang}"
    site.feed.segment(low, 0.2)  # only unsure entries
    page.find_element(By.ID, "show-low").click()
    wait(page, lambda d: low in transcript_words(d))
    langs = js(
        page,
        "return Array.from(document.querySelectorAll('#top-label, #top5 .label, #transcript .word'),"
        " (e) => e.closest('[lang]').lang)",
    )
    assert len(langs) >= 7 and set(langs) == {"ru"}, langs
    target = site.tmp / f"downloads-{lang}" / t("transcript_filename")
    target.unlink(missing_ok=True)  # an earlier test's download (Chromium would save "… (1).txt")
    page.find_element(By.ID, "download").click()
    wait(page, lambda d: text_of(d, "copy-msg") == t("download_done"))
    deadline = time.monotonic() + 30
    while (not target.exists() or low not in target.read_text("utf-8")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert low in target.read_text("utf-8")
    page.find_element(By.ID, "show-low").click()
    target.unlink()

    speak = page.find_element(By.ID, "speak")
    if not speak.is_selected():
        speak.click()
    page.refresh()
    wait(page, lambda d: js(d, "return window.slrStats !== undefined"))
    wait(page, lambda d: d.find_element(By.ID, "speak").is_selected(), 10)
    page.find_element(By.ID, "speak").click()  # off again, and remembered off
    page.refresh()
    wait(page, lambda d: text_of(d, "link") == t("link_live"))
    assert not page.find_element(By.ID, "speak").is_selected()
    request(site.port, "DELETE", "/api/transcript")


CAPTION_STATE = """
const v = document.getElementById('clip-video');
const caption = document.getElementById('caption-text');
const box = v.getBoundingClientRect();
return {w: box.width, h: box.height, duration: v.duration, time: v.currentTime,
  caption: caption.hidden ? '' : caption.textContent,
  captionPx: parseFloat(getComputedStyle(caption).fontSize),
  playhead: document.getElementById('playhead') !== null,
  ticks: Array.from(document.querySelectorAll('#timeline-scale .tick'), (e) => e.textContent),
  downloads: !document.getElementById('caption-downloads').hidden,
  downloadsShown: document.getElementById('download-srt').offsetParent !== null};
"""

EPISODES = """
const [cues] = arguments;
const top = (label) => [{label, index: 1, prob: 0.9}];
const vtt = 'WEBVTT\\n\\n00:00.000 --> 00:01.500\\nпривет\\n\\n00:01.500 --> 00:03.000\\nразочарованный\\n';
const segments = [{start: 0, end: 1.5, top_k: top('привет')},
  {start: 1.5, end: 3, top_k: top('разочарованный')}];
showEpisodes({segments,
  cues: cues ? [1, 2] : [], srt: cues ? '1' : '', vtt: cues ? vtt : 'WEBVTT\\n', frames: 90, model: 'm',
  complete: true});
"""


@pytest.mark.parametrize(
    ("width", "height", "mobile"), [(1280, 800, False), (390, 844, True)], ids=["laptop", "phone"]
)
def test_captions_of_a_portrait_video_are_readable_and_the_timeline_seeks(
    page: Any, site: Site, lang: str, t: Any, width: int, height: int, mobile: bool
) -> None:
    from helpers_dashboard import ffmpeg

    portrait = site.tmp / "portrait.webm"
    if not portrait.exists():
        ffmpeg(
            *("-f", "lavfi", "-i", "testsrc=size=360x640:rate=25:duration=3"),
            *("-c:v", "libvpx", "-b:v", "400k", str(portrait)),
        )
    fresh(page, site)
    viewport(page, width, height, mobile)
    page.find_element(By.ID, "file").send_keys(str(portrait))
    wait(page, lambda d: js(d, "return document.getElementById('clip-video').readyState") >= 1, 20)
    js(page, EPISODES, True)  # the page's own path for a captions result (validated like the server's)
    js(page, "document.getElementById('clip-view').scrollIntoView({block: 'start'})")
    js(page, "document.getElementById('clip-video').currentTime = 0.5")
    state = wait(page, lambda d: (s := js(d, CAPTION_STATE))["caption"] and s)
    assert state["caption"] == "привет" and state["captionPx"] >= 18, state
    assert state["w"] >= 300 and state["h"] <= height, state  # not ~198 px wide
    assert (
        state["playhead"]
        and len(state["ticks"]) == 5
        and state["ticks"][0] == "0:00,0".replace(",", "," if lang == "ru" else ".")
    ), state
    assert state["downloads"] and state["downloadsShown"]
    assert js(page, "return document.getElementById('caption-text').closest('[lang]').lang") == "ru"
    shot(page, f"captions-{'phone' if mobile else 'laptop'}-{lang}")
    timeline = page.find_element(By.ID, "timeline")
    ActionChains(page).move_to_element_with_offset(
        timeline, int(timeline.size["width"] * 0.25), 0
    ).click().perform()
    wait(page, lambda d: abs(js(d, CAPTION_STATE)["time"] - 2.25) < 0.4, 10)  # 75 % of 3 s
    head = js(page, "return parseFloat(document.getElementById('playhead').style.left)")
    assert 60 <= head <= 90, head
    assert axe_violations(page) == []
    js(page, EPISODES, False)  # no cue: nothing to download
    state = js(page, CAPTION_STATE)
    assert not state["downloads"] and not state["downloadsShown"]
    assert text_of(page, "episodes-meta") == t("episodes_no_cues", threshold=percent(lang, 50))
    viewport(page, 1280, 800)


def test_recording_shows_the_countdown_keeps_focus_and_is_a_whole_file(
    page: Any, site: Site, lang: str, t: Any
) -> None:
    fresh(page, site)
    js(page, "window.scrollTo(0, 0)")
    page.find_element(By.ID, "record").click()
    wait(page, lambda d: d.find_element(By.ID, "countdown").is_displayed(), 20)
    box = js(
        page,
        "const b = document.getElementById('countdown').getBoundingClientRect();"
        " return {top: b.top, bottom: b.bottom, h: innerHeight}",
    )
    assert box["top"] >= 0 and box["bottom"] <= box["h"], box  # the signer sees it
    assert js(page, "return document.activeElement.id") == "countdown"
    shot(page, f"recording-{lang}")
    wait(page, lambda d: not d.find_element(By.ID, "countdown").is_displayed(), 30)
    assert js(page, "return document.activeElement.id") in ("clip", "record")
    wait(page, lambda d: d.find_element(By.ID, "clip-result").is_displayed(), 300)
    assert not page.find_element(By.ID, "clip-warning").is_displayed(), text_of(page, "clip-warning")


def test_a_cut_recording_says_it_is_incomplete_without_a_made_up_frame_count(
    page: Any, site: Site, lang: str, t: Any
) -> None:
    from helpers_dashboard import browser_style_webm

    whole = site.tmp / "recorder.webm"
    if not whole.exists():
        browser_style_webm(whole)
    cut = truncated(whole, site.tmp / f"cut-recorder-{lang}.webm", 0.5)
    fresh(page, site)
    _upload(page, cut)
    warning = page.find_element(By.ID, "clip-warning")
    assert warning.is_displayed()
    decoded = re.search(r"\d+", warning.text)
    assert decoded and warning.text == t("clip_incomplete_length", decoded=decoded.group(0)), warning.text
