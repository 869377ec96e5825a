"""slr-listen as a user and a script see it: real subprocesses against a real publisher."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth
from helpers_wire import Looper, RoguePublisher, frames_of, sign_message
from rich.console import Console
from test_protocol import make_segment

from edge.commands.listen import confidence_style, main, render
from edge.contract.protocol import (
    TOPICS,
    ModelInfo,
    Prediction,
    SignEvent,
    Status,
    TopKEntry,
    envelope,
)
from edge.transport.publisher import Publisher

LISTEN = [sys.executable, "-m", "edge.commands.listen"]
# Upper bound so a broken listener fails the test instead of hanging it; never asserted on.
PROCESS_LIMIT_S = 60

PREDICTION = Prediction(
    top_k=[
        TopKEntry("привет", 7, 0.81),
        TopKEntry("спасибо", 3, 0.45),
        TopKEntry("пока", 2, 0.2),
        TopKEntry("да", 5, 0.1),
        TopKEntry("нет", 6, 0.05),
        TopKEntry("---", 0, 0.01),
    ],
    window_start=1.0,
    window_end=5.25,
    frames_used=97,
    inference_ms=12.5,
    resampled=True,
    model="slovo-tiny",
    latency_ms=48.25,
)
SIGN = SignEvent(
    label="спасибо", index=3, prob=0.93, windows=3, window_start=1.0, window_end=6.0, latency_ms=52.5
)
STATUS = Status(
    camera="lost",
    source="/dev/video0",
    encrypted=False,
    capture_fps=0.0,
    extraction_fps=0.0,
    dropped_frames=4,
    inference_p50_ms=11.0,
    buffer_fill=64,
    idle=True,
    model=ModelInfo("slovo-tiny", "0123456789abcdef" * 4),
    uptime_s=3725.0,
    version="0.1.0",
    state="idle",
    latency_p50_ms=47.5,
    latency_p95_ms=61.0,
)


class Feeder:
    """Publishes the three messages in a loop until stopped (subscribers join late in ZeroMQ)."""

    def __init__(self, publisher: Publisher, extra: list[tuple[str, dict]] | None = None) -> None:
        self.publisher = publisher
        self.extra = extra or []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in (PREDICTION, SIGN, STATUS):
                self.publisher.send(message)
            for topic, payload in self.extra:
                self.publisher.publish(topic, payload)
            self._stop.wait(0.02)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    with Publisher("tcp://127.0.0.1:0") as pub:
        yield pub


def run_listen(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*LISTEN, *args], capture_output=True, timeout=PROCESS_LIMIT_S, env=env)


def test_json_mode_prints_count_lines_with_topic(publisher: Publisher) -> None:
    with Feeder(publisher):
        result = run_listen("--endpoint", publisher.endpoint, "--json", "--count", "3", "--timeout", "30")
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode("utf-8").splitlines()
    assert len(lines) == 3
    messages = [json.loads(line) for line in lines]
    assert all(message["topic"] in TOPICS and message["v"] == 1 for message in messages)
    assert "спасибо".encode() in result.stdout or "привет".encode() in result.stdout


def test_json_mode_filters_topics_and_keeps_seq(publisher: Publisher) -> None:
    with Feeder(publisher):
        result = run_listen(
            "--endpoint", publisher.endpoint, "--json", "--topic", "sign", "--count", "5", "--timeout", "30"
        )
    assert result.returncode == 0, result.stderr.decode()
    messages = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [m["topic"] for m in messages] == ["sign"] * 5
    assert [m["label"] for m in messages] == ["спасибо"] * 5
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(seqs[0], seqs[0] + 5))


def test_json_lines_are_flushed_live_and_ctrl_c_exits_130(publisher: Publisher) -> None:
    with Feeder(publisher):
        proc = subprocess.Popen(
            [*LISTEN, "--endpoint", publisher.endpoint, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # Still running (no --count), so this line only arrives if it was flushed.
            first = json.loads(proc.stdout.readline())
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=PROCESS_LIMIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first["topic"] in TOPICS
    assert proc.returncode == 130  # README: 130 interrupted
    assert b"Traceback" not in stderr


def test_sigterm_exits_130(publisher: Publisher) -> None:
    with Feeder(publisher):
        proc = subprocess.Popen(
            [*LISTEN, "--endpoint", publisher.endpoint, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            proc.stdout.readline()
            proc.terminate()
            _, stderr = proc.communicate(timeout=PROCESS_LIMIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130  # SIGTERM is treated as Ctrl-C
    assert b"Traceback" not in stderr


def test_timeout_without_messages_exits_nonzero() -> None:
    result = run_listen(
        "--endpoint", "tcp://127.0.0.1:9", "--topic", "status", "--count", "1", "--timeout", "0.3"
    )
    assert result.returncode == 1
    assert result.stdout == b""
    assert b"no message" in result.stderr


def test_human_mode_shows_russian_labels_signs_and_status(publisher: Publisher) -> None:
    # A minimal locale, as under systemd or in a container: Russian must still come out as UTF-8.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LC_", "LANG"))}
    env["LANG"] = "C.UTF-8"
    with Feeder(publisher):
        result = run_listen("--endpoint", publisher.endpoint, "--count", "6", "--timeout", "30", env=env)
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode("utf-8")
    assert "привет" in text and "спасибо" in text
    assert "SIGN" in text
    assert "camera lost" in text
    assert "81.0%" in text


def test_unknown_version_warns_and_still_prints() -> None:
    # Publisher always stamps the current version, so a future publisher is a raw PUB socket.
    future = envelope("sign", {"label": "новый", "shape": "unknown"}, seq=0, ts=0.0) | {"v": 2}
    frames = [b"sign", json.dumps(future, ensure_ascii=False).encode()]
    context = zmq.Context()
    sock = context.socket(zmq.PUB)
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            sock.send_multipart(frames)
            stop.wait(0.02)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        human = run_listen("--endpoint", endpoint, "--count", "2", "--timeout", "30")
        scripted = run_listen("--endpoint", endpoint, "--json", "--count", "1", "--timeout", "30")
    finally:
        stop.set()
        thread.join()
        sock.close(linger=0)
        context.term()
    assert human.returncode == 0, human.stderr.decode()
    assert human.stderr.decode().count("schema version 2") == 1
    assert human.stdout.decode().count("новый") == 2
    assert scripted.returncode == 0
    assert json.loads(scripted.stdout)["v"] == 2
    assert b"schema version 2" in scripted.stderr


def test_render_prediction_shows_top5_with_bars() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None)
    render(console, "prediction", envelope("prediction", PREDICTION.to_payload(), seq=9, ts=0.0))
    lines = buffer.getvalue().splitlines()
    assert "#9" in lines[0] and "97 hand frames" in lines[0] and "resampled" in lines[0]
    assert "inference 12.5 ms" in lines[0] and "latency 48 ms" in lines[0]
    assert len(lines) == 6
    assert lines[1].split()[0] == "привет" and lines[1].rstrip().endswith("81.0%")
    assert "---" not in buffer.getvalue()
    assert lines[1].count("█") > lines[2].count("█") > lines[3].count("█")


def _rendered(topic: str, payload: dict[str, Any]) -> str:
    buffer = io.StringIO()
    render(Console(file=buffer, width=300, color_system=None), topic, envelope(topic, payload, seq=1, ts=0.0))
    return buffer.getvalue()


def test_latency_is_shown_for_signs_and_status() -> None:
    assert "latency 52 ms" in _rendered("sign", SIGN.to_payload())
    assert "latency p50/p95 48 ms/61 ms" in _rendered("status", STATUS.to_payload())


def test_messages_from_daemons_before_latency_show_a_dash() -> None:
    """Latency fields were added within v1: an older daemon's messages still render, with '-'."""
    old_prediction = {k: v for k, v in PREDICTION.to_payload().items() if k != "latency_ms"}
    old_status = {k: v for k, v in STATUS.to_payload().items() if not k.startswith("latency_")}
    assert "latency -" in _rendered("prediction", old_prediction).splitlines()[0]
    assert "latency p50/p95 -/-" in _rendered("status", old_status)


