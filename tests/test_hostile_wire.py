"""The standing guard for the subscribers: a rogue publisher fuzzes every one of them.

A raw ZeroMQ PUB socket (:class:`helpers_wire.RoguePublisher`) binds the endpoint the subscriber
connects to, as a hostile program or a broken daemon of another version could, and sends a corpus
generated here: malformed framing (1, 3 and 5 frames, empty and binary frames, unknown and
prefix-sharing topics), encodings (not UTF-8, overlong, CESU surrogates, UTF-16, a BOM, lone
``\\ud800`` escapes), broken JSON, NaN/Infinity tokens, 1e400, integers of 400 and 5000 digits,
nesting 40, 1000 and 100,000 deep, versions that are not integers, schema violations of every
topic (``"inference_ms": "x"``, ``seq`` 10**400, ...), oversized messages, and valid messages
whose text tries to take over a terminal. Each hostile message is followed by a valid probe that
must still arrive. Subscribers:

* ``slr-listen --json`` and ``slr-listen`` (rich), one long-running process each: every probe is
  printed, no unsafe character reaches stdout, Ctrl-C ends it with 130, and its summary counts
  exactly the dropped messages;
* ``slr-health``: one run per ``status`` case (hostile and valid statuses interleaved): healthy;
* ``slr-web``'s bridge: after each case ``/api/status`` shows the probe and ``/healthz`` is 200;
  ``/metrics`` counts every drop in ``slovo_messages_dropped_total{reason}`` and no reader error.

Every subscriber must print no traceback, never hang (each probe within a generous timeout),
never die, and lose no valid message. One test per subscriber reports every misbehaving case at
once; docs/RELIABILITY.md ("Hostile wire") has the figures.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from helpers_web import free_port, request, start_web, stop, wait_for_web
from helpers_wire import Looper, RoguePublisher, frames_of, sign_message, status_message
from test_protocol import full

from edge.contract.protocol import DROP_REASONS, MAX_MESSAGE_BYTES
from edge.contract.wire import Received, decode_message
from edge.web.bridge import TRANSPORT_LIMIT_BYTES, DaemonBridge
from edge.web.metrics import WebMetrics

REPO = Path(__file__).resolve().parents[1]
CRASH_MARKERS = ("Traceback (most recent call last)", "Exception ignored", "Fatal Python error")
#: Generous bounds (a loaded 2-core box): a probe that takes longer than this is a hang or a loss.
PROBE_TIMEOUT_S = 30.0
PROCESS_LIMIT_S = 120.0
DEEP = 100_000
#: What a terminal must never receive raw: C0 (ESC, BEL), DEL, C1 (CSI), bidi, line separator.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


@dataclass(frozen=True)
class WireCase:
    """One hostile (or hostile-looking but valid) message as raw frames."""

    name: str
    frames: list[bytes]
    #: The drop reason decode_message must give; None: a valid message every subscriber uses.
    reason: str | None
    #: Another version's valid envelope: slr-listen shows it (docs/PROTOCOL.md versioning policy).
    listen_shows: bool = False

    @property
    def huge(self) -> bool:
        """Beyond slr-web's transport limit: ZeroMQ cuts that connection, so it counts nothing."""
        return any(len(frame) > TRANSPORT_LIMIT_BYTES for frame in self.frames)

    @property
    def filtered(self) -> bool:
        """A topic frame that only shares a prefix with a topic: Subscriber (slr-listen, slr-health)
        compares topics exactly and skips it unseen, as docs/PROTOCOL.md tells subscribers to."""
        return bool(self.frames) and self.frames[0] not in (b"prediction", b"sign", b"status", b"segment")

    @property
    def status(self) -> bool:
        return bool(self.frames) and self.frames[0].startswith(b"status")


