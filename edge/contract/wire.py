"""What every subscriber does with what arrives: validate at the boundary, or drop with a reason.

Anything may be bound to the endpoint a subscriber connects to (a crashed daemon's port taken
by another program, a daemon of another version, a hostile publisher), so each message is checked
before any field is used::

    result = decode_message(sock.recv_multipart())
    if isinstance(result, Dropped):
        drops[result.reason] += 1  # count it, log it rate-limited, go on
    else:
        use(result.topic, result.payload)  # schema-valid: every required field, typed and in range

A :class:`Received` payload has passed :func:`edge.contract.protocol.decode` (two frames, a known
topic, at most ``MAX_MESSAGE_BYTES``, strict UTF-8, no NaN/Infinity, finite floats, integers
within ``MAX_INT``, bounded nesting, no lone surrogates) and, for ``v`` equal to
:data:`~edge.contract.protocol.SCHEMA_VERSION`, its topic's schema (``schemas/<topic>.json``).
Integers must be JSON integers (``1``, not ``1.0``), slightly stricter than JSON Schema.

The schemas are the one statement of the message format, so they are interpreted here, not
restated in code: :class:`SchemaChecker` understands exactly the keywords the schema files use
(``type``, ``const``, ``enum``, ``required``, ``properties``, ``items``, ``minItems``,
``maxItems``, ``minimum``, ``maximum``, ``pattern``, ``$ref`` into ``$defs``, plus annotations)
and refuses to load a schema with any other keyword, so a schema change that needs more fails
the tests instead of passing unchecked. Why not ``jsonschema`` on the device: it brings
``referencing``, ``rpds-py`` (a Rust extension) and ``attrs`` to every subscriber for the ~100 lines
below; the tests compare this checker with ``jsonschema`` on every generated case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from edge.contract.protocol import (
    ALL_TOPICS,
    DROP_REASONS,
    SCHEMA_VERSION,
    DropReason,
    ProtocolError,
    decode,
    load_schema,
)

__all__ = ["DROP_REASONS", "DropReason", "Dropped", "Received", "check_payload", "decode_message"]


@dataclass(frozen=True)
class Received:
    """A message that passed every check: use its fields without further type tests."""

    topic: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Dropped:
    """A message that failed: ``reason`` is one of :data:`DROP_REASONS` (a metric label), ``detail``
    one line for a log (values in it are ``repr``-escaped and cut to 200 characters)."""

    reason: DropReason
    detail: str


def decode_message(frames: Sequence[bytes], *, other_versions: bool = False) -> Received | Dropped:
    """Raw ZeroMQ frames -> a validated message or the reason it was dropped; never raises.

    ``other_versions``: a message whose ``v`` is another positive integer is kept after the
    envelope checks only (``slr-listen`` shows it, as docs/PROTOCOL.md's versioning policy asks);
    otherwise it is dropped with reason ``version``. A ``v`` that is not an integer is always dropped.
    """
    try:
        topic, payload = decode(frames)
    except ProtocolError as exc:
        return Dropped(exc.reason, _line(str(exc)))
    return check_payload(topic, payload, other_versions=other_versions)


def check_payload(
    topic: str, payload: Mapping[str, Any], *, other_versions: bool = False
) -> Received | Dropped:
    """The version and schema checks of :func:`decode_message`, for a payload that already passed
    :func:`edge.contract.protocol.decode` (e.g. from :meth:`edge.transport.subscriber.Subscriber.recv`)."""
    if topic not in ALL_TOPICS:
        return Dropped("topic", _line(f"unknown topic {topic!r}"))
    version = payload.get("v")
    if type(version) is not int or version < 1:
        return Dropped("version", _line(f"{topic} message has no valid schema version: v={version!r}"))
    if version != SCHEMA_VERSION:
        if not other_versions:
            return Dropped("version", f"{topic} message has schema version {version}, not {SCHEMA_VERSION}")
        problem = _checker(topic).check_envelope(payload)
    else:
        problem = _checker(topic).check(payload)
    if problem is not None:
        return Dropped("schema", _line(f"{topic} message: {problem}"))
    return Received(topic, dict(payload))


def _line(text: str) -> str:
    return " ".join(text.split())[:200]


@cache
def _checker(topic: str) -> SchemaChecker:
    return SchemaChecker(load_schema(topic))


#: Keywords that only describe (JSON Schema annotations): nothing to check.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "title", "description", "contentEncoding", "contentMediaType", "$defs"}
)
_CHECKED = frozenset(
    {"type", "const", "enum", "required", "properties", "items", "minItems", "maxItems", "minimum",
     "maximum", "pattern", "$ref"}
)  # fmt: skip
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
#: The fields every message has, whatever its version (docs/PROTOCOL.md "Envelope").
_ENVELOPE = ("v", "seq", "ts", "topic")


class SchemaChecker:
    """The subset of JSON Schema 2020-12 that ``edge/contract/schemas/*.json`` use, as a checker.

    Raises ``ValueError`` at construction for a keyword it does not know, so it never silently
    accepts what a schema forbids. :meth:`check` returns None for a valid payload, else the first
    problem as text (``field.path: what is wrong``).
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._schema = schema
        self._defs: Mapping[str, Any] = schema.get("$defs", {})
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._audit(schema, "#")

    def _audit(self, node: Mapping[str, Any], where: str) -> None:
        unknown = set(node) - _ANNOTATIONS - _CHECKED
        if unknown:
            raise ValueError(
                f"schema keyword(s) {sorted(unknown)} at {where} are not supported by SchemaChecker"
            )
        for name, sub in node.get("properties", {}).items():
            self._audit(sub, f"{where}/properties/{name}")
        if "items" in node:
            self._audit(node["items"], f"{where}/items")
        for name, sub in self._defs.items() if where == "#" else ():
            self._audit(sub, f"#/$defs/{name}")
        if "pattern" in node:
            # ECMA-262 "$" is the end; Python's also matches before a final newline.
            pattern = node["pattern"]
            self._patterns[pattern] = re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)
        if "$ref" in node and not str(node["$ref"]).startswith("#/$defs/"):
            raise ValueError(f"only local $ref into $defs is supported, not {node['$ref']!r} at {where}")

    def check(self, payload: Mapping[str, Any]) -> str | None:
        return self._check(self._schema, payload, "")

    def check_envelope(self, payload: Mapping[str, Any]) -> str | None:
        """Only the envelope fields: what a message of another version is known to have."""
        properties = self._schema["properties"]
        for name in _ENVELOPE:
            if name not in payload:
                return f"{name}: required"
            if name != "v" and (problem := self._check(properties[name], payload[name], name)) is not None:
                return problem
        return None

    def _check(self, node: Mapping[str, Any], value: Any, path: str) -> str | None:
        if "$ref" in node:
            target = self._defs[node["$ref"].removeprefix("#/$defs/")]
            if (problem := self._check(target, value, path)) is not None:
                return problem
        here = path or "message"
        if "type" in node:
            names = [node["type"]] if isinstance(node["type"], str) else node["type"]
            if not any(_is_type(value, name) for name in names):
                return f"{here}: expected {' or '.join(names)}, got {_kind(value)}"
        if "const" in node and not _same(value, node["const"]):
            return f"{here}: must be {node['const']!r}"
        if "enum" in node and not any(_same(value, option) for option in node["enum"]):
            return f"{here}: {value!r:.40} is not one of {', '.join(map(str, node['enum']))}"
        if _is_type(value, "number"):
            if "minimum" in node and value < node["minimum"]:
                return f"{here}: {value!r} is below {node['minimum']}"
            if "maximum" in node and value > node["maximum"]:
                return f"{here}: {value!r} is above {node['maximum']}"
        if isinstance(value, str) and "pattern" in node and not self._patterns[node["pattern"]].search(value):
            return f"{here}: {value!r:.40} does not match {node['pattern']}"
        if isinstance(value, list):
            if len(value) < node.get("minItems", 0):
                return f"{here}: needs at least {node['minItems']} item(s)"
            if "maxItems" in node and len(value) > node["maxItems"]:
                return f"{here}: at most {node['maxItems']} item(s)"
            if "items" in node:
                for index, item in enumerate(value):
                    if (problem := self._check(node["items"], item, f"{path}[{index}]")) is not None:
                        return problem
        if isinstance(value, dict):
            for name in node.get("required", ()):
                if name not in value:
                    return f"{_join(path, name)}: required"
            for name, sub in node.get("properties", {}).items():
                if (
                    name in value
                    and (problem := self._check(sub, value[name], _join(path, name))) is not None
                ):
                    return problem
        return None


def _is_type(value: Any, name: str) -> bool:
    # bool is an int in Python, never in JSON.
    return isinstance(value, _TYPES[name]) and (name == "boolean" or not isinstance(value, bool))


def _same(value: Any, expected: Any) -> bool:
    return type(value) is type(expected) and value == expected  # 1 == True == 1.0 in Python


def _kind(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
