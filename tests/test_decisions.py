"""Decision logic: a scripted sequence of windows gives exactly the expected sign events."""

from __future__ import annotations

import numpy as np
import pytest

from edge.contract.protocol import TopKEntry
from edge.recognition.decisions import Decision, IdleTracker, SignDecider, softmax, top_k

LABELS = ["a", "b", "c", "---"]


def best(probs: list[float]) -> TopKEntry:
    return top_k(np.array(probs), LABELS, 1)[0]


def test_softmax_and_top_k() -> None:
    probs = softmax(np.array([1000.0, 1000.0, 0.0, -5.0]))
    assert np.isclose(probs.sum(), 1.0) and np.isfinite(probs).all()
    ranked = top_k(probs, LABELS, 3)
    assert [r.label for r in ranked] == ["a", "b", "c"]  # tie broken by index
    assert ranked[0].prob == pytest.approx(0.5)
    assert len(top_k(probs, LABELS, 99)) == 4


def run(decider: SignDecider, windows: list[tuple[list[float], bool]]) -> list[tuple[int, Decision]]:
    events = []
    for i, (probs, hands) in enumerate(windows):
        if not hands:  # what the daemon does with a window without hands
            decider.reset()
            continue
        decision = decider.update(best(probs), window_start=float(i), window_end=i + 0.5)
        if decision is not None:
            events.append((i, decision))
    return events


A = [0.9, 0.05, 0.03, 0.02]
A_LOW = [0.5, 0.3, 0.1, 0.1]
B = [0.05, 0.8, 0.1, 0.05]
NOSIGN = [0.01, 0.01, 0.01, 0.97]


def test_event_after_consecutive_windows_once_per_occurrence() -> None:
    decider = SignDecider(threshold=0.6, consecutive=2)
    windows = [(A, True), (A, True), (A, True), (A, True), (B, True), (B, True), (B, True)]
    events = run(decider, windows)
    assert [(i, d.label, d.windows) for i, d in events] == [(1, "a", 2), (5, "b", 2)]
    first = events[0][1]
    assert (first.window_start, first.window_end) == (0.0, 1.5)  # first agreeing window .. completing one
    assert first.index == 0 and first.prob == pytest.approx(0.9)


def test_drop_below_threshold_allows_a_new_event_for_the_same_sign() -> None:
    decider = SignDecider(threshold=0.6, consecutive=2)
    windows = [(A, True), (A, True), (A_LOW, True), (A, True), (A, True), (A, True)]
    assert [i for i, _ in run(decider, windows)] == [1, 4]


def test_interruption_resets_streak() -> None:
    decider = SignDecider(threshold=0.6, consecutive=3)
    windows = [(A, True), (A, True), (B, True), (A, True), (A, True), (A, True)]
    assert [(i, d.label) for i, d in run(decider, windows)] == [(5, "a")]


def test_no_sign_class_and_windows_without_hands_never_emit() -> None:
    decider = SignDecider(threshold=0.6, consecutive=2)
    windows = [(NOSIGN, True)] * 4 + [(A, False)] * 4 + [(A, True), (A, False), (A, True), (A, True)]
    events = run(decider, windows)
    assert [i for i, _ in events] == [11]  # the hand-less window 9 reset the streak started at 8


def test_consecutive_one_emits_on_first_window() -> None:
    decider = SignDecider(threshold=0.6, consecutive=1)
    assert [i for i, _ in run(decider, [(B, True), (B, True), (A, True)])] == [0, 2]


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        SignDecider(threshold=0.0, consecutive=2)
    with pytest.raises(ValueError):
        SignDecider(threshold=0.5, consecutive=0)


def test_idle_tracker() -> None:
    idle = IdleTracker(3.0)
    assert idle.update(False, 100.0) is False  # start counts as "just seen"
    assert idle.update(False, 102.9) is False
    assert idle.update(False, 103.0) is True
    assert idle.update(False, 200.0) is True
    assert idle.update(True, 200.1) is False  # a hand wakes it at once
    assert idle.update(False, 202.0) is False
    assert idle.update(False, 203.2) is True
    assert idle.update(False, 1.0) is False  # a looped file's clock restarted
