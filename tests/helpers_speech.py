"""Shared by the slr-speak tests: run it as a process, publish to it, check the WAVs it writes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(
    r"slr-speak: (?P<received>\d+) received, (?P<invalid>\d+) invalid, (?P<silent>\d+) below threshold, "
    r"(?P<full>\d+) dropped \(queue full\), (?P<stale>\d+) dropped \(stale\), (?P<spoken>\d+) spoken, "
    r"(?P<failed>\d+) failed"
)


def free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def start_speak(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """``slr-speak ARGS`` in the background, its stderr (the log and the summary) into ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge.commands.speak", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def summary(log: Path) -> dict[str, int]:
    match = SUMMARY.search(log.read_text(errors="replace"))
    assert match, log.read_text(errors="replace")
    return {key: int(value) for key, value in match.groupdict().items()}


def wav_stats(path: Path) -> tuple[float, float]:
    """``(duration_s, rms)`` of a 16-bit mono WAV (what espeak-ng writes)."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2), path
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
        return wav.getnframes() / wav.getframerate(), float(np.sqrt(np.mean(samples**2))) if len(
            samples
        ) else 0.0


def assert_speech(path: Path) -> None:
    """A word or two of real speech: 0.2-10 s long, far from silence (int16 RMS)."""
    duration, rms = wav_stats(path)
    print(f"{path.name}: {duration:.2f} s, RMS {rms:.0f}")
    assert 0.2 <= duration <= 10.0 and rms > 300, (path, duration, rms)


def wavs(directory: Path) -> list[Path]:
    return sorted(directory.glob("utterance-*.wav"))


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
