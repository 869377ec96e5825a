"""SubRip and WebVTT text for a list of cues, written with ``webvtt-py`` (no hand-written format).

One library writes both (``webvtt-py`` has binary-free wheels for the device; the ``srt`` package
has none, so it only checks the output, in the tests, next to ``webvtt-py``'s own parser). The two
formats differ in what they can carry besides the gloss: WebVTT has comments, so with ``top3``
each cue is preceded by a ``NOTE`` block with the runners-up and their probabilities; SubRip has
none, so there they become a second line of the cue itself.

Cue text in both formats is markup (WebVTT tags, SubRip's ``<i>``/``<font>``), and labels are
untrusted: WebVTT gets ``&``, ``<`` and ``>`` as character references (so no label becomes a tag
or a ``-->``); SubRip has no character references, so ``<`` and ``>`` become ``‹`` and ``›``.
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.captions.cues import Cue, cues_from_segments

SRT_ANGLES = str.maketrans({"<": "‹", ">": "›"})


def _alternatives(cue: Cue) -> str:
    return " · ".join(f"{text} {prob:.2f}" for text, prob in cue.top)


def _time(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _document(cues: Sequence[Cue], lines: Any, comments: Any) -> Any:
    from webvtt import Caption, WebVTT

    captions = []
    for i, cue in enumerate(cues, 1):
        caption = Caption(
            start=_time(cue.start_ms), end=_time(cue.end_ms), text=lines(cue), identifier=str(i)
        )
        caption.comments = comments(cue)
        captions.append(caption)
    return WebVTT(captions=captions)


def srt_text(cues: Sequence[Cue], *, top3: bool = False) -> str:
    """The cues as a SubRip document (numbered from 1)."""

    def lines(cue: Cue) -> list[str]:
        shown = [cue.text] + ([f"({_alternatives(cue)})"] if top3 else [])
        return [line.translate(SRT_ANGLES) for line in shown]

    out = io.StringIO()
    _document(cues, lines, lambda cue: []).write(out, format="srt")
    text = out.getvalue()
    return text if not text or text.endswith("\n") else text + "\n"


def vtt_text(cues: Sequence[Cue], *, top3: bool = False) -> str:
    """The cues as a WebVTT document (identifiers ``1``, ``2``, … like the SubRip numbers)."""

    def comments(cue: Cue) -> list[str]:
        return [f"top {len(cue.top)}: {html.escape(_alternatives(cue), quote=False)}"] if top3 else []

    document = _document(cues, lambda cue: [html.escape(cue.text, quote=False)], comments)
    return str(document.content)


@dataclass(frozen=True)
class Subtitles:
    """One file's captions: the cues and both subtitle texts (what ``--srt``/``--vtt`` and the page get)."""

    cues: list[Cue]
    srt: str
    vtt: str


def subtitles(
    segments: Iterable[Mapping[str, Any]], *, min_confidence: float, top3: bool = False
) -> Subtitles:
    """The captions of ``segment`` messages: cues from ``min_confidence`` on, as SRT and WebVTT."""
    cues = cues_from_segments(segments, min_confidence=min_confidence)
    return Subtitles(cues, srt_text(cues, top3=top3), vtt_text(cues, top3=top3))
