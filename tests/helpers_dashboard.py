"""What the dashboard tests drive the page with: a scripted daemon, test media, Chromium, axe-core.

``ScriptedFeed`` is a real :class:`~edge.transport.publisher.Publisher` sending what a daemon sends
(status, predictions, preview frames with keypoints, segments), with switches a real daemon does
not offer on demand: pause (the daemon vanished), ``state="stopping"``, and raw frames (a rogue
publisher on the daemon's endpoint). axe-core comes from its npm package, installed once into
``.cache/npm`` (``scripts/test.sh`` prepares it; the first test that needs it installs it otherwise).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
from helpers_web import chromium_paths

from edge.contract.protocol import ModelInfo, Prediction, Preview, Segment, Status, TopKEntry
from edge.transport.publisher import Publisher

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "web"
NPM_PREFIX = REPO / ".cache" / "npm"
AXE_JS = NPM_PREFIX / "node_modules" / "axe-core" / "axe.min.js"
#: The axe-core release the accessibility checks use (scripts/test.sh installs the same one).
AXE_VERSION = (REPO / "tests" / "axe-core.version").read_text(encoding="utf-8").strip()
PERIOD_S = 0.5


def _jpeg(width: int = 320, height: int = 240) -> str:
    import cv2

    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 255 // width), (y * 255 // height), np.full_like(x, 90)], axis=-1).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return base64.b64encode(data.tobytes()).decode("ascii")


def _hand(cx: float, cy: float) -> list[list[float]]:
    return [[cx + 0.01 * (i % 5), cy - 0.015 * (i // 5)] for i in range(21)]


class ScriptedFeed(threading.Thread):
    """A daemon stand-in: status, a prediction and a preview frame every half second."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.publisher = Publisher(endpoint)
        self.endpoint = self.publisher.endpoint
        self.state = "running"
        self.paused = False
        self.top = [("привет", 0.82), ("спасибо", 0.1), ("пока", 0.04), ("да", 0.02), ("нет", 0.01)]
        self.source = "/dev/video0"
        self._jpeg = _jpeg()
        self._halt = threading.Event()

    def status(self) -> Status:
        return Status(
            camera="ok",
            source=self.source,
            encrypted=False,
            capture_fps=30.0,
            extraction_fps=24.5,
            dropped_frames=7,
            inference_p50_ms=12.5,
            buffer_fill=128,
            idle=False,
            model=ModelInfo("slovo-tiny", "ab" * 32),
            uptime_s=3725.0,
            version="0.1.0",
            state=self.state,  # type: ignore[arg-type]
            latency_p50_ms=50.0,
            latency_p95_ms=80.0,
            last_frame_age_s=0.03,
        )

    def prediction(self) -> Prediction:
        top_k = [TopKEntry(label, i, prob) for i, (label, prob) in enumerate(self.top)]
        return Prediction(top_k, 100.0, 104.2, 97, 14.2, False, "slovo-tiny", latency_ms=61.0)

    def preview(self) -> Preview:
        kp = {"pose": None, "left_hand": _hand(0.3, 0.6), "right_hand": _hand(0.65, 0.55), "lips": None}
        return Preview(self._jpeg, 320, 240, 100.0, kp)

    def run(self) -> None:
        while not self._halt.is_set():
            if not self.paused:
                self.publisher.send(self.status())
                self.publisher.send(self.prediction())
                self.publisher.send(self.preview())
            self._halt.wait(PERIOD_S)

    def segment(self, label: str, prob: float) -> None:
        top = [TopKEntry(label, 1, prob), TopKEntry("---", 0, max(0.0, 1.0 - prob))]
        self.publisher.send(Segment(top, 0.0, 2.0, 60, 55, False, False, 20.0, 25.0, "slovo-tiny"))

    def raw(self, topic: str, body: dict[str, Any] | bytes) -> None:
        """Send two frames as they are: envelope, types and schema are whatever the caller says."""
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        with self.publisher._lock:  # test-only: bypass the envelope and the encoder
            assert self.publisher._socket is not None
            self.publisher._socket.send_multipart([topic.encode(), data])

    def stop(self) -> None:
        self._halt.set()
        self.join(3)
        self.publisher.close()


# ---- media ---------------------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=180)


def mjpeg_avi(sample: Path, out: Path, frames: int = 40) -> Path:
    """An MJPEG AVI of the sample's first frames: a container Chrome cannot play."""
    ffmpeg(
        "-i", str(sample), "-frames:v", str(frames), "-vf", "scale=-2:320", "-c:v", "mjpeg", "-an", str(out)
    )
    return out


