"""The ZeroMQ message protocol: topics, payload builders, framing and schema validation.

This is the one place that knows what a message looks like; ``docs/PROTOCOL.md`` describes it for
people and ``edge/contract/schemas/<topic>.json`` (JSON Schema 2020-12) for machines.

Every message is two ZeroMQ frames::

    [b"<topic>", b"<UTF-8 JSON object>"]

The topic frame comes first so subscribers filter with ZeroMQ's prefix subscription and never
parse JSON they do not want. Every JSON object carries the envelope fields ``v`` (schema version),
``seq`` (per-topic counter of one publisher: a subscriber that filters topics can still detect
drops), ``ts`` (wall-clock unix seconds) and ``topic``; :class:`edge.transport.publisher.Publisher` adds them,
so the daemon builds only the body with :class:`Prediction`, :class:`SignEvent`, :class:`Segment`,
:class:`Status` or :class:`Preview`.

Subscribers check what they receive with :func:`edge.contract.wire.decode_message` (framing,
size, JSON, version and the schemas, without ``jsonschema``): one check for every subscriber.
``jsonschema`` is a dev dependency: the tests compare that check with it (``tests/helpers_schema.py``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any, ClassVar, Literal

#: Version of every schema; bumped only on breaking changes (see docs/PROTOCOL.md).
SCHEMA_VERSION = 1

TOPIC_PREDICTION = "prediction"
TOPIC_SIGN = "sign"
TOPIC_STATUS = "status"
TOPIC_SEGMENT = "segment"
TOPICS: tuple[str, ...] = (TOPIC_PREDICTION, TOPIC_SIGN, TOPIC_STATUS, TOPIC_SEGMENT)
#: Produced only while someone subscribes to it by name, and never sent to "everything" (``b""``)
#: subscribers: camera preview frames are large (see docs/PROTOCOL.md, "On-demand topics").
TOPIC_PREVIEW = "preview"
ON_DEMAND_TOPICS: tuple[str, ...] = (TOPIC_PREVIEW,)
ALL_TOPICS: tuple[str, ...] = TOPICS + ON_DEMAND_TOPICS

#: Fields every message carries, added by the publisher.
ENVELOPE_FIELDS: tuple[str, ...] = ("v", "seq", "ts", "topic")

CameraState = Literal["ok", "connecting", "lost", "eof"]
DaemonState = Literal["starting", "running", "idle", "stopping"]
#: ``full``: every frame is extracted; ``idle``: no hands for ``idle_after_s``, ``idle_fps`` frames/s.
ExtractionMode = Literal["full", "idle"]


#: Why a received message was dropped (bounded: the label set of slr-web's drop counter).
DropReason = Literal["frames", "size", "topic", "utf8", "json", "depth", "version", "schema"]
DROP_REASONS: tuple[DropReason, ...] = (
    "frames",
    "size",
    "topic",
    "utf8",
    "json",
    "depth",
    "version",
    "schema",
)

#: Largest JSON frame a subscriber accepts: a preview (the biggest message, a base64 JPEG of at
#: most 640 x 640 px) is 20-200 kB.
MAX_MESSAGE_BYTES = 1 << 20
MAX_TOPIC_BYTES = 64
#: Deepest nesting accepted (the schemas need 4: preview keypoints); extra fields get some room.
MAX_DEPTH = 32
#: Integers beyond this are refused: JavaScript (the dashboard) and many JSON parsers lose
#: precision there, and a 400-digit ``seq`` would break arithmetic on it.
MAX_INT = 2**53
_MAX_INT_DIGITS = 16
_SURROGATE = re.compile("[\ud800-\udfff]")


class ProtocolError(ValueError):
    """A message that cannot be encoded or decoded: wrong topic, framing, JSON or envelope.

    ``reason`` (one of :data:`DROP_REASONS`) says which check failed, for drop counters.
    """

    def __init__(self, message: str, reason: DropReason = "json") -> None:
        super().__init__(message)
        self.reason: DropReason = reason


@dataclass(frozen=True)
class TopKEntry:
    """One class of a prediction's top-k list."""

    label: str
    index: int
    prob: float


def _with_top_k(message: Prediction | Segment) -> dict[str, Any]:
    body = asdict(message)
    body["top_k"] = [asdict(entry) for entry in message.top_k]
    return body


