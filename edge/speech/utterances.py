"""What ``slr-speak`` says for a message: validated against the schema, above the threshold, a sign.

Every message is untrusted: it is checked by the one received-message check every subscriber uses
(:func:`edge.contract.wire.check_payload`) before any field is read, and one that fails is dropped
and counted, never fatal. A ``segment``
says its top-1 gloss, a ``sign`` its label. The model's no-sign class (``---``) and labels without
a letter or digit are not spoken. The text is one cleaned line (:func:`edge.captions.cues.clean_text`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.captions.cues import clean_text
from edge.contract.model_contract import NO_SIGN_LABEL
from edge.contract.protocol import TOPIC_SEGMENT, TOPIC_SIGN
from edge.contract.wire import Dropped, check_payload

#: Topics that can be spoken.
SPOKEN_TOPICS = (TOPIC_SEGMENT, TOPIC_SIGN)


@dataclass(frozen=True)
class Utterance:
    text: str
    prob: float
    topic: str
    seq: int


def invalid_reason(topic: str, payload: Mapping[str, Any]) -> str | None:
    """Why ``payload`` fails the received-message check (one line), or None if it is valid."""
    checked = check_payload(topic, payload)
    return checked.detail if isinstance(checked, Dropped) else None


def utterance_of(topic: str, payload: Mapping[str, Any], min_confidence: float) -> Utterance | None:
    """The utterance for a *valid* message, or None if it is below ``min_confidence`` or not a sign."""
    if topic == TOPIC_SEGMENT:
        best = payload["top_k"][0]
        label, prob = best["label"], float(best["prob"])
    elif topic == TOPIC_SIGN:
        label, prob = payload["label"], float(payload["prob"])
    else:
        return None
    text = clean_text(label)
    if prob < min_confidence or label == NO_SIGN_LABEL or not any(ch.isalnum() for ch in text):
        return None
    return Utterance(text, prob, topic, int(payload["seq"]))