def truncated(path: Path, out: Path, fraction: float = 0.6) -> Path:
    """``path`` cut to ``fraction`` of its bytes: its header still declares every frame."""
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def handless_clip(out: Path, frames: int = 20) -> Path:
    """A short MP4 of moving colour bars: decodable, and no hands in it."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=320x240:rate=25:duration={frames / 25}",
        "-pix_fmt",
        "yuv420p",
        str(out),
    )
    return out


# ---- browser and axe -----------------------------------------------------------------------------


def chrome(lang: str, downloads: Path | None = None, size: tuple[int, int] = (1280, 800)) -> Any:
    """Headless Chromium preferring ``lang`` (Accept-Language and navigator.language)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    accept = "ru-RU,ru" if lang == "ru" else "en-US,en"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={size[0]},{size[1]}",
        f"--lang={accept.split(',')[0]}",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
    ):
        options.add_argument(arg)
    prefs: dict[str, Any] = {"intl.accept_languages": accept}
    if downloads is not None:
        prefs.update({"download.default_directory": str(downloads), "download.prompt_for_download": False})
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_script_timeout(60)
    viewport(driver, *size)
    return driver


def viewport(driver: Any, width: int, height: int, mobile: bool = False) -> None:
    """The page's viewport exactly ``width`` × ``height`` CSS px (a phone with ``mobile``)."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def axe_source() -> str:
    """axe-core's browser bundle from its npm package (installed here if scripts/test.sh did not)."""
    installed = NPM_PREFIX / "node_modules" / "axe-core" / "package.json"
    if not AXE_JS.exists() or json.loads(installed.read_text("utf-8")).get("version") != AXE_VERSION:
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError(
                "npm is missing (apt-get install npm): the accessibility tests need axe-core"
            )
        NPM_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(NPM_PREFIX),
                "--no-audit",
                "--no-fund",
                f"axe-core@{AXE_VERSION}",
            ],
            check=True,
            timeout=600,
            env={**os.environ, "npm_config_update_notifier": "false"},
        )
    return AXE_JS.read_text(encoding="utf-8")


AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']}).then(
  (r) => done(r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary)}))),
  (e) => done([{id: 'axe-error', help: String(e), nodes: []}]));
"""


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """Run axe-core on the current page: its violations (every rule axe has, WCAG A/AA and best practice)."""
    if not driver.execute_script("return typeof window.axe !== 'undefined'"):
        driver.execute_script(axe_source())
    found: list[dict[str, Any]] = driver.execute_async_script(AXE_RUN)
    return found


def catalogue(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((REPO / "edge/web/static/i18n" / f"{lang}.json").read_text("utf-8"))
    return data


def clip_gap_clip(sample: Path, out: Path) -> Path:
    """Continuous signing: the sample, about a second of still scene (hands down), the sample again."""
    ffmpeg(
        *("-i", str(sample), "-i", str(sample), "-filter_complex"),
        "[0:v]fps=30,format=yuv420p,tpad=stop_mode=clone:stop_duration=1[a];"
        "[1:v]fps=30,format=yuv420p[b];[a][b]concat=n=2:v=1",
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "30"),
        *("-movflags", "+faststart", str(out)),
    )
    return out


def browser_style_webm(out: Path, live: bool = False, seconds: float = 3.0) -> Path:
    """A WebM as a browser's MediaRecorder writes it: VP8, 1 ms time base, jittered frame times and
    no frame rate (no DefaultDuration), so OpenCV reports 1000 frames/s and a "frame count" of
    duration x 1000. ``live``: no duration either (the muxer's live mode, like a stream)."""
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc=size=320x240:rate=30:duration={seconds}"),
        *("-vf", "settb=1/1000,setpts='(N/30+random(0)*0.02)/TB'", "-fps_mode", "vfr"),
        *("-enc_time_base", "1:1000", "-c:v", "libvpx", "-b:v", "300k", "-live", "1" if live else "0"),
        str(out),
    )
    data = out.read_bytes()
    at = data.find(b"\x23\xe3\x83")  # the track's DefaultDuration element: ID, 1-byte size, value
    assert at > 0, "ffmpeg wrote no DefaultDuration to remove"
    total = 4 + (data[at + 3] & 0x7F)
    void = b"\xec" + bytes([0x80 | (total - 2)]) + b"\0" * (total - 2)  # a Void element, same length
    out.write_bytes(data[:at] + void + data[at + total :])
    return out
