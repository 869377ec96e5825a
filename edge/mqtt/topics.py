"""Every MQTT topic ``slr-mqtt`` writes, and the Home Assistant discovery configs that describe them.

Layout (``PREFIX`` default ``slovo``, ``DEVICE`` default the host name)::

    PREFIX/DEVICE/available   retained  online | offline (the last will: a dead bridge reads offline)
    PREFIX/DEVICE/sign        QoS 1     the protocol's sign message, as the daemon sent it
    PREFIX/DEVICE/segment     QoS 1     the protocol's segment message
    PREFIX/DEVICE/status      retained  the daemon's latest status message
    PREFIX/DEVICE/prediction  QoS 0     only with forward_prediction (3-4 a second)
    PREFIX/DEVICE/bridge      retained  the bridge's own counters and whether the daemon is alive

``available`` is ``online`` only while the bridge is connected *and* the daemon publishes status,
so Home Assistant shows every entity unavailable when either is gone.

Discovery (``homeassistant/<component>/<DEVICE>/<object>/config``, retained) declares one device
with two ``event`` entities (window decisions and whole segments: the gloss and its confidence as
attributes) and three sensors (state, extraction frames/s, latency p50), all with ``available``
as their availability topic. Topics and templates come from here only; nothing in them is built
from message data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge.contract.protocol import TOPIC_SEGMENT, TOPIC_SIGN, TOPIC_STATUS

ONLINE = "online"
OFFLINE = "offline"
#: Protocol topics the bridge forwards; ``prediction`` only when asked.
FORWARDED = (TOPIC_SIGN, TOPIC_SEGMENT, TOPIC_STATUS)


@dataclass(frozen=True)
class Topics:
    """The topic names for one device."""

    prefix: str
    device: str
    discovery_prefix: str = "homeassistant"

    def of(self, name: str) -> str:
        """``PREFIX/DEVICE/name``."""
        return f"{self.prefix}/{self.device}/{name}"

    @property
    def available(self) -> str:
        return self.of("available")

    @property
    def bridge(self) -> str:
        return self.of("bridge")

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.device}/{object_id}/config"


def _uid(topics: Topics, object_id: str) -> str:
    return f"{topics.prefix.replace('/', '_')}_{topics.device}_{object_id}"


#: (component, object id, name, state topic, extra config): one row per Home Assistant entity.
#: The event template reads every field that a schema-valid message may lack through
#: ``default(none)`` (HA's ``tojson`` fails on an undefined value and drops the event); required
#: fields are read plainly. ``%s`` slots: event type, gloss, confidence.
_EVENT_TEMPLATE = (
    '{{ {"event_type": "%s", "gloss": %s, "confidence": %s, '
    '"latency_ms": value_json.latency_ms | default(none)} | tojson }}'
)
ENTITIES: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    (
        "event",
        "sign",
        "Sign",
        TOPIC_SIGN,
        {
            "event_types": ["sign"],
            "value_template": _EVENT_TEMPLATE % ("sign", "value_json.label", "value_json.prob"),
            "icon": "mdi:hand-wave",
        },
    ),
    (
        "event",
        "segment",
        "Signed segment",
        TOPIC_SEGMENT,
        {
            "event_types": ["segment"],
            "value_template": _EVENT_TEMPLATE
            % ("segment", "value_json.top_k[0].label", "value_json.top_k[0].prob"),
            "icon": "mdi:hand-back-right",
        },
    ),
    (
        "sensor",
        "state",
        "State",
        TOPIC_STATUS,
        {
            "value_template": "{{ value_json.state }}",
            "device_class": "enum",
            "options": ["starting", "running", "idle", "stopping"],
            "icon": "mdi:state-machine",
        },
    ),
    (
        "sensor",
        "extraction_fps",
        "Extraction rate",
        TOPIC_STATUS,
        {
            "value_template": "{{ value_json.extraction_fps }}",
            "unit_of_measurement": "fps",
            "state_class": "measurement",
            "suggested_display_precision": 1,
            "icon": "mdi:speedometer",
        },
    ),
    (
        "sensor",
        "latency_p50",
        "Latency p50",
        TOPIC_STATUS,
        {
            # null before the first prediction: "None" is what HA's MQTT sensor reads as unknown
            "value_template": "{{ value_json.latency_p50_ms }}",
            "unit_of_measurement": "ms",
            "device_class": "duration",
            "state_class": "measurement",
            "suggested_display_precision": 0,
        },
    ),
)


def discovery_messages(topics: Topics, version: str, qos: int = 1) -> list[tuple[str, str]]:
    """``(topic, JSON config)`` for every entity, in a stable order.

    ``qos`` is the bridge's own QoS for its state topics: Home Assistant subscribes at the QoS a
    config names (0 without one), and a message is delivered at the lower of the two.
    """
    device = {
        "identifiers": [_uid(topics, "device")],
        "name": f"slovo-edge {topics.device}",
        "manufacturer": "slovo-edge",
        "model": "Russian Sign Language recognition",
        "sw_version": version,
    }
    out = []
    for component, object_id, name, source, extra in ENTITIES:
        config = {
            "name": name,
            "unique_id": _uid(topics, object_id),
            "state_topic": topics.of(source),
            "availability_topic": topics.available,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "qos": qos,
            "device": device,
            "origin": {"name": "slr-mqtt", "sw_version": version},
            **extra,
        }
        out.append((topics.discovery(component, object_id), json.dumps(config, ensure_ascii=False)))
    return out


def discovery_topics(topics: Topics) -> list[str]:
    """The retained config topics, for ``--remove-discovery`` (an empty retained payload deletes each)."""
    return [topics.discovery(component, object_id) for component, object_id, *_ in ENTITIES]