@dataclass(frozen=True)
class Prediction:
    """Body of a ``prediction`` message: the result of one inference on one window."""

    TOPIC: ClassVar[str] = TOPIC_PREDICTION

    top_k: Sequence[TopKEntry]
    window_start: float
    window_end: float
    frames_used: int
    inference_ms: float
    resampled: bool
    model: str
    #: Capture of the window's newest frame → message handed to ZeroMQ, milliseconds.
    latency_ms: float

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON-ready dict without the envelope (the publisher adds it)."""
        return _with_top_k(self)


@dataclass(frozen=True)
class SignEvent:
    """Body of a ``sign`` message: consecutive windows agreed on one class above the threshold."""

    TOPIC: ClassVar[str] = TOPIC_SIGN

    label: str
    index: int
    prob: float
    windows: int
    window_start: float
    window_end: float
    #: Capture of the deciding window's newest frame → this event handed to ZeroMQ, milliseconds.
    latency_ms: float

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON-ready dict without the envelope (the publisher adds it)."""
        return asdict(self)


@dataclass(frozen=True)
class Segment:
    """Body of a ``segment`` message: one signing episode classified as a whole clip.

    An episode runs from the first frame with a hand to the last one before the hands were down
    for ``gap_s`` (or until ``max_segment_s``: then ``cut`` is true and the next one follows at once).
    """

    TOPIC: ClassVar[str] = TOPIC_SEGMENT

    top_k: Sequence[TopKEntry]
    start: float
    end: float
    frames: int
    hand_frames: int
    cut: bool
    resampled: bool
    inference_ms: float
    latency_ms: float
    model: str

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON-ready dict without the envelope (the publisher adds it)."""
        return _with_top_k(self)


@dataclass(frozen=True)
class ModelInfo:
    """Which model the daemon runs; ``sha256`` is of the .onnx file (lowercase hex)."""

    name: str
    sha256: str


@dataclass(frozen=True)
class ErrorCounters:
    """Errors since start, by stage; each one was logged and survived."""

    extraction: int = 0
    inference: int = 0
    frames: int = 0


@dataclass(frozen=True)
class Status:
    """Body of a ``status`` message: the daemon's health, published about once a second."""

    TOPIC: ClassVar[str] = TOPIC_STATUS

    camera: CameraState
    source: str
    encrypted: bool
    capture_fps: float
    extraction_fps: float
    dropped_frames: int
    inference_p50_ms: float | None
    buffer_fill: int
    idle: bool
    model: ModelInfo
    uptime_s: float
    version: str
    state: DaemonState
    extraction_mode: ExtractionMode = "full"
    #: Episodes dropped because they were shorter than ``min_segment_frames``.
    short_segments: int = 0
    errors: ErrorCounters = field(default_factory=ErrorCounters)
    #: Seconds since the last frame was extracted (None before the first): proof of progress for
    #: health checks, since a hung capture still publishes status with camera "ok".
    last_frame_age_s: float | None = None
    #: p50/p95 of ``latency_ms`` over the last 200 predictions; None before the first one.
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON-ready dict without the envelope (the publisher adds it)."""
        return asdict(self)


@dataclass(frozen=True)
class Preview:
    """Body of a ``preview`` message: one small camera frame and the keypoints found in it.

    ``jpeg`` is base64 (the message stays two frames of JSON). Keypoints are ``[x, y]`` in
    MediaPipe's normalised image coordinates (0..1 across the frame, may lie outside it), grouped
    by part; a part that was not detected is ``null``.
    """

    TOPIC: ClassVar[str] = TOPIC_PREVIEW

    jpeg: str
    width: int
    height: int
    frame_ts: float
    keypoints: Mapping[str, Sequence[Sequence[float]] | None]

    def to_payload(self) -> dict[str, Any]:
        """Plain JSON-ready dict without the envelope (the publisher adds it)."""
        return asdict(self)


Message = Prediction | SignEvent | Segment | Status | Preview


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is one of :data:`ALL_TOPICS`, else raise :class:`ProtocolError`."""
    if topic not in ALL_TOPICS:
        raise ProtocolError(
            f"unknown topic {topic!r:.60}; expected one of {', '.join(ALL_TOPICS)}", reason="topic"
        )
    return topic


def envelope(topic: str, body: Mapping[str, Any], *, seq: int, ts: float) -> dict[str, Any]:
    """Full message dict: ``body`` plus ``v``/``seq``/``ts``/``topic`` (envelope fields win)."""
    check_topic(topic)
    message = dict(body)
    message.update(v=SCHEMA_VERSION, seq=seq, ts=ts, topic=topic)
    return message


