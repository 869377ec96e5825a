"""Which classified episodes become caption cues, with what text and times.

A cue is one episode whose top-1 probability reaches ``min_confidence`` and whose top-1 is a
sign (the model's no-sign class ``---`` is never captioned). Its text is the top-1 gloss; the
runners-up (top-3 by default) travel along for formats that can carry a comment. Cue times lie
inside the episode: the start is rounded up and the end down to whole milliseconds (what both
formats can express), so a cue never claims signing that did not happen.

Labels come from the model file's metadata, so they are untrusted text: control and format
characters (a newline would end an SRT cue, an escape sequence could reach a terminal) become
spaces, and overlong labels are shortened.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edge.contract.model_contract import NO_SIGN_LABEL

#: Default ``--min-confidence``: below it the model is guessing more often than not.
DEFAULT_MIN_CONFIDENCE = 0.5
#: Runners-up shown with ``--captions-top3`` (the gloss itself included).
TOP_SHOWN = 3
#: Longest gloss put on screen (a label is normally one or two words).
MAX_TEXT_CHARS = 80


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``[start_ms, end_ms]`` and the gloss, with its ranked alternatives."""

    start_ms: int
    end_ms: int
    text: str
    prob: float
    #: ``(gloss, probability)`` of the best classes, most probable first (``text`` is the first).
    top: tuple[tuple[str, float], ...]


def clean_text(label: object) -> str:
    """One line of plain text from an untrusted label ('' if nothing printable is left)."""
    chars = [" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in str(label)]
    text = " ".join("".join(chars).split())
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"


def cues_from_segments(
    segments: Iterable[Mapping[str, Any]], *, min_confidence: float = DEFAULT_MIN_CONFIDENCE
) -> list[Cue]:
    """Cues for ``segments`` (``segment`` messages, in time order) above ``min_confidence``."""
    cues = []
    for segment in segments:
        ranked = segment["top_k"]
        best = ranked[0]
        text = clean_text(best["label"])
        if float(best["prob"]) < min_confidence or best["label"] == NO_SIGN_LABEL or not text:
            continue
        start_ms = math.ceil(float(segment["start"]) * 1000.0 - 1e-6)
        end_ms = max(math.floor(float(segment["end"]) * 1000.0 + 1e-6), start_ms + 1)
        top = tuple((clean_text(e["label"]), float(e["prob"])) for e in ranked[:TOP_SHOWN])
        cues.append(Cue(start_ms, end_ms, text, float(best["prob"]), top))
    return cues
