"""What systemd hears from the daemon (:class:`edge.daemon.systemd.SystemdLink`), with a fake clock."""

from __future__ import annotations

import pytest

from edge.daemon import systemd
from edge.daemon.systemd import SystemdLink


class FakeNotifier:
    def __init__(self, watchdog_s: float | None) -> None:
        self._watchdog_s = watchdog_s
        self.sent: list[str] = []

    def watchdog_interval(self) -> float | None:
        return self._watchdog_s

    def ready(self) -> bool:
        self.sent.append("READY=1")
        return True

    def watchdog(self) -> bool:
        self.sent.append("WATCHDOG=1")
        return True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(systemd.time, "monotonic", lambda: now[0])
    return now


def test_the_watchdog_is_pinged_every_half_interval_only_on_progress_or_while_waiting(
    clock: list[float],
) -> None:
    notifier = FakeNotifier(watchdog_s=10.0)
    link = SystemdLink(notifier)  # type: ignore[arg-type]
    link.alive(progress=1, waiting=False)
    assert notifier.sent == ["WATCHDOG=1"]
    clock[0] += 4.9
    link.alive(progress=2, waiting=False)  # progress, but within half the interval
    assert notifier.sent == ["WATCHDOG=1"]
    clock[0] += 0.2
    link.alive(progress=2, waiting=False)
    assert notifier.sent == ["WATCHDOG=1"] * 2
    clock[0] += 6.0
    link.alive(progress=2, waiting=False)  # a hung pipeline: no progress, no ping
    assert notifier.sent == ["WATCHDOG=1"] * 2
    link.alive(progress=2, waiting=True)  # the capture is connecting, lost or at the end of a file
    assert notifier.sent == ["WATCHDOG=1"] * 3


def test_no_watchdog_configured_sends_no_ping_and_ready_is_sent_once(clock: list[float]) -> None:
    notifier = FakeNotifier(watchdog_s=None)
    link = SystemdLink(notifier)  # type: ignore[arg-type]
    link.alive(progress=5, waiting=True)
    link.ready("tcp://127.0.0.1:5556")
    link.ready("tcp://127.0.0.1:5556")
    assert notifier.sent == ["READY=1"] and link.ready_sent