def _body(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _text_cases(topic: str) -> list[tuple[str, list[bytes], str]]:
    """Framing, encoding, JSON and version cases, built around a valid message of ``topic``."""
    valid = full(topic)
    good = _body(valid)
    text = good.decode("utf-8")

    def with_value(token: str) -> bytes:
        """``valid`` with an extra field whose raw JSON text is ``token`` (NaN and such)."""
        return f'{text[:-1]}, "x": {token}}}'.encode("utf-8", "surrogatepass")

    def field_token(name: str, token: str) -> bytes:
        return re.sub(rf'"{name}": [^,}}]+', f'"{name}": {token}', text, count=1).encode()

    t = topic.encode()
    rng = __import__("random").Random(topic)
    return [
        ("one-frame", [t], "frames"),
        ("three-frames", [t, good, good], "frames"),
        ("five-frames", [t, b"", b"", b"", b""], "frames"),
        ("empty-body", [t, b""], "json"),
        ("binary-64", [t, rng.randbytes(64)], "utf8"),
        ("binary-4k", [t, rng.randbytes(4096)], "utf8"),
        ("nul-bytes", [t, b"\x00" * 32], "json"),
        ("prefix-topic", [t + b"al", good], "topic"),
        ("topic-nul", [t + b"\x00", good], "topic"),
        ("topic-long", [t + b"x" * 200, good], "size"),
        (
            "topic-mismatch",
            [t, _body({**valid, "topic": "segment" if topic != "segment" else "sign"})],
            "topic",
        ),
        ("latin1", [t, good.replace(b'"v"', b'"caf\xe9"', 1)], "utf8"),
        ("overlong-utf8", [t, good.replace(b'"v"', b'"\xc0\xb6"', 1)], "utf8"),
        ("cesu-surrogate", [t, good.replace(b'"v"', b'"\xed\xa0\x80"', 1)], "utf8"),
        ("utf16", [t, text.encode("utf-16")], "utf8"),
        ("bom", [t, "\ufeff".encode() + good], "json"),
        ("lone-surrogate-value", [t, with_value('"\\ud800"')], "utf8"),
        ("lone-surrogate-key", [t, good.replace(b'"v"', b'"\\udfff": 0, "v"', 1)], "utf8"),
        ("not-json", [t, b"not json"], "json"),
        ("truncated", [t, good[: len(good) // 2]], "json"),
        ("trailing-garbage", [t, good + b" x"], "json"),
        ("array", [t, b"[1, 2]"], "json"),
        ("null", [t, b"null"], "json"),
        ("string", [t, b'"status"'], "json"),
        ("number", [t, b"1e400"], "json"),
        ("nan-token", [t, with_value("NaN")], "json"),
        ("infinity-token", [t, with_value("Infinity")], "json"),
        ("minus-infinity-token", [t, with_value("-Infinity")], "json"),
        ("float-1e400", [t, field_token("ts", "1e400")], "json"),
        ("float-minus-1e400", [t, with_value("-1e400")], "json"),
        ("seq-10e400", [t, field_token("seq", "1" + "0" * 400)], "json"),
        ("seq-5000-digits", [t, field_token("seq", "9" * 5000)], "json"),
        ("seq-2e53-plus-1", [t, field_token("seq", str(2**53 + 1))], "json"),
        ("negative-huge", [t, with_value("-" + "9" * 30)], "json"),
        ("deep-100k-arrays", [t, b"[" * DEEP + b"]" * DEEP], "depth"),
        ("deep-100k-objects", [t, b'{"a":' * DEEP + b"1" + b"}" * DEEP], "depth"),
        ("deep-100k-in-field", [t, with_value("[" * DEEP + "]" * DEEP)], "depth"),
        ("deep-1000", [t, with_value("[" * 1000 + "]" * 1000)], "depth"),
        ("deep-40", [t, with_value('{"a":' * 40 + "1" + "}" * 40)], "depth"),
        ("v-list", [t, _body({**valid, "v": []})], "version"),
        ("v-object", [t, _body({**valid, "v": {}})], "version"),
        ("v-string", [t, _body({**valid, "v": "1"})], "version"),
        ("v-true", [t, _body({**valid, "v": True})], "version"),
        ("v-zero", [t, _body({**valid, "v": 0})], "version"),
        ("v-negative", [t, _body({**valid, "v": -1})], "version"),
        ("v-float", [t, _body({**valid, "v": 1.0})], "version"),
        ("v-null", [t, _body({**valid, "v": None})], "version"),
        ("v-missing", [t, _body({k: v for k, v in valid.items() if k != "v"})], "version"),
        ("v-deep", [t, _body({**valid, "v": [[[[1]]]]})], "version"),
        ("empty-object", [t, b"{}"], "version"),
        ("oversize", [t, _body({**valid, "pad": "x" * (MAX_MESSAGE_BYTES + 1)})], "size"),
        ("oversize-5mib", [t, b"{" + b" " * (5 * MAX_MESSAGE_BYTES) + b"}"], "size"),
    ]


#: Schema violations: (topic, name, change to the valid message).
SCHEMA_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("prediction", "inference-ms-string", {"inference_ms": "x"}),
    ("prediction", "inference-ms-null", {"inference_ms": None}),
    ("prediction", "inference-ms-negative", {"inference_ms": -1}),
    ("prediction", "top-k-empty", {"top_k": []}),
    ("prediction", "top-k-string", {"top_k": "abc"}),
    ("prediction", "top-k-null-entry", {"top_k": [None]}),
    ("prediction", "top-k-label-number", {"top_k": [{"label": 5, "index": 0, "prob": 0.5}]}),
    ("prediction", "top-k-prob-above-1", {"top_k": [{"label": "а", "index": 0, "prob": 1.5}]}),
    ("prediction", "frames-used-float", {"frames_used": 1.5}),
    ("prediction", "resampled-string", {"resampled": "no"}),
    ("sign", "seq-negative", {"seq": -1}),
    ("sign", "seq-float", {"seq": 1.5}),
    ("sign", "seq-string", {"seq": "10" + "0" * 400}),
    ("sign", "prob-above-1", {"prob": 2.0}),
    ("sign", "label-null", {"label": None}),
    ("sign", "label-list", {"label": ["a"]}),
    ("sign", "label-object", {"label": {"text": "a"}}),
    ("sign", "windows-zero", {"windows": 0}),
    ("sign", "index-bool", {"index": True}),
    ("sign", "ts-string", {"ts": "now"}),
    ("status", "camera-unknown", {"camera": "broken"}),
    ("status", "camera-null", {"camera": None}),
    ("status", "state-unknown", {"state": "crashed"}),
    ("status", "errors-missing-frames", {"errors": {"extraction": 0, "inference": 0}}),
    ("status", "errors-list", {"errors": []}),
    ("status", "model-string", {"model": "m"}),
    ("status", "sha256-short", {"model": {"name": "m", "sha256": "xyz"}}),
    ("status", "sha256-newline", {"model": {"name": "m", "sha256": "ab" * 32 + "\n"}}),
    ("status", "buffer-fill-129", {"buffer_fill": 129}),
    ("status", "frame-age-string", {"last_frame_age_s": "x"}),
    ("status", "frame-age-negative", {"last_frame_age_s": -1.0}),
    ("status", "extraction-fps-null", {"extraction_fps": None}),
    ("status", "uptime-negative", {"uptime_s": -5}),
    ("status", "idle-int", {"idle": 0}),
    ("segment", "frames-zero", {"frames": 0}),
    ("segment", "cut-string", {"cut": "yes"}),
    ("segment", "end-null", {"end": None}),
    ("segment", "top-k-missing", {"top_k": None}),
]

#: Valid messages whose text tries to take over a terminal: shown escaped, never raw.
NASTY_TEXT = {
    "osc-title-clear": "\x1b]0;owned\x07\x1b[2Jпривет",
    "c1-csi": "\x9b31mкрасный\x9b0m",
    "bidi-override": "abc\u202edcba\u202c",
    "bidi-isolate": "\u2066\u2067\u2068x\u2069",
    "line-separator-del": "a\u2028b\u2029c\x7f",
}


def build_cases() -> list[WireCase]:
    cases: list[WireCase] = []
    for topic in ("sign", "status"):
        for name, frames, reason in _text_cases(topic):
            cases.append(WireCase(f"{topic}/{name}", frames, reason))
    for topic, name, change in SCHEMA_CASES:
        message = {k: v for k, v in full(topic, change).items() if v is not None or k not in change}
        if None in change.values():
            message.update({k: v for k, v in change.items() if v is None})
        cases.append(WireCase(f"{topic}/{name}", frames_of(topic, message), "schema"))
    for topic in ("sign", "status"):
        future = {**full(topic), "v": 2, "shape": "new"}
        cases.append(
            WireCase(f"{topic}/v2-valid-envelope", frames_of(topic, future), "version", listen_shows=True)
        )
        broken = {**future, "seq": "zero"}
        cases.append(WireCase(f"{topic}/v2-broken-envelope", frames_of(topic, broken), "version"))
    for name, text in NASTY_TEXT.items():
        cases.append(WireCase(f"sign/valid-{name}", frames_of("sign", full("sign", {"label": text})), None))
        cases.append(
            WireCase(f"status/valid-{name}", frames_of("status", full("status", {"source": text})), None)
        )
    return cases


CASES = build_cases()


def test_corpus_is_large_and_each_case_fails_for_its_reason() -> None:
    """In-process, no sockets: decode_message gives every case its reason and never raises."""
    assert len(CASES) >= 150, len(CASES)
    assert len({case.name for case in CASES}) == len(CASES), "case names must be unique"
    wrong = []
    for case in CASES:
        result = decode_message(case.frames)
        got = None if isinstance(result, Received) else result.reason
        if got != case.reason:
            wrong.append(f"{case.name}: expected {case.reason}, got {result}")
    assert not wrong, "\n".join(wrong)
    assert {case.reason for case in CASES} == {*DROP_REASONS, None}


class _Metrics(WebMetrics):
    def __init__(self) -> None:
        super().__init__(lambda: (None, None))


def test_bridge_survives_every_case_in_process() -> None:
    """DaemonBridge.receive on each case, then a valid status: never raises, state follows the probe."""
    metrics = _Metrics()
    bridge = DaemonBridge("tcp://127.0.0.1:9", metrics)
    for index, case in enumerate(CASES):
        bridge.receive(case.frames)
        probe = status_message(source=f"probe-{index}", seq=index)
        bridge.receive(frames_of("status", probe))
        assert bridge.status is not None and bridge.status["source"] == f"probe-{index}", case.name
        assert bridge.healthy() == (True, "ok"), case.name
    dropped = {reason: metrics.dropped.labels(reason)._value.get() for reason in DROP_REASONS}
    expected = sum(case.reason is not None for case in CASES)
    assert sum(dropped.values()) == expected
    assert metrics.errors.labels("bridge")._value.get() == 0


# -- running subscribers ---------------------------------------------------------------------------


@dataclass
class Figures:
    """What one subscriber made of the corpus (docs/RELIABILITY.md "Hostile wire")."""

    subscriber: str
    cases: int = 0
    tracebacks: int = 0
    hangs: int = 0
    deaths: int = 0
    wrong_codes: int = 0
    losses: int = 0
    drops_expected: int = 0
    drops_counted: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"hostile wire {self.subscriber}: {self.cases} cases, {self.tracebacks} tracebacks, "
            f"{self.hangs} hangs, {self.deaths} deaths, {self.wrong_codes} wrong codes, "
            f"{self.losses} losses, drops {self.drops_counted}/{self.drops_expected}"
        )

    def check(self) -> None:
        print(self.line())
        assert not self.problems, f"{len(self.problems)} problems:\n" + "\n".join(self.problems[:40])


class _Lines(threading.Thread):
    """Collects a pipe's output (stdout of a long-running subscriber) without blocking the test."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.chunks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.text = ""

    def run(self) -> None:
        for line in iter(self.stream.readline, b""):
            self.chunks.put(line)

    def seen(self, marker: str) -> bool:
        while True:
            try:
                self.text += self.chunks.get_nowait().decode("utf-8", "replace")
            except queue.Empty:
                return marker in self.text


def _listen_figures(json_mode: bool) -> Figures:
    figures = Figures("slr-listen --json" if json_mode else "slr-listen")
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    with RoguePublisher() as rogue:
        command = [sys.executable, "-m", "edge.commands.listen", "--endpoint", rogue.endpoint]
        proc = subprocess.Popen(
            [*command, *(["--json"] if json_mode else [])],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        out = _Lines(proc.stdout)
        out.start()
        try:
            joined = rogue.until(
                frames_of("sign", sign_message("probe-start")), lambda: out.seen("probe-start"), 60
            )
            assert joined, "slr-listen never received the first probe"
            for index, case in enumerate(CASES):
                figures.cases += 1
                rogue.send(case.frames)
                marker = f"probe-{index:03d}"
                probe = frames_of("sign", sign_message(marker, seq=index))
                if not rogue.until(probe, lambda m=marker: out.seen(m), PROBE_TIMEOUT_S):  # type: ignore[misc]
                    alive = proc.poll() is None
                    figures.hangs += alive
                    figures.deaths += not alive
                    figures.problems.append(
                        f"{case.name}: probe never printed ({'alive' if alive else 'died'})"
                    )
                    if not alive:
                        break
                figures.drops_expected += (
                    case.reason is not None and not case.listen_shows and not case.filtered
                )
            proc.send_signal(signal.SIGINT)
            _, err_bytes = proc.communicate(timeout=PROCESS_LIMIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.join(10)
        out.seen("")
    err = err_bytes.decode("utf-8", "replace")
    figures.tracebacks = sum(err.count(marker) + out.text.count(marker) for marker in CRASH_MARKERS)
    if figures.tracebacks:
        figures.problems.append(f"tracebacks:\n{err[-3000:]}")
    if proc.returncode != 130:
        figures.wrong_codes += 1
        figures.problems.append(f"Ctrl-C exit code {proc.returncode}, expected 130")
    found = re.search(r"dropped (\d+) invalid message", err)
    figures.drops_counted = int(found[1]) if found else 0
    if figures.drops_counted != figures.drops_expected:
        figures.problems.append(f"summary counts {figures.drops_counted}, expected {figures.drops_expected}")
    raw = UNSAFE.findall(out.text)
    if raw:
        figures.problems.append(f"unsafe characters reached stdout: {sorted(set(raw))!r}")
    for name, text in NASTY_TEXT.items():  # valid messages are shown (escaped), not dropped
        if "привет" in text and "привет" not in out.text:
            figures.losses += 1
            figures.problems.append(f"valid-{name} was not shown")
    if json_mode:
        for line in out.text.splitlines():
            json.loads(line)  # every line stays valid JSON
    return figures


def test_listen_json_survives_the_rogue_publisher() -> None:
    _listen_figures(json_mode=True).check()


def test_listen_rich_survives_the_rogue_publisher() -> None:
    _listen_figures(json_mode=False).check()


def _health_case(case: WireCase, index: int) -> tuple[WireCase, subprocess.CompletedProcess[str] | None]:
    probe = frames_of("status", status_message(source=f"probe-{index}", age=0.25))
    with RoguePublisher() as rogue, Looper(rogue, [case.frames, probe], every=0.05):
        command = [
            sys.executable,
            "-m",
            "edge.commands.health",
            "--endpoint",
            rogue.endpoint,
            "--timeout",
            "60",
        ]
        try:
            return case, subprocess.run(
                command, cwd=REPO, capture_output=True, text=True, timeout=PROCESS_LIMIT_S
            )
        except subprocess.TimeoutExpired:
            return case, None


def test_health_survives_the_rogue_publisher() -> None:
    """Each status case interleaved with a fresh valid status: the check finds the valid one (exit 0)."""
    figures = Figures("slr-health")
    cases = [case for case in CASES if case.status]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(_health_case, cases, range(len(cases))))
    for case, result in results:
        figures.cases += 1
        if result is None:
            figures.hangs += 1
            figures.problems.append(f"{case.name}: hung")
            continue
        crashed = sum(result.stderr.count(marker) + result.stdout.count(marker) for marker in CRASH_MARKERS)
        figures.tracebacks += crashed
        if result.returncode != 0 or "slr-health: healthy: last frame" not in result.stdout:
            figures.wrong_codes += 1
            figures.problems.append(
                f"{case.name}: exit {result.returncode}: {(result.stdout + result.stderr)[-300:]}"
            )
        elif crashed:
            figures.problems.append(f"{case.name}: traceback: {result.stderr[-1000:]}")
    assert figures.cases >= 60
    figures.check()


@pytest.fixture
def web() -> Iterator[tuple[RoguePublisher, int, subprocess.Popen[bytes], Path]]:
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"slr-web-wire-{os.getpid()}.log"
    with RoguePublisher() as rogue:
        port = free_port()
        proc = start_web(port, rogue.endpoint, log)
        try:
            wait_for_web(port, proc, log)
            yield rogue, port, proc, log
        finally:
            stop(proc)
            log.unlink(missing_ok=True)


def _get(port: int, path: str) -> tuple[int, bytes]:
    status, _, body = request(port, "GET", path, headers={"Host": f"127.0.0.1:{port}"}, timeout=30)
    return status, body


def _status_source(port: int) -> Callable[[], str | None]:
    def read() -> str | None:
        status, body = _get(port, "/api/status")
        return json.loads(body).get("source") if status == 200 else None

    return read


def _dropped_total(metrics_text: str) -> tuple[int, dict[str, float]]:
    counts = {
        reason: float(value)
        for reason, value in re.findall(
            r'^slovo_messages_dropped_total\{reason="(\w+)"\} (\S+)$', metrics_text, re.M
        )
    }
    return int(sum(counts.values())), counts


def test_web_bridge_keeps_healthz_200_through_the_defects_of_issue_16(
    web: tuple[RoguePublisher, int, subprocess.Popen[bytes], Path],
) -> None:
    """``"inference_ms": "x"`` (or null) and ``seq`` 10**400 once killed the reader: /healthz went 503."""
    rogue, port, proc, _ = web
    source = _status_source(port)
    with Looper(rogue, [frames_of("status", status_message("daemon"))], every=0.2):
        assert _wait(lambda: source() == "daemon", 60)
        killers = [
            frames_of("prediction", full("prediction", {"inference_ms": "x"})),
            frames_of("prediction", full("prediction", {"inference_ms": None})),
            [b"sign", json.dumps(full("sign")).replace('"seq": 5', '"seq": 1' + "0" * 400).encode()],
        ]
        for frames in killers * 3:
            rogue.send(frames)
        time.sleep(2.0)  # the daemon goes on publishing status meanwhile
        assert _get(port, "/healthz")[0] == 200
        status, metrics = _get(port, "/metrics")
    assert status == 200 and proc.poll() is None
    _, by_reason = _dropped_total(metrics.decode())
    assert by_reason["schema"] == 6 and by_reason["json"] == 3, by_reason
    assert set(by_reason) == set(DROP_REASONS)  # every reason is exported from the start


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False
