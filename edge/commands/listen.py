"""``slr-listen``: watch what the daemon publishes, for people (rich) or scripts (``--json``).

Human mode shows each classified sign segment as the primary line ("recognised: …"), each
sliding-window prediction as a top-5 with confidence bars, sign events boxed and status as one
compact line. ``--json`` prints each message as one JSON line (``topic`` included)
and flushes it, so ``slr-listen --json | jq`` works live.

Every message is validated at the boundary (:func:`edge.contract.wire.decode_message`): one that
is malformed, oversized, nested too deep or breaks its schema is dropped, counted, warned about
(at most once per reason every 10 s) and summed up on exit; it never ends the listener. Text is
escaped for the terminal in both modes (:mod:`edge.util.terminal`).

Exit status: 0 after ``--count`` messages, 130 on Ctrl-C/SIGTERM, 1 when ``--timeout`` seconds
pass without a valid message (so ``--topic status --count 1 --timeout 5`` is a health check), 2 on
usage or key-file errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import zmq
from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from edge.commands.scaffold import EXIT_INTERRUPTED, add_version, run
from edge.contract.protocol import SCHEMA_VERSION, TOPICS, ProtocolError
from edge.contract.wire import Dropped, check_payload
from edge.transport.keys import KeyFileError
from edge.transport.publisher import DEFAULT_ENDPOINT
from edge.transport.subscriber import Subscriber
from edge.util.logs import ThrottledLog
from edge.util.signals import interrupt_on_signals
from edge.util.terminal import json_line, printable

BAR_WIDTH = 24
#: Seconds without any message before slr-listen says that it is still waiting.
WAITING_NOTE_AFTER_S = 3.0
TOP_SHOWN = 5
EPILOG = """\
examples:
  slr-listen                                       # everything, for a person
  slr-listen --topic sign --json | jq -r .label    # one JSON line per message
  slr-listen --topic status --count 1 --timeout 5  # health check

invalid messages (malformed, oversized, wrong types) are dropped, counted and summed up on exit.

exit codes: 0 after --count messages, 1 on --timeout, 2 on bad options or key files,
            130 on Ctrl-C or SIGTERM
"""
#: Seconds between two warnings about dropped messages of one kind.
DROP_WARNING_EVERY_S = 10.0
log = logging.getLogger("slr-listen")


def confidence_style(prob: float) -> str:
    """Colour for a probability: green is confident, yellow is plausible, red is a guess."""
    if prob >= 0.7:
        return "green"
    if prob >= 0.4:
        return "yellow"
    return "dim red"


def _bar(prob: float) -> Text:
    filled = max(0, min(BAR_WIDTH, round(prob * BAR_WIDTH)))
    return Text("█" * filled, style=confidence_style(prob)).append("·" * (BAR_WIDTH - filled), style="dim")


def _span(payload: Mapping[str, Any]) -> str:
    return f"{payload['window_start']:.2f}–{payload['window_end']:.2f} s"


def _ms(value: object) -> str:
    """A millisecond figure, or ``-`` when absent (daemons before ``latency_ms``) or null."""
    return f"{value:.0f} ms" if isinstance(value, (int, float)) else "-"


def render_prediction(payload: Mapping[str, Any]) -> Group:
    """Header line plus one bar per top-k class (at most five)."""
    header = Text.assemble(
        ("prediction ", "bold"),
        (f"#{payload['seq']}  ", "dim"),
        f"{_span(payload)}  {payload['frames_used']} hand frames  "
        f"inference {payload['inference_ms']:.1f} ms  latency {_ms(payload.get('latency_ms'))}",
        ("  resampled" if payload.get("resampled") else "", "dim"),
    )
    top = payload["top_k"][:TOP_SHOWN]
    width = max(len(str(entry["label"])) for entry in top)
    rows = [
        Text.assemble(
            "  ",
            (str(entry["label"]).ljust(width), confidence_style(entry["prob"])),
            "  ",
            _bar(entry["prob"]),
            (f" {entry['prob'] * 100:5.1f}%", confidence_style(entry["prob"])),
        )
        for entry in top
    ]
    return Group(header, *rows)


def render_sign(payload: Mapping[str, Any]) -> Panel:
    """A boxed, bold label: the event a person is waiting for."""
    style = confidence_style(payload["prob"])
    body = Text.assemble(
        (str(payload["label"]), f"bold {style}"),
        f"   {payload['prob'] * 100:.0f}%   {payload['windows']} windows   {_span(payload)}"
        f"   latency {_ms(payload.get('latency_ms'))}",
    )
    return Panel(body, title=f"SIGN #{payload['seq']}", title_align="left", border_style=style, expand=False)


def render_segment(payload: Mapping[str, Any]) -> Text:
    """The primary line: what was signed in one episode, with its runners-up."""
    best, *rest = payload["top_k"]
    style = confidence_style(best["prob"])
    others = ", ".join(f"{e['label']} {e['prob'] * 100:.0f}%" for e in rest[: TOP_SHOWN - 1])
    return Text.assemble(
        ("recognised: ", "bold"),
        (str(best["label"]), f"bold {style}"),
        (f" {best['prob'] * 100:.0f}%", style),
        f"   {payload['start']:.2f}–{payload['end']:.2f} s, {payload['hand_frames']}/{payload['frames']} "
        f"hand frames, {payload['latency_ms']:.0f} ms",
        (" [cut]" if payload.get("cut") else "", "yellow"),
        (f"   ({others})" if others else "", "dim"),
    )


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def render_status(payload: Mapping[str, Any]) -> Text:
    """Everything about the daemon's health on one line."""
    camera = payload["camera"]
    p50 = payload["inference_p50_ms"]
    errors = payload["errors"]
    model = payload["model"]
    return Text.assemble(
        ("status ", "bold"),
        (f"{payload['state']} ", "cyan"),
        "camera ",
        (camera, "green" if camera == "ok" else "red"),
        f" {payload['source']} | cap {payload['capture_fps']:.1f} fps ext {payload['extraction_fps']:.1f} fps"
        f" drop {payload['dropped_frames']} | p50 {'-' if p50 is None else f'{p50:.1f} ms'}"
        f" | latency p50/p95 {_ms(payload.get('latency_p50_ms'))}/{_ms(payload.get('latency_p95_ms'))}"
        f" | buf {payload['buffer_fill']}{_capacity(payload)}{' idle' if payload['idle'] else ''}"
        f"{' duty-cycled' if payload.get('extraction_mode') == 'idle' else ''}"
        f"{f' short segments {short}' if (short := payload.get('short_segments', 0)) else ''}"
        f" | err {errors['extraction']}/{errors['inference']}/{errors['frames']}"
        f" | up {_uptime(payload['uptime_s'])} | {model['name']}@{str(model['sha256'])[:8]}"
        f" v{payload['version']}",
    )


