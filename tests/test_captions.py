"""Captions from segments: which episodes become cues, SRT/WebVTT that strict parsers take; atomic writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt

from edge.captions.cues import DEFAULT_MIN_CONFIDENCE, clean_text, cues_from_segments
from edge.captions.formats import srt_text, vtt_text
from edge.clips.file_segments import FileSegments
from edge.commands import predict_segments
from edge.util.files import atomic_write_bytes, replaced_on_success


def segment(start: float, end: float, *ranked: tuple[str, float]) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "top_k": [{"label": label, "index": i, "prob": prob} for i, (label, prob) in enumerate(ranked)],
        "frames": 10,
        "hand_frames": 9,
        "cut": False,
    }


SEGMENTS = [
    segment(0.0, 3.1333, ("привет", 0.81), ("спасибо", 0.1), ("да", 0.05)),
    segment(4.0, 4.9, ("нет", 0.2), ("да", 0.1)),  # below the default threshold
    segment(5.0, 6.5, ("---", 0.9), ("да", 0.05)),  # the no-sign class: never a caption
    segment(7.0333, 9.5001, ("<b>&-->", 0.6), ("мама\nпапа", 0.3), ("\x1b[2J", 0.1)),
]


def test_cues_follow_threshold_and_skip_no_sign() -> None:
    cues = cues_from_segments(SEGMENTS)
    assert [c.text for c in cues] == ["привет", "<b>&-->"]
    assert DEFAULT_MIN_CONFIDENCE == 0.5
    assert [c.text for c in cues_from_segments(SEGMENTS, min_confidence=0.0)] == ["привет", "нет", "<b>&-->"]
    assert cues_from_segments(SEGMENTS, min_confidence=0.9) == []
    # times inside the episode, whole milliseconds
    assert (cues[0].start_ms, cues[0].end_ms) == (0, 3133)
    assert (cues[1].start_ms, cues[1].end_ms) == (7034, 9500)
    assert cues[1].top == (("<b>&-->", 0.6), ("мама папа", 0.3), ("[2J", 0.1))


def test_clean_text_is_one_printable_line() -> None:
    assert clean_text("a\nb\r\x00c\u202e") == "a b c"
    assert len(clean_text("ж" * 500)) == 80


@pytest.mark.parametrize("top3", [False, True])
def test_srt_and_vtt_parse_strictly_with_both_libraries(tmp_path: Path, top3: bool) -> None:
    cues = cues_from_segments(SEGMENTS, min_confidence=0.0)
    srt_file, vtt_file = tmp_path / "c.srt", tmp_path / "c.vtt"
    srt_file.write_text(srt_text(cues, top3=top3), encoding="utf-8")
    vtt_file.write_text(vtt_text(cues, top3=top3), encoding="utf-8")

    parsed = list(srt.parse(srt_file.read_text(encoding="utf-8"), ignore_errors=False))
    assert [s.index for s in parsed] == [1, 2, 3]
    assert [s.content.splitlines()[0] for s in parsed] == ["привет", "нет", "‹b›&--›"]
    assert [round(s.start.total_seconds() * 1000) for s in parsed] == [c.start_ms for c in cues]
    assert [round(s.end.total_seconds() * 1000) for s in parsed] == [c.end_ms for c in cues]
    assert all(len(s.content.splitlines()) == (2 if top3 else 1) for s in parsed)
    if top3:
        assert parsed[0].content.splitlines()[1] == "(привет 0.81 · спасибо 0.10 · да 0.05)"
    assert [c.text for c in webvtt.from_srt(str(srt_file))][1].startswith("нет")

    captions = list(webvtt.read(str(vtt_file)))
    assert [c.identifier for c in captions] == ["1", "2", "3"]
    assert [c.raw_text for c in captions] == ["привет", "нет", "&lt;b&gt;&amp;--&gt;"]
    assert [(c.start, c.end) for c in captions][2] == ("00:00:07.034", "00:00:09.500")
    text = vtt_file.read_text(encoding="utf-8")
    assert text.startswith("WEBVTT") and text.count("NOTE") == (3 if top3 else 0)
    assert text.count("-->") == 3  # only the timings: a label's "-->" is escaped


def test_empty_cue_list_is_a_valid_document() -> None:
    assert list(srt.parse(srt_text([]), ignore_errors=False)) == []
    assert list(webvtt.from_string(vtt_text([]))) == []


def test_atomic_write_leaves_old_file_on_interrupt(tmp_path: Path) -> None:
    out = tmp_path / "out.srt"
    out.write_text("old")
    with pytest.raises(KeyboardInterrupt), replaced_on_success(out) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert out.read_text() == "old" and os.listdir(tmp_path) == ["out.srt"]
    atomic_write_bytes(out, "новый".encode())
    assert out.read_text(encoding="utf-8") == "новый" and os.listdir(tmp_path) == ["out.srt"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_table_has_one_line_per_episode_and_escapes_labels(capsys: pytest.CaptureFixture[str]) -> None:
    found = FileSegments(segments=SEGMENTS, short=1)
    predict_segments._print_table(found, "lecture.mp4")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "lecture.mp4: 4 episode(s)"
    assert lines[1].split()[:2] == ["1", "0:00:00.00–0:00:03.13"]
    assert "\x1b" not in "\n".join(lines) and "\\x1b[2J" in lines[4]
    assert "<b>&-->" in lines[4]  # shown as text, not taken for rich markup
    assert len(lines) == 6 and "flicker" in lines[5]
