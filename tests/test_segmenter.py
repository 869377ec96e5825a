"""Segmenter: episodes from hand presence, bounded memory, short ones dropped, long ones cut."""

from __future__ import annotations

import numpy as np
import pytest

from edge.contract.layout import RIGHT_HAND, empty_frame
from edge.recognition.segmenter import Episode, Segmenter, capacity_for


def frame(i: int, hands: bool) -> np.ndarray:
    kp = empty_frame()
    kp[:468] = 0.5
    if hands:
        kp[RIGHT_HAND] = i / 1000
    return kp


def feed(seg: Segmenter, pattern: str, fps: float = 30.0) -> list[tuple[int, Episode]]:
    """Push one frame per character ('1' hand, '0' none); returns (frame index, episode) as they end."""
    out = []
    for i, c in enumerate(pattern):
        ep = seg.push(frame(i, c == "1"), i / fps, c == "1", now=1000.0 + i)
        if ep is not None:
            out.append((i, ep))
    return out


def span(ep: Episode, fps: float = 30.0) -> tuple[int, int]:
    return round(ep.ts[0] * fps), round(ep.ts[-1] * fps)


def test_episode_runs_from_first_to_last_hand_frame_and_ends_after_the_gap() -> None:
    seg = Segmenter(gap_s=0.2, max_segment_s=10.0, min_frames=3, capacity=64)
    # hands 3..12 with a 3-frame dropout (shorter than the gap); 0.2 s after frame 12 (the
    # frame 18 rounds to just under it) the gap is complete: the episode ends on frame 19
    ended = feed(seg, "000" + "1111" + "000" + "111" + "0000000" + "0")
    assert [(i, span(ep)) for i, ep in ended] == [(19, (3, 12))]
    ep = ended[0][1]
    assert len(ep.raw) == 10 and ep.hands.sum() == 7 and not ep.cut
    assert ep.ended_at == 1019.0  # when the frame completing the gap arrived
    assert np.array_equal(ep.raw[0], frame(3, True), equal_nan=True)
    assert not seg.open and seg.short == 0


def test_short_episodes_are_dropped_and_counted() -> None:
    seg = Segmenter(gap_s=0.1, max_segment_s=10.0, min_frames=4, capacity=64)
    ended = feed(seg, "0110000" + "1111" + "0000")
    assert [span(ep) for _, ep in ended] == [(7, 10)]
    assert seg.short == 1


def test_long_episode_is_cut_and_the_next_one_follows() -> None:
    seg = Segmenter(gap_s=0.2, max_segment_s=1.0, min_frames=1, capacity=capacity_for(1.0, 30.0))
    ended = feed(seg, "1" * 75 + "0" * 10)
    spans = [(span(ep), ep.cut) for _, ep in ended]
    assert spans == [((0, 29), True), ((30, 59), True), ((60, 74), False)]


def test_capacity_bounds_memory_and_cuts_a_fast_stream() -> None:
    seg = Segmenter(gap_s=0.2, max_segment_s=10.0, min_frames=1, capacity=8)
    ended = feed(seg, "1" * 20, fps=1000.0)  # 20 ms of frames: far below max_segment_s
    assert [len(ep.raw) for _, ep in ended] == [8, 8]
    assert all(ep.cut for _, ep in ended)
    assert seg.nbytes >= 8 * 543 * 3 * 4
    assert capacity_for(10.0, 30.0) == 601


def test_flush_classifies_an_open_episode() -> None:
    seg = Segmenter(gap_s=0.5, max_segment_s=10.0, min_frames=2, capacity=64)
    assert feed(seg, "00111110") == []
    assert seg.open
    ep = seg.flush(now=5.0)
    assert ep is not None and span(ep) == (2, 6) and ep.ended_at == 5.0 and not ep.cut
    assert seg.flush(now=6.0) is None


def test_episode_copies_do_not_alias_the_preallocated_storage() -> None:
    seg = Segmenter(gap_s=0.05, max_segment_s=10.0, min_frames=1, capacity=16)
    (_, first), (_, second) = feed(seg, "1110001100")
    assert span(first) == (0, 2) and span(second) == (6, 7)
    assert first.raw[0, RIGHT_HAND.start, 0] == 0.0 and second.raw[0, RIGHT_HAND.start, 0] == pytest.approx(
        0.006
    )