def _capacity(payload: Mapping[str, Any]) -> str:
    """``/N`` when the message says how big the buffer is (the model's window); nothing if it doesn't."""
    size = payload.get("buffer_size", payload["model"].get("window"))
    return f"/{size}" if isinstance(size, int) and not isinstance(size, bool) else ""


RENDERERS = {
    "prediction": render_prediction,
    "sign": render_sign,
    "segment": render_segment,
    "status": render_status,
}


def render(console: Console, topic: str, payload: Mapping[str, Any]) -> None:
    """Print one message for a person; falls back to raw JSON if fields are missing or odd."""
    payload = printable(payload)
    try:
        renderable = RENDERERS[topic](payload)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        renderable = Text(f"{printable(topic)} {json_line(payload)}")
    # Lines (status, fallback) stay one line even in a narrow pipe, so grep sees them whole.
    console.print(renderable, soft_wrap=isinstance(renderable, Text))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slr-listen",
        description="Show what slr-edge publishes (docs/PROTOCOL.md describes the messages).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    add_subscriber_options(parser)
    parser.add_argument(
        "--topic", action="append", choices=TOPICS, help="topic to show; repeat for several (default: all)"
    )
    parser.add_argument("--json", action="store_true", help="one raw JSON line per message, for scripts")
    parser.add_argument("--count", type=int, metavar="N", help="exit 0 after N messages")
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="exit 1 if no message arrives for S seconds"
    )
    return parser


def add_subscriber_options(parser: argparse.ArgumentParser) -> None:
    """``--endpoint`` and the CURVE key files: how every subscriber command reaches the daemon."""
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="publisher endpoint (%(default)s)")
    parser.add_argument("--curve-server-key", metavar="FILE", help="publisher's public CURVE key file")
    parser.add_argument("--curve-client-key", metavar="FILE", help="this client's secret CURVE key file")


def open_subscriber(args: argparse.Namespace, topics: Sequence[str]) -> Subscriber:
    """A :class:`Subscriber` from :func:`add_subscriber_options`' values; ``KeyFileError``,
    ``ValueError`` or ``zmq.ZMQError`` (one line each) if the endpoint or a key file is unusable."""
    return Subscriber(
        args.endpoint,
        topics,
        curve_server_key=args.curve_server_key,
        curve_client_key=args.curve_client_key,
    )


