"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.util.sdnotify import SystemdNotifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, str(path)


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_messages_reach_the_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready() is True
    assert received(sock) == "READY=1"
    assert notifier.watchdog() is True
    assert received(sock) == "WATCHDOG=1"
    assert notifier.status("running: 30 fps\nbuffer 128") is True
    assert received(sock) == "STATUS=running: 30 fps buffer 128"
    assert notifier.status("камера потеряна") is True
    assert received(sock) == "STATUS=камера потеряна"
    assert notifier.stopping() is True
    assert received(sock) == "STOPPING=1"
    assert notifier.notify("READY=1", "STATUS=ok") is True
    assert received(sock) == "READY=1\nSTATUS=ok"


def test_reads_os_environ_by_default(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert SystemdNotifier().ready()
    assert received(sock) == "READY=1"


def test_abstract_namespace_socket() -> None:
    name = f"slovo-edge-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert received(sock) == "WATCHDOG=1"


@pytest.mark.parametrize("value", [None, "", "vsock:2:1234", "relative/path"])
def test_disabled_is_a_silent_no_op(value: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier({} if value is None else {"NOTIFY_SOCKET": value})
    assert not notifier.enabled
    for call in (notifier.ready, notifier.watchdog, notifier.stopping, lambda: notifier.status("x")):
        assert call() is False


def test_unreachable_socket_never_raises(tmp_path: Path) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("x" * 1_000_000) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "10000000"}, 10.0),
        ({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": str(os.getpid())}, 2.5),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "ten"}, None),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert SystemdNotifier(env).watchdog_interval() == expected


def test_a_receiver_that_never_reads_does_not_block(tmp_path, monkeypatch) -> None:
    """systemd's queue is small; a stalled reader must cost dropped pings, never a frozen daemon."""
    import socket

    from edge.util.sdnotify import SystemdNotifier

    path = tmp_path / "stalled.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
        results = [notifier.watchdog() for _ in range(500)]
    assert results[0] is True
    assert results.count(False) > 0, "the full queue was noticed as failed sends, not a hang"
