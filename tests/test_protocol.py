"""The message protocol: schemas, builders and two-frame encoding."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.contract.protocol import (
    ALL_TOPICS,
    DROP_REASONS,
    ENVELOPE_FIELDS,
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    ErrorCounters,
    ModelInfo,
    Prediction,
    Preview,
    ProtocolError,
    Segment,
    SignEvent,
    Status,
    TopKEntry,
    decode,
    encode,
    envelope,
    load_schema,
)
from edge.contract.wire import Dropped, Received, SchemaChecker, check_payload, decode_message
from tests.helpers_schema import validate

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_prediction() -> Prediction:
    return Prediction(
        top_k=[TopKEntry("привет", 7, 0.82), TopKEntry("спасибо", 3, 0.11), TopKEntry("---", 0, 0.07)],
        window_start=12.5,
        window_end=16.77,
        frames_used=97,
        inference_ms=14.2,
        resampled=False,
        model="slovo-mvit-tiny",
        latency_ms=61.4,
    )


def make_sign() -> SignEvent:
    return SignEvent(
        label="привет", index=7, prob=0.91, windows=3, window_start=12.5, window_end=17.4, latency_ms=63.0
    )


def make_status() -> Status:
    return Status(
        camera="ok",
        source="/dev/video0",
        encrypted=False,
        capture_fps=30.0,
        extraction_fps=28.4,
        dropped_frames=12,
        inference_p50_ms=None,
        buffer_fill=128,
        idle=False,
        model=ModelInfo(name="slovo-mvit-tiny", sha256="ab" * 32),
        uptime_s=61.5,
        version="0.1.0",
        state="running",
        errors=ErrorCounters(extraction=1, inference=0, frames=2),
        last_frame_age_s=0.035,
        latency_p50_ms=58.2,
        latency_p95_ms=77.9,
    )


def make_preview() -> Preview:
    hand = [[0.52, 0.61], [0.55, 0.58]] + [[0.5, 0.5]] * 19
    return Preview(
        jpeg="/9j/4AAQSkZJRg==",
        width=360,
        height=640,
        frame_ts=12.5,
        keypoints={"pose": None, "left_hand": hand, "right_hand": None, "lips": None},
    )


def make_segment() -> Segment:
    return Segment(
        top_k=[TopKEntry("привет", 7, 0.88), TopKEntry("спасибо", 3, 0.07), TopKEntry("---", 0, 0.05)],
        start=12.5,
        end=15.7,
        frames=97,
        hand_frames=92,
        cut=True,
        resampled=False,
        inference_ms=14.2,
        latency_ms=21.7,
        model="slovo-mvit-tiny",
    )


MESSAGES = {
    "prediction": make_prediction,
    "sign": make_sign,
    "status": make_status,
    "segment": make_segment,
    "preview": make_preview,
}


def full(topic: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    message = envelope(topic, MESSAGES[topic]().to_payload(), seq=5, ts=1_700_000_000.25)
    message.update(overrides or {})
    return message


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_schema_is_valid_draft_2020_12(topic: str) -> None:
    schema = load_schema(topic)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["v"] == {**schema["properties"]["v"], "const": SCHEMA_VERSION}
    assert schema["properties"]["topic"]["const"] == topic


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_builder_fields_are_exactly_the_schema_fields(topic: str) -> None:
    schema = load_schema(topic)
    assert set(full(topic)) == set(schema["properties"])  # this version sends every field, optional too
    assert topic == MESSAGES[topic]().TOPIC


#: Fields added within v1 (see "Versioning policy" in docs/PROTOCOL.md): optional in the schema.
ADDED_WITHIN_V1 = {
    "prediction": {"latency_ms"},
    "sign": {"latency_ms"},
    "status": {
        "encrypted",
        "last_frame_age_s",
        "latency_p50_ms",
        "latency_p95_ms",
        "extraction_mode",
        "short_segments",
    },
    "segment": set(),
    "preview": set(),
}


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_fields_added_within_v1_are_optional_and_say_so(topic: str) -> None:
    schema = load_schema(topic)
    optional = set(schema["properties"]) - set(schema["required"])
    assert optional == ADDED_WITHIN_V1[topic]
    for name in optional:
        assert schema["properties"][name]["description"].startswith("Optional within v1")
    older = full(topic)
    for name in optional:  # a message from a daemon that predates these fields is still valid v1
        del older[name]
    validate(topic, older)


@pytest.mark.parametrize(
    ("topic", "change"),
    [
        ("prediction", {"latency_ms": -1.0}),
        ("prediction", {"latency_ms": "fast"}),
        ("sign", {"latency_ms": None}),
        ("status", {"latency_p50_ms": -0.5}),
        ("status", {"latency_p95_ms": "x"}),
    ],
)
def test_bad_latency_fields_are_rejected(topic: str, change: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(topic, full(topic, change))


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_example_messages_validate(topic: str) -> None:
    validate(topic, full(topic))


def test_status_allows_null_p50_and_numbers() -> None:
    validate("status", full("status", {"inference_p50_ms": None}))
    validate("status", full("status", {"inference_p50_ms": 3.5}))


@pytest.mark.parametrize(
    ("topic", "change"),
    [
        ("prediction", {"v": 2}),
        ("prediction", {"topic": "sign"}),
        ("prediction", {"seq": -1}),
        ("prediction", {"seq": 1.5}),
        ("prediction", {"ts": "now"}),
        ("prediction", {"top_k": []}),
        ("prediction", {"top_k": [{"label": "а", "index": 0, "prob": 1.5}]}),
        ("prediction", {"top_k": [{"label": "а", "index": -1, "prob": 0.5}]}),
        ("prediction", {"top_k": [{"label": "а", "prob": 0.5}]}),
        ("prediction", {"resampled": "no"}),
        ("prediction", {"frames_used": -3}),
        ("sign", {"windows": 0}),
        ("sign", {"prob": -0.1}),
        ("sign", {"label": None}),
        ("status", {"camera": "broken"}),
        ("status", {"state": "crashed"}),
        ("status", {"buffer_fill": 129}),
        ("status", {"inference_p50_ms": -1}),
        ("status", {"model": {"name": "m", "sha256": "xyz"}}),
        ("status", {"errors": {"extraction": 0, "inference": 0}}),
        ("status", {"idle": 0}),
    ],
)
def test_bad_messages_are_rejected(topic: str, change: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(topic, full(topic, change))


@pytest.mark.parametrize("topic", ALL_TOPICS)
@pytest.mark.parametrize("field", ENVELOPE_FIELDS)
def test_missing_envelope_field_is_rejected(topic: str, field: str) -> None:
    message = full(topic)
    del message[field]
    with pytest.raises(jsonschema.ValidationError):
        validate(topic, message)


def test_envelope_overrides_body_and_sets_version() -> None:
    message = envelope("sign", {"topic": "status", "v": 99, "label": "да"}, seq=3, ts=2.0)
    assert message == {"topic": "sign", "v": SCHEMA_VERSION, "seq": 3, "ts": 2.0, "label": "да"}


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_encode_decode_round_trip(topic: str) -> None:
    message = full(topic)
    frames = encode(topic, message)
    assert frames[0] == topic.encode("ascii")
    assert decode(frames) == (topic, message)


def test_russian_labels_travel_as_readable_utf8() -> None:
    frames = encode("sign", full("sign"))
    assert "привет".encode() in frames[1]
    assert b"\\u" not in frames[1]


@given(label=st.text(), prob=st.floats(0, 1), seq=st.integers(0, 2**53))
def test_round_trip_any_label(label: str, prob: float, seq: int) -> None:
    body = SignEvent(
        label=label, index=1, prob=prob, windows=2, window_start=0.0, window_end=1.0, latency_ms=1.0
    )
    message = envelope("sign", body.to_payload(), seq=seq, ts=1.0)
    assert decode(encode("sign", message)) == ("sign", message)


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("predictions", {}),
        ("sign", {"topic": "status"}),
        ("sign", {"prob": float("nan")}),
        ("sign", {"prob": float("inf")}),
        ("sign", {"when": object()}),
        ("sign", {"label": "\ud800"}),
    ],
)
def test_encode_rejects(topic: str, payload: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        encode(topic, payload)


@pytest.mark.parametrize(
    "frames",
    [
        [b"sign"],
        [b"sign", b"{}", b"{}"],
        [b"sign", b"not json"],
        [b"sign", b"[1, 2]"],
        [b"sign", b"\xff\xfe"],
        [b"\xd0\xb0", b"{}"],
        [b"unknown", b"{}"],
        [b"sign", b'{"topic": "status"}'],
    ],
)
def test_decode_rejects_malformed_frames(frames: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        decode(frames)


def test_load_schema_rejects_unknown_topic_and_returns_copies() -> None:
    with pytest.raises(ProtocolError):
        load_schema("../pyproject")
    schema = load_schema("sign")
    schema["required"].clear()
    assert load_schema("sign")["required"]


def test_status_payload_nests_model_and_errors() -> None:
    payload = make_status().to_payload()
    assert payload["model"] == {"name": "slovo-mvit-tiny", "sha256": "ab" * 32}
    assert payload["errors"] == {"extraction": 1, "inference": 0, "frames": 2}
    json.dumps(payload)


def _doc_examples() -> list[dict[str, Any]]:
    text = (REPO_ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    return [obj for obj in map(json.loads, blocks) if "topic" in obj and "v" in obj]


def test_protocol_doc_examples_validate() -> None:
    examples = _doc_examples()
    assert sorted(example["topic"] for example in examples) == sorted(ALL_TOPICS)
    for example in examples:
        validate(example["topic"], example)


def test_protocol_doc_embeds_the_current_schemas() -> None:
    text = (REPO_ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, flags=re.S)]
    schemas = [b for b in blocks if "$schema" in b]
    assert schemas == [load_schema(topic) for topic in ALL_TOPICS]


# -- the subscribers' boundary: protocol.decode is safe on anything, wire.decode_message validates --


def _frames(topic: str, body: str | bytes) -> list[bytes]:
    return [topic.encode("ascii"), body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body]


DEEP = 100_000


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[" * DEEP + "]" * DEEP, "depth"),
        ('{"a":' * DEEP + "1" + "}" * DEEP, "depth"),
        ('{"v": 1, "x": ' + "[" * 40 + "]" * 40 + "}", "depth"),  # parses, but deeper than MAX_DEPTH
        ('{"v": 1, "seq": NaN}', "json"),
        ('{"v": 1, "ts": Infinity}', "json"),
        ('{"v": 1, "ts": -Infinity}', "json"),
        ('{"v": 1, "ts": 1e400}', "json"),
        ('{"v": 1, "seq": ' + "1" + "0" * 400 + "}", "json"),
        ('{"v": 1, "seq": ' + "9" * 5000 + "}", "json"),  # past Python's own int-digits limit
        ('{"v": 1, "seq": 9007199254740993}', "json"),  # 2**53 + 1
        ('{"v": 1, "label": "\\ud800"}', "utf8"),
        ('{"v": 1, "\\udfff": 1}', "utf8"),
        ('{"v": 1, "label": "\ud800"}', "utf8"),  # raw surrogate bytes: not UTF-8
        (b'{"v": 1, "label": "\xc0\xaf"}', "utf8"),  # overlong encoding
        ("", "json"),
        ("null", "json"),
        ('"sign"', "json"),
        (" " * (MAX_MESSAGE_BYTES + 1), "size"),
    ],
)
def test_decode_is_safe_on_anything(body: str | bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(_frames("sign", body))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([], "frames"),
        ([b"sign"], "frames"),
        ([b"sign", b"{}", b""], "frames"),
        (["sign", "{}"], "frames"),
        ([b"sign" * 100, b"{}"], "size"),
        ([b"", b"{}"], "topic"),
        ([b"\xff", b"{}"], "topic"),
        ([b"sign", b'{"topic": "status"}'], "topic"),
    ],
)
def test_decode_reasons_for_framing(frames: list[Any], reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(frames)
    assert caught.value.reason == reason


def test_decode_keeps_integers_floats_and_the_limit_values() -> None:
    body = {"v": 1, "seq": 2**53, "neg": -(2**53), "ts": 1.5e308, "small": 5e-324, "zero": -0.0}
    assert decode(_frames("sign", json.dumps(body)))[1] == body


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_decode_message_accepts_what_the_daemon_sends(topic: str) -> None:
    result = decode_message(encode(topic, full(topic)))
    assert result == Received(topic, full(topic))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"inference_ms": "x"}, "schema"),
        ({"inference_ms": None}, "schema"),
        ({"seq": -1}, "schema"),
        ({"seq": 1.0}, "schema"),  # integers are JSON integers
        ({"resampled": 1}, "schema"),
        ({"top_k": [{"label": "а", "index": True, "prob": 0.5}]}, "schema"),
        ({"v": []}, "version"),
        ({"v": {}}, "version"),
        ({"v": "1"}, "version"),
        ({"v": True}, "version"),
        ({"v": 0}, "version"),
        ({"v": 2}, "version"),
    ],
)
def test_decode_message_drops_with_a_reason(change: dict[str, Any], reason: str) -> None:
    result = decode_message(encode("prediction", full("prediction", change)))
    assert isinstance(result, Dropped) and result.reason == reason, result
    assert result.reason in DROP_REASONS and "\n" not in result.detail and len(result.detail) <= 200


def test_decode_message_never_raises_on_deep_json() -> None:
    result = decode_message(_frames("status", '{"v":' + "[" * DEEP + "]" * DEEP + "}"))
    assert result == Dropped("depth", "status message is nested too deeply")


def _reason(result: Received | Dropped) -> str:
    assert isinstance(result, Dropped), result
    return result.reason


def test_other_versions_keep_only_the_envelope_checks() -> None:
    future = {"v": 2, "seq": 0, "ts": 1.0, "topic": "sign", "shape": "new"}
    kept = decode_message(_frames("sign", json.dumps(future)), other_versions=True)
    assert kept == Received("sign", future)
    assert _reason(decode_message(_frames("sign", json.dumps(future)))) == "version"
    broken = json.dumps({**future, "seq": "zero"})
    assert _reason(decode_message(_frames("sign", broken), other_versions=True)) == "schema"
    no_version = json.dumps({**future, "v": []})
    assert _reason(decode_message(_frames("sign", no_version), other_versions=True)) == "version"


def test_check_payload_is_the_same_check_after_decode() -> None:
    assert check_payload("sign", full("sign")) == Received("sign", full("sign"))
    assert _reason(check_payload("sign", full("sign", {"prob": 2.0}))) == "schema"
    assert _reason(check_payload("gossip", {})) == "topic"


def test_schema_checker_refuses_keywords_it_does_not_implement() -> None:
    with pytest.raises(ValueError, match="not supported"):
        SchemaChecker({"type": "object", "properties": {"x": {"type": "string", "maxLength": 3}}})
    with pytest.raises(ValueError, match="local"):
        SchemaChecker({"$ref": "https://example.org/schema"})


#: Values every field of every topic is set to in turn: SchemaChecker must agree with jsonschema.
PALETTE: list[Any] = [
    None, True, False, 0, 1, -1, 7, 128, 129, 640, 641, 2**53, 0.5, -0.5, 1.5, "", "x", "ok", "running",
    "ab" * 32, "AB" * 32, [], [1], [[0.1, 0.2]], [[0.1]], [{"label": "а", "index": 0, "prob": 0.5}],
    {}, {"name": "m", "sha256": "ab" * 32}, {"extraction": 0, "inference": 0, "frames": 0},
    {"pose": None, "left_hand": None, "right_hand": None, "lips": None},
]  # fmt: skip


def _variants(topic: str) -> list[dict[str, Any]]:
    base = full(topic)
    variants = [base]
    for name in [*base, "latency_ms", "last_frame_age_s"]:
        for value in PALETTE:
            variants.append({**base, name: value})
        variants.append({k: v for k, v in base.items() if k != name})
    for name in ("top_k", "model", "errors", "keypoints"):  # one level down
        if isinstance(base.get(name), (list, dict)):
            inner = base[name][0] if isinstance(base[name], list) else base[name]
            for key in inner:
                for value in PALETTE:
                    changed = {**inner, key: value}
                    variants.append({**base, name: [changed] if isinstance(base[name], list) else changed})
    return variants


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_schema_checker_agrees_with_jsonschema(topic: str) -> None:
    validator = jsonschema.Draft202012Validator(load_schema(topic))
    checker = SchemaChecker(load_schema(topic))
    disagreements = []
    variants = _variants(topic)
    for payload in variants:
        ours = checker.check(payload) is None
        theirs = validator.is_valid(payload)
        if ours != theirs:
            disagreements.append((ours, theirs, payload))
    assert len(variants) > 300
    assert not disagreements, disagreements[:3]


def test_schema_checker_pattern_end_is_the_end() -> None:
    """ECMA-262 ``$`` (the schemas' dialect) does not match before a final newline; Python's does
    (and so jsonschema, which uses Python's ``re``): a sha256 with a newline is refused here."""
    status = full("status", {"model": {"name": "m", "sha256": "ab" * 32 + "\n"}})
    assert SchemaChecker(load_schema("status")).check(status) == (
        f"model.sha256: {'ab' * 32 + chr(10)!r:.40} does not match ^[0-9a-f]{{64}}$"
    )