def _prepare_stdout(json_mode: bool) -> None:
    # JSON lines are always UTF-8 for scripts; a person's terminal keeps its encoding but must not
    # crash on a Cyrillic label it cannot show.
    if not hasattr(sys.stdout, "reconfigure"):
        return
    if json_mode:
        sys.stdout.reconfigure(encoding="utf-8")
    elif (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
        sys.stdout.reconfigure(errors="replace")


class _Drops:
    """Invalid messages by reason: warned about at most once per reason every 10 s, summed up at the end."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._warn = ThrottledLog(log, DROP_WARNING_EVERY_S)

    def add(self, dropped: Dropped) -> None:
        self.counts[dropped.reason] += 1
        self._warn(logging.WARNING, dropped.reason, "warning: dropped an invalid message (%s): %s",
                   dropped.reason, printable(dropped.detail))  # fmt: skip

    def summary(self) -> str | None:
        if not self.counts:
            return None
        parts = ", ".join(f"{reason} {count}" for reason, count in sorted(self.counts.items()))
        return f"slr-listen: dropped {self.counts.total()} invalid message(s) ({parts})"


def _listen(
    args: argparse.Namespace, subscriber: Subscriber, out: TextIO, err: Console, drops: _Drops
) -> int:
    human = None if args.json else Console(file=out, highlight=False)
    warned: set[tuple[str, int]] = set()
    received = 0
    started = time.monotonic()
    note_due = started + WAITING_NOTE_AFTER_S
    while args.count is None or received < args.count:
        try:
            message = subscriber.recv(_next_wait(args.timeout, started if received == 0 else None, note_due))
        except ProtocolError as exc:
            drops.add(Dropped(exc.reason, str(exc)))
            continue
        if message is None and received == 0 and note_due and time.monotonic() >= note_due:
            note_due = 0.0  # said once
            if args.timeout is None or time.monotonic() - started < args.timeout:
                err.print(
                    f"slr-listen: no message from {printable(args.endpoint)} yet; "
                    "waiting (is slr-edge running there?)",
                    markup=False,
                    soft_wrap=True,  # one line, never cut at the console's width
                )
                continue
        if message is None:
            err.print(
                f"slr-listen: no message from {printable(args.endpoint)} within {args.timeout:g} s",
                markup=False,
            )
            return 1
        checked = check_payload(*message, other_versions=True)
        if isinstance(checked, Dropped):
            drops.add(checked)
            continue
        topic, payload = checked.topic, checked.payload
        version = payload["v"]  # a positive int: check_payload made sure
        if version != SCHEMA_VERSION and (topic, version) not in warned:
            warned.add((topic, version))
            err.print(
                f"warning: {topic} message has schema version {version}; "
                f"this slr-listen knows {SCHEMA_VERSION}; showing it anyway",
                markup=False,
            )
        if human is None:
            out.write(json_line(payload) + "\n")
            out.flush()
        else:
            render(human, topic, payload)
        received += 1
    return 0


def _next_wait(timeout: float | None, started: float | None, note_due: float) -> float | None:
    """How long the next ``recv`` may wait: until ``--timeout`` (from the start while nothing has
    arrived, else per message), but no longer than the waiting note's due time."""
    now = time.monotonic()
    limits = []
    if timeout is not None:
        limits.append(timeout if started is None else max(0.0, started + timeout - now))
    if started is not None and note_due:
        limits.append(max(0.0, note_due - now))
    return min(limits) if limits else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``slr-listen``."""
    return run("slr-listen", _main, argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    err = Console(stderr=True, highlight=False)
    if args.count is not None and args.count < 1:
        err.print("slr-listen: error: --count must be at least 1", markup=False)
        return 2
    if args.timeout is not None and not 0 < args.timeout < 1e6:  # also refuses nan and inf
        err.print("slr-listen: error: --timeout must be a number of seconds above 0", markup=False)
        return 2
    _prepare_stdout(args.json)
    try:
        subscriber = open_subscriber(args, args.topic or ())
    except (KeyFileError, ValueError, zmq.ZMQError) as exc:
        err.print(f"slr-listen: error: {exc}", markup=False)
        return 2
    handler = _log_to_stderr()
    drops = _Drops()
    try:
        with interrupt_on_signals():  # Ctrl-C and SIGTERM end it with 130, even if SIGINT was ignored
            return _listen(args, subscriber, sys.stdout, err, drops)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        subscriber.close()
        log.removeHandler(handler)
        if (summary := drops.summary()) is not None:
            err.print(summary, markup=False, soft_wrap=True)


def _log_to_stderr() -> logging.Handler:
    """Drop warnings go to stderr as plain lines (``slr-listen: warning: ...``), not to the root logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("slr-listen: %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    return handler


if __name__ == "__main__":
    sys.exit(main())
