"""Home Assistant's side of ``slr-mqtt`` (issue 27, items 7-9), evaluated the way HA evaluates it.

HA renders MQTT value templates with jinja2 in a sandboxed environment, ``value_json`` the decoded
payload, and its ``tojson`` fails on an undefined value (the event is then dropped with
"LoggingUndefined is not JSON serializable"); jinja2's own ``tojson`` fails the same way on its
``Undefined``. The README's example automation is parsed from the README itself, and its trigger and
condition are run through HA's state-trigger rules (``not_from``/``not_to``) and the same jinja2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from edge.contract.protocol import Segment, SignEvent, TopKEntry, envelope
from edge.contract.wire import Received, check_payload
from edge.mqtt.topics import ENTITIES, Topics, discovery_messages

REPO = Path(__file__).resolve().parents[1]
TOPICS = Topics("slovo", "hall")


def ha_env(undefined: type[jinja2.Undefined] = jinja2.Undefined) -> ImmutableSandboxedEnvironment:
    """jinja2 as HA configures it, with HA's ``float(default)`` filter."""
    env = ImmutableSandboxedEnvironment(undefined=undefined)

    def forgiving_float(value: Any, default: Any = None) -> Any:
        try:
            return float(value)
        except (TypeError, ValueError):
            if default is None:
                raise
            return default

    env.filters["float"] = forgiving_float
    return env


def render_value(template: str, payload: dict[str, Any]) -> str:
    return ha_env().from_string(template).render(value_json=payload, value=json.dumps(payload))


def sign(**drop: bool) -> dict[str, Any]:
    body = SignEvent("привет", 4, 0.83, 2, 1.0, 2.0, latency_ms=41.0).to_payload()
    message = envelope("sign", body, seq=7, ts=1.0)
    return {k: v for k, v in message.items() if not drop.get(k)}


def segment(**drop: bool) -> dict[str, Any]:
    body = Segment(
        top_k=[TopKEntry("спасибо", 2, 0.91), TopKEntry("да", 1, 0.05)], start=1.0, end=2.0, frames=30,
        hand_frames=28, cut=False, resampled=False, inference_ms=7.0, latency_ms=55.0, model="m",
    ).to_payload()  # fmt: skip
    message = envelope("segment", body, seq=3, ts=1.0)
    return {k: v for k, v in message.items() if not drop.get(k)}


def configs(qos: int = 1) -> dict[str, dict[str, Any]]:
    return {topic: json.loads(body) for topic, body in discovery_messages(TOPICS, "0.1.0", qos)}


def optional_fields(topic: str) -> list[str]:
    from edge.contract.protocol import load_schema

    schema = load_schema(topic)
    return [name for name in schema["properties"] if name not in schema["required"]]


@pytest.mark.parametrize(("topic", "make"), [("sign", sign), ("segment", segment)])
def test_event_templates_render_for_every_schema_valid_message(topic: str, make: Any) -> None:
    """Item 8: a valid message without an optional field (``latency_ms`` of a sign) still makes an
    event; every optional field the template reads has a default."""
    config = configs()[TOPICS.discovery("event", topic)]
    cases = [make()] + [make(**{name: True}) for name in optional_fields(topic)]
    assert len(cases) >= 2 if topic == "sign" else True
    for payload in cases:
        assert isinstance(check_payload(topic, payload), Received), payload  # schema-valid
        event = json.loads(render_value(config["value_template"], payload))
        assert event["event_type"] in config["event_types"]
        best = payload["top_k"][0] if topic == "segment" else payload
        assert (event["gloss"], event["confidence"]) == (best["label"], best["prob"])
        assert event["latency_ms"] == payload.get("latency_ms")


def test_sensor_templates_render_a_status() -> None:
    from tests.helpers_wire import status_message

    status = status_message()
    for topic, config in configs().items():
        if "/sensor/" in topic:
            rendered = render_value(config["value_template"], status)
            assert rendered and "Undefined" not in rendered, (topic, rendered)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_every_discovery_config_carries_the_bridge_qos(qos: int) -> None:
    """Item 9: without ``qos`` HA subscribes at QoS 0 and the bridge's QoS 1 stops at the broker."""
    found = configs(qos)
    assert len(found) == len(ENTITIES)
    assert all(config["qos"] == qos for config in found.values()), found


# -- the README's automation (item 7) -----------------------------------------------------------------


def readme_automation() -> dict[str, Any]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    automations = [yaml.safe_load(block) for block in blocks if "automation:" in block]
    assert len(automations) == 1, "the README shows one example automation"
    (automation,) = automations[0]["automation"]
    return automation


def event_state(when: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An event entity's state as HA holds it: the time of the last event, the event as attributes."""
    config = configs()[TOPICS.discovery("event", "segment")]
    event = json.loads(render_value(config["value_template"], payload))
    return {"state": when, "attributes": event}


UNAVAILABLE = {"state": "unavailable", "attributes": {}}
UNKNOWN = {"state": "unknown", "attributes": {}}


def fires(automation: dict[str, Any], from_state: dict[str, Any], to_state: dict[str, Any]) -> bool:
    """HA's state trigger (``not_from``/``not_to``/``from``/``to``) and then the template condition,
    rendered with StrictUndefined: a template error (what HA logs) fails the test."""
    (trigger,) = automation["trigger"]
    assert trigger["platform"] == "state"
    if from_state["state"] in trigger.get("not_from", []) or to_state["state"] in trigger.get("not_to", []):
        return False
    if "from" in trigger and from_state["state"] != trigger["from"]:
        return False
    if "to" in trigger and to_state["state"] != trigger["to"]:
        return False
    conditions = automation.get("condition", [])
    conditions = conditions if isinstance(conditions, list) else [conditions]
    env = ha_env(jinja2.StrictUndefined)
    context = {"trigger": {"from_state": from_state, "to_state": to_state}}
    for condition in conditions:
        template = condition if isinstance(condition, str) else condition["value_template"]
        if env.from_string(template).render(context).strip() != "True":
            return False
    return True


def test_readme_automation_fires_once_per_segment_and_never_on_availability() -> None:
    automation = readme_automation()
    (trigger,) = automation["trigger"]
    assert trigger["entity_id"] == "event.slovo_edge_hall_signed_segment"
    confident = event_state("2026-01-01T10:00:00+00:00", segment())
    later = event_state("2026-01-01T10:00:05+00:00", segment())
    unsure = {**segment(), "top_k": [{"label": "да", "index": 1, "prob": 0.3}]}
    weak = event_state("2026-01-01T10:00:09+00:00", unsure)
    assert fires(automation, confident, later)  # a new segment
    assert not fires(automation, later, weak)  # below the threshold
    # the bridge or the daemon goes away and comes back: HA restores the last event's state
    assert not fires(automation, later, UNAVAILABLE)
    assert not fires(automation, UNAVAILABLE, later)  # would announce the previous gloss again
    assert not fires(automation, UNKNOWN, later)
    assert not fires(automation, later, UNKNOWN)
    message = automation["action"][0]["data"]["message"]
    assert "спасибо" in ha_env(jinja2.StrictUndefined).from_string(message).render(
        trigger={"from_state": confident, "to_state": later}
    )
