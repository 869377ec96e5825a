"""``slr-speak``: the queue drops instead of queueing, messages are validated, espeak-ng writes WAVs.

The process tests run the real command against a ZeroMQ PUB socket of the test's own (raw, so it
can also send what a broken or hostile publisher sends) and the real espeak-ng.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from helpers_speech import REPO, assert_speech, free_endpoint, start_speak, summary, wait_until, wavs

from edge.contract.protocol import encode, envelope
from edge.speech.engine import EngineError, EspeakEngine
from edge.speech.queue import SpeechQueue
from edge.speech.utterances import invalid_reason, utterance_of


def segment_body(label: str, prob: float) -> dict[str, Any]:
    return {
        "top_k": [{"label": label, "index": 0, "prob": prob}],
        "start": 1.0,
        "end": 2.0,
        "frames": 30,
        "hand_frames": 30,
        "cut": False,
        "resampled": False,
        "inference_ms": 1.0,
        "latency_ms": 5.0,
        "model": "m",
    }


def sign_body(label: str, prob: float) -> dict[str, Any]:
    return {
        "label": label,
        "index": 1,
        "prob": prob,
        "windows": 2,
        "window_start": 0.0,
        "window_end": 1.0,
        "latency_ms": 3.0,
    }


def wire(topic: str, body: dict[str, Any], seq: int) -> list[bytes]:
    return encode(topic, envelope(topic, body, seq=seq, ts=time.time()))


def espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: apt-get install -y espeak-ng (scripts/test.sh does)")


# -- in process -------------------------------------------------------------------------------------


def test_queue_drops_the_oldest_and_the_stale() -> None:
    now = [0.0]
    queue: SpeechQueue[int] = SpeechQueue(2, max_age_s=5.0, clock=lambda: now[0])
    for i in range(5):
        queue.put(i)
    assert len(queue) == 2 and queue.dropped_full == 3
    assert queue.get(timeout=0) == 3
    now[0] = 10.0  # item 4 waited too long
    assert queue.get(timeout=0) is None and queue.dropped_stale == 1
    queue.put(7)
    queue.close()
    assert queue.get() == 7 and queue.get() is None  # closed and empty: no wait


def test_validation_and_what_is_spoken() -> None:
    message = envelope("segment", segment_body("привет", 0.9), seq=3, ts=1.0)
    assert invalid_reason("segment", message) is None
    utterance = utterance_of("segment", message, 0.5)
    assert utterance is not None and (utterance.text, utterance.seq) == ("привет", 3)
    assert utterance_of("segment", message, 0.95) is None
    assert utterance_of("segment", envelope("segment", segment_body("---", 0.99), seq=1, ts=1.0), 0.5) is None
    sign = envelope("sign", sign_body("да\x07", 0.7), seq=1, ts=1.0)
    assert invalid_reason("sign", sign) is None and utterance_of("sign", sign, 0.5).text == "да"  # type: ignore[union-attr]
    broken = dict(message, top_k=[{"label": "x", "index": 0, "prob": 7}])
    assert "top_k[0].prob" in (invalid_reason("segment", broken) or "")
    assert invalid_reason("segment", {**message, "v": 2}) is not None
    assert invalid_reason("segment", {k: v for k, v in message.items() if k != "model"}) is not None


@pytest.mark.parametrize(
    ("topic", "field", "value"),
    [
        ("sign", "v", 1.0),
        ("sign", "seq", 5.0),
        ("sign", "index", 7.0),
        ("sign", "windows", 3.0),
        ("segment", "frames", 30.0),
        ("segment", "hand_frames", 2.0),
        ("segment", "seq", True),
    ],
)
def test_the_one_wire_check_integers_are_json_integers(topic: str, field: str, value: object) -> None:
    """slr-speak checks with edge.contract.wire like every subscriber (issue 26): its own jsonschema
    validator accepted ``"seq": 5.0``; the wire check refuses a float where the schema says integer."""
    body = segment_body("привет", 0.9) if topic == "segment" else sign_body("привет", 0.9)
    message = envelope(topic, body, seq=3, ts=1.0)
    assert invalid_reason(topic, message) is None
    assert invalid_reason(topic, {**message, field: value}) is not None


def test_engine_takes_the_text_on_stdin_never_as_an_option(tmp_path: Path) -> None:
    espeak()
    engine = EspeakEngine("ru", 160)
    command = engine.command(tmp_path / "a.wav")
    assert command[0].endswith("espeak-ng") and "--stdin" in command
    engine.say("--help; rm -rf / $(reboot)", wav=tmp_path / "a.wav")  # spoken as text, nothing else
    assert_speech(tmp_path / "a.wav")
    with pytest.raises(ValueError):
        EspeakEngine("-w/etc/passwd")
    with pytest.raises(EngineError, match="no voice"):
        EspeakEngine("zz-nonexistent").check_voice()


# -- the command ------------------------------------------------------------------------------------


def speak_cmd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.commands.speak", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_missing_espeak_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no espeak-ng anywhere on it
    out = speak_cmd("--to-dir", str(tmp_path / "w"), env=env)
    assert out.returncode == 2, out.stderr
    assert (
        out.stderr.strip()
        == "slr-speak: error: espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--voice", "zz-nonexistent"], "no voice 'zz-nonexistent'"),
        (["--rate", "5"], "--rate must be"),
        (["--min-confidence", "2"], "--min-confidence"),
        (["--queue", "0"], "--queue"),
        (["--to-dir", "/proc/version"], "not a directory"),
        (["--curve-server-key", "/nonexistent.key", "--curve-client-key", "/nonexistent.key_secret"], "key"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str) -> None:
    espeak()
    out = speak_cmd(*args)
    assert out.returncode == 2 and out.stderr.startswith("slr-speak: error:") and message in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr


def test_flood_is_dropped_not_queued_and_invalid_messages_are_counted(tmp_path: Path) -> None:
    """A burst of 300 segments (plus garbage) gives a few WAVs and counted drops, not 300 WAVs later."""
    espeak()
    endpoint, out_dir, log = free_endpoint(), tmp_path / "wav", tmp_path / "speak.log"
    context = zmq.Context.instance()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    proc = start_speak(
        *("--endpoint", endpoint, "--to-dir", str(out_dir), "--min-confidence", "0.5", "--queue", "2"),
        *("--max-age", "600", "--topic", "segment", "--topic", "sign"),
        log=log,
    )
    try:
        seq = 0
        # Until slr-speak is connected: one probe at a time (a PUB socket drops what nobody receives).
        deadline = time.monotonic() + 120
        while not wavs(out_dir) and time.monotonic() < deadline:
            pub.send_multipart(wire("segment", segment_body("проба", 0.9), seq))
            seq += 1
            time.sleep(0.5)
        assert wavs(out_dir), log.read_text(errors="replace")
        wait_until(lambda: len(wavs(out_dir)) >= 1, 30, "the probe's WAV")
        time.sleep(3)  # let the probes already sent be spoken
        before = len(wavs(out_dir))
        flood = 300
        for i in range(flood):
            pub.send_multipart(wire("segment", segment_body(f"слово {i}", 0.9), seq + i))
        hostile = [
            [b"segment", b"not json"],
            [b"segment", json.dumps({"topic": "segment", "v": 1}).encode()],
            wire("segment", {**segment_body("x", 0.9), "top_k": [{"label": "x", "index": 0, "prob": 3}]}, 0),
            [b"segment"],
        ]
        for frames in hostile:
            pub.send_multipart(frames)
        pub.send_multipart(wire("segment", segment_body("тихо", 0.1), 0))  # below the threshold
        pub.send_multipart(wire("sign", sign_body("знак", 0.9), 0))
        # Quiet once nothing new was written for 5 s: what was still queued has been spoken.
        last = [len(wavs(out_dir)), time.monotonic()]

        def quiet() -> bool:
            count = len(wavs(out_dir))
            if count != last[0]:
                last[:] = [count, time.monotonic()]
            return time.monotonic() - last[1] > 5

        wait_until(quiet, 300, "slr-speak to go quiet")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        pub.close()
    counts = summary(log)
    written = len(wavs(out_dir)) - before
    print(f"flood of {flood}: {written} WAVs, counts {counts}")
    assert code == 0
    assert counts["invalid"] == len(hostile) and counts["silent"] >= 1 and counts["failed"] == 0
    assert counts["full"] >= flood // 2  # the burst was dropped, not queued ...
    assert written <= flood // 4  # ... so only a few of its utterances were ever spoken
    assert counts["received"] == (
        counts["invalid"] + counts["silent"] + counts["full"] + counts["stale"] + counts["spoken"]
    )
    assert counts["spoken"] == len(wavs(out_dir))
    assert not [p for p in out_dir.iterdir() if not p.name.startswith("utterance-")]  # no temporary files
    for path in wavs(out_dir)[-3:]:
        assert_speech(path)