def test_render_segment_is_one_recognised_line() -> None:
    segment = make_segment()
    buffer = io.StringIO()
    render(
        Console(file=buffer, width=200, color_system=None),
        "segment",
        envelope("segment", segment.to_payload(), seq=1, ts=0),
    )
    (line,) = buffer.getvalue().splitlines()
    assert line.startswith("recognised: привет 88%")
    assert "12.50–15.70 s" in line and "92/97 hand frames" in line and "22 ms" in line and "[cut]" in line
    assert "спасибо 7%" in line


def test_render_does_not_interpret_markup_in_labels() -> None:
    buffer = io.StringIO()
    sign = SignEvent(
        label="[bold]да[/bold]",
        index=1,
        prob=0.5,
        windows=2,
        window_start=0.0,
        window_end=1.0,
        latency_ms=1.0,
    )
    render(
        Console(file=buffer, width=120, color_system=None),
        "sign",
        envelope("sign", sign.to_payload(), seq=0, ts=0),
    )
    assert "[bold]да[/bold]" in buffer.getvalue()


def test_render_falls_back_to_json_for_odd_payloads() -> None:
    buffer = io.StringIO()
    render(
        Console(file=buffer, width=200, color_system=None), "status", {"topic": "status", "v": 3, "камера": 1}
    )
    assert '"камера": 1' in buffer.getvalue()


@pytest.mark.parametrize(
    ("prob", "style"), [(0.95, "green"), (0.7, "green"), (0.69, "yellow"), (0.4, "yellow"), (0.39, "dim red")]
)
def test_confidence_colours(prob: float, style: str) -> None:
    assert confidence_style(prob) == style