def encode(topic: str, payload: Mapping[str, Any]) -> list[bytes]:
    """Two frames for ``zmq.Socket.send_multipart``: ASCII topic, UTF-8 JSON.

    Raises :class:`ProtocolError` for an unknown topic, a payload whose ``topic`` field disagrees,
    or values JSON cannot carry (NaN/inf, which strict parsers in other languages reject).
    """
    check_topic(topic)
    if payload.get("topic", topic) != topic:
        raise ProtocolError(f"payload topic {payload.get('topic')!r} does not match frame topic {topic!r}")
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        body = text.encode("utf-8")  # a lone surrogate (from a bad label) fails here
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{topic} payload is not JSON-serialisable: {exc}") from exc
    return [topic.encode("ascii"), body]


def decode(frames: Sequence[bytes]) -> tuple[str, dict[str, Any]]:
    """Inverse of :func:`encode`: ``(topic, payload)``; raises :class:`ProtocolError` if malformed.

    Safe on anything a peer can send (see :class:`ProtocolError` ``reason`` for what failed): at
    most :data:`MAX_MESSAGE_BYTES`, strict UTF-8, no NaN/Infinity tokens, no non-finite floats,
    integers within :data:`MAX_INT`, nesting within :data:`MAX_DEPTH` (100,000 levels are a
    ``ProtocolError``, never a ``RecursionError``), no lone surrogates (``"\\ud800"`` escapes).
    Does not check ``v`` nor the schema: :func:`edge.contract.wire.decode_message` does both, and
    subscribers use that.
    """
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames (topic, JSON), got {len(frames)}", reason="frames")
    try:
        raw_topic, raw_body = (bytes(frame) for frame in frames)
    except TypeError as exc:
        raise ProtocolError(f"frames are not bytes: {exc}", reason="frames") from exc
    if len(raw_topic) > MAX_TOPIC_BYTES or len(raw_body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"message of {len(raw_topic)} + {len(raw_body)} bytes is over the limit "
            f"({MAX_TOPIC_BYTES} + {MAX_MESSAGE_BYTES})",
            reason="size",
        )
    topic = raw_topic.decode("ascii", "replace")
    if topic not in ALL_TOPICS:
        raise ProtocolError(f"unknown topic {raw_topic[:MAX_TOPIC_BYTES]!r}", reason="topic")
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{topic} message is not UTF-8: {exc}", reason="utf8") from exc
    payload = _parse_json(topic, text)
    if not isinstance(payload, dict):
        raise ProtocolError(
            f"{topic} payload is {type(payload).__name__}, expected a JSON object", reason="json"
        )
    _check_tree(topic, payload)
    if payload.get("topic", topic) != topic:
        raise ProtocolError(
            f"payload topic {payload.get('topic')!r:.60} does not match frame topic {topic!r}", reason="topic"
        )
    return topic, payload


def _parse_int(text: str) -> int:
    # Checked before int(): 10**400 must not become a number a consumer does arithmetic with.
    if len(text.lstrip("-")) > _MAX_INT_DIGITS or abs(value := int(text)) > MAX_INT:
        raise ValueError(f"integer {text[:24]}{'...' if len(text) > 24 else ''} is out of range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise ValueError(f"number {text[:24]} is not finite")
    return value


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(topic: str, text: str) -> Any:
    try:
        return json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
        )
    except RecursionError as exc:
        raise ProtocolError(f"{topic} message is nested too deeply", reason="depth") from exc
    except ValueError as exc:  # json.JSONDecodeError and the hooks above
        raise ProtocolError(f"{topic} message is not valid JSON: {str(exc)[:200]}", reason="json") from exc


def _check_tree(topic: str, payload: dict[str, Any]) -> None:
    """Nesting depth and lone surrogates, iteratively (no recursion on what a peer sent)."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise ProtocolError(f"{topic} message has a lone surrogate in a string", reason="utf8")
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ProtocolError(f"{topic} message is nested deeper than {MAX_DEPTH}", reason="depth")
            items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
            for key, item in items:
                if key is not None:
                    stack.append((key, depth))
                stack.append((item, depth + 1))


@cache
def _schema_text(topic: str) -> str:
    return (resources.files("edge.contract") / "schemas" / f"{topic}.json").read_text(encoding="utf-8")


def load_schema(topic: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) for ``topic``, read from the package data; a fresh copy."""
    return json.loads(_schema_text(check_topic(topic)))
