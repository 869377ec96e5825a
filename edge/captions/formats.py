"""SubRip (``srt``) and WebVTT (``webvtt-py``) text for a list of cues: libraries, no hand-written format.

The two formats differ only in what they can carry besides the gloss: WebVTT has comments, so
with ``top3`` each cue is preceded by a ``NOTE`` block with the runners-up and their
probabilities; SubRip has none, so there they become a second, smaller line of the cue itself.
WebVTT cue text is markup: ``&``, ``<`` and ``>`` are escaped so a label can never become a tag
(or a ``-->`` that ends the cue's text early).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import timedelta

from edge.captions.cues import Cue


def _alternatives(cue: Cue) -> str:
    return " · ".join(f"{text} {prob:.2f}" for text, prob in cue.top)


def srt_text(cues: Sequence[Cue], *, top3: bool = False) -> str:
    """The cues as an SRT document (numbered from 1)."""
    import srt

    subtitles = [
        srt.Subtitle(
            index=i,
            start=timedelta(milliseconds=cue.start_ms),
            end=timedelta(milliseconds=cue.end_ms),
            content=cue.text + (f"\n({_alternatives(cue)})" if top3 else ""),
        )
        for i, cue in enumerate(cues, 1)
    ]
    return str(srt.compose(subtitles, reindex=False))


def _vtt_time(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def vtt_text(cues: Sequence[Cue], *, top3: bool = False) -> str:
    """The cues as a WebVTT document (identifiers ``1``, ``2``, … like the SRT numbers)."""
    from webvtt import Caption, WebVTT

    captions = []
    for i, cue in enumerate(cues, 1):
        caption = Caption(
            start=_vtt_time(cue.start_ms),
            end=_vtt_time(cue.end_ms),
            text=html.escape(cue.text, quote=False),
            identifier=str(i),
        )
        if top3:
            caption.comments = [f"top {len(cue.top)}: {html.escape(_alternatives(cue), quote=False)}"]
        captions.append(caption)
    return str(WebVTT(captions=captions).content)