def test_curve_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server_public, server_secret = zmq.auth.create_certificates(tmp_path, "server")
    _, client_secret = zmq.auth.create_certificates(tmp_path, "client")
    Path(server_secret).chmod(0o600)  # the publisher refuses a secret key other users can read
    with Publisher("tcp://127.0.0.1:0", curve_secret_key=server_secret) as pub, Feeder(pub):
        code = main(
            [
                "--endpoint", pub.endpoint, "--json", "--count", "1", "--timeout", "30",
                "--curve-server-key", server_public, "--curve-client-key", client_secret,
            ]
        )  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["v"] == 1
    code = main(["--curve-server-key", str(tmp_path / "missing.key"), "--curve-client-key", client_secret])
    assert code == 2
    assert "not found" in capsys.readouterr().err


def test_reader_going_away_ends_quietly(publisher: Publisher) -> None:
    """``slr-listen --json | head -1``: once the reader is gone, exit 0 without a BrokenPipeError."""
    read_end, write_end = os.pipe()
    with Feeder(publisher):
        proc = subprocess.Popen(
            [*LISTEN, "--json", "--endpoint", publisher.endpoint],
            stdout=write_end,
            stderr=subprocess.PIPE,
        )
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            assert json.loads(reader.readline())["topic"] in TOPICS  # what `head -1` reads
        _, err = proc.communicate(timeout=PROCESS_LIMIT_S)
    assert proc.returncode == 0
    assert err == b""


# -- invalid and hostile messages ---------------------------------------------------------------

#: Each made slr-listen exit 1 (an exception escaped) before it validated at the boundary.
DEEP = 100_000
HOSTILE = [
    frames_of("sign", {**sign_message("x"), "v": []}),
    frames_of("sign", {**sign_message("x"), "v": {}}),
    [b"sign", ('{"v": 1, "label": ' + "[" * DEEP + "]" * DEEP + "}").encode()],
    frames_of(
        "prediction", {**envelope("prediction", PREDICTION.to_payload(), seq=1, ts=0.0), "inference_ms": "x"}
    ),
    [b"sign", b'{"v": 1, "seq": ' + b"9" * 400 + b"}"],
    [b"sign", b"\xff\xfe"],
    [b"sign"],
]
#: A valid label that tries to retitle the window, clear the screen, start a C1 CSI and reverse text.
NASTY = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202eabc\u2066\u2028\x7fконец"
UNSAFE = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\u2028", "\x7f")


def test_invalid_messages_are_dropped_counted_and_summed_up() -> None:
    with RoguePublisher() as rogue, Looper(rogue, [*HOSTILE, frames_of("sign", sign_message("годится"))]):
        result = run_listen("--endpoint", rogue.endpoint, "--json", "--count", "3", "--timeout", "30")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert [json.loads(line)["label"] for line in result.stdout.decode().splitlines()] == ["годится"] * 3
    assert "Traceback" not in err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("slr-listen: dropped ") and "invalid message(s)" in summary
    for reason in ("version", "depth", "schema", "json", "utf8", "frames"):
        assert f"{reason} " in summary, summary
    # Rate-limited: one warning per reason however many messages came (the loop sends dozens).
    assert err.count("dropped an invalid message (version)") == 1


def test_ctrl_c_after_drops_exits_130_with_the_summary() -> None:
    with RoguePublisher() as rogue, Looper(rogue, [*HOSTILE, frames_of("sign", sign_message("да"))]):
        proc = subprocess.Popen(
            [*LISTEN, "--endpoint", rogue.endpoint, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert json.loads(proc.stdout.readline())["label"] == "да"  # type: ignore[union-attr]
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=PROCESS_LIMIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130
    assert b"slr-listen: dropped " in stderr and b"Traceback" not in stderr


def test_json_mode_escapes_terminal_controls_and_stays_valid_json() -> None:
    with RoguePublisher() as rogue, Looper(rogue, [frames_of("sign", sign_message(NASTY))]):
        result = run_listen("--endpoint", rogue.endpoint, "--json", "--count", "1", "--timeout", "30")
    assert result.returncode == 0, result.stderr.decode()
    line = result.stdout.decode("utf-8")
    assert not [ch for ch in UNSAFE if ch in line], line
    assert "\\u009b" in line and "\\u202e" in line and "конец" in line  # escaped, Cyrillic as is
    assert json.loads(line)["label"] == NASTY


def test_human_mode_escapes_terminal_controls() -> None:
    status = {**envelope("status", STATUS.to_payload(), seq=1, ts=0.0), "source": NASTY}
    with (
        RoguePublisher() as rogue,
        Looper(rogue, [frames_of("sign", sign_message(NASTY)), frames_of("status", status)]),
    ):
        result = run_listen("--endpoint", rogue.endpoint, "--count", "4", "--timeout", "30")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode("utf-8")
    assert not [ch for ch in UNSAFE if ch in text], text
    assert "\\x1b]0;owned\\x07" in text and "\\x9b31m\\u202eabc" in text
