"""Publisher/Subscriber over real loopback TCP: envelope, seq, drop-not-block, CURVE."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth

from edge.contract.protocol import SCHEMA_VERSION, ProtocolError, SignEvent
from edge.transport.keys import KeyFileError
from edge.transport.publisher import Publisher, is_loopback
from edge.transport.subscriber import Subscriber
from tests.helpers_schema import validate

ANY_PORT = "tcp://127.0.0.1:0"
# Generous bound on waiting for a TCP connection on loopback; the tests never assert on time.
CONNECT_ATTEMPTS = 500


def sign(label: str = "привет") -> SignEvent:
    return SignEvent(
        label=label, index=7, prob=0.9, windows=3, window_start=1.0, window_end=5.0, latency_ms=40.0
    )


def wait_connected(pub: Publisher, sub: Subscriber, topic: str = "sign") -> dict:
    """Publish until the subscriber sees a message (ZeroMQ's slow-joiner), return that message."""
    for _ in range(CONNECT_ATTEMPTS):
        pub.publish(topic, {"probe": True})
        message = sub.recv(timeout_s=0.02)
        if message is not None:
            return message[1]
    pytest.fail("subscriber never connected")


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    with Publisher(ANY_PORT, clock=lambda: 1234.5) as pub:
        yield pub


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("tcp://127.0.0.1:5556", True),
        ("tcp://127.3.4.5:5556", True),
        ("tcp://localhost:5556", True),
        ("tcp://[::1]:5556", True),
        ("ipc:///run/slovo-edge/pub.sock", True),
        ("inproc://events", True),
        ("tcp://0.0.0.0:5556", False),
        ("tcp://*:5556", False),
        ("tcp://192.168.1.10:5556", False),
        ("tcp://[::]:5556", False),
        ("tcp://eth0:5556", False),
        ("udp://127.0.0.1:5556", False),
        ("garbage", False),
    ],
)
def test_is_loopback(endpoint: str, expected: bool) -> None:
    assert is_loopback(endpoint) is expected


def test_binds_loopback_by_default_port_choice(publisher: Publisher) -> None:
    assert publisher.endpoint.startswith("tcp://127.0.0.1:")
    assert not publisher.endpoint.endswith(":0")


def test_envelope_is_added_and_messages_validate(publisher: Publisher) -> None:
    with Subscriber(publisher.endpoint, ["sign"]) as sub:
        first = wait_connected(publisher, sub)
        assert publisher.send(sign()) is True
        topic, payload = sub.recv(timeout_s=5) or pytest.fail("no message")
    assert first["v"] == SCHEMA_VERSION and first["topic"] == "sign"
    assert topic == "sign"
    assert payload["label"] == "привет"
    assert payload["ts"] == 1234.5
    assert payload["seq"] == first["seq"] + 1
    validate("sign", payload)


def test_seq_has_no_gaps_per_topic_for_a_subscriber_that_keeps_up(publisher: Publisher) -> None:
    with Subscriber(publisher.endpoint, ["sign"]) as sign_sub, Subscriber(publisher.endpoint) as all_sub:
        wait_connected(publisher, sign_sub)
        wait_connected(publisher, all_sub)
        while sign_sub.recv(timeout_s=0.05) is not None:
            pass
        while all_sub.recv(timeout_s=0.05) is not None:
            pass
        seen: dict[str, list[int]] = {"sign": [], "status": []}
        signs_only: list[int] = []
        for i in range(300):
            topic = "sign" if i % 3 else "status"
            assert publisher.publish(topic, {"i": i})
            got = all_sub.recv(timeout_s=5) or pytest.fail("message lost")
            seen[got[0]].append(got[1]["seq"])
            if topic == "sign":
                signs_only.append((sign_sub.recv(timeout_s=5) or pytest.fail("sign lost"))[1]["seq"])
    for seqs in [*seen.values(), signs_only]:
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert signs_only == seen["sign"]
    assert len(seen["status"]) == 100


def test_non_reading_subscriber_never_blocks_publish(publisher: Publisher) -> None:
    total = 20_000
    with Subscriber(publisher.endpoint, ["sign"], rcvhwm=10) as sub:
        wait_connected(publisher, sub)
        before = publisher.sent["sign"]
        results = [publisher.publish("sign", {"i": i, "pad": "x" * 2000}) for i in range(total)]
        # Reaching here at all is the point: 20k sends (40 MB) against a subscriber that never
        # reads all returned. PUB drops per subscriber at its high-water mark without telling the
        # sender, so every send counts as accepted...
        assert results.count(True) == publisher.sent["sign"] - before == total
        assert publisher.dropped == {}
        # ...and the subscriber got only what the bounded queues held; once it reads again the
        # next message shows the drop as a seq gap.
        seqs = []
        while (message := sub.recv(timeout_s=0.2)) is not None:
            seqs.append(message[1]["seq"])
        assert publisher.publish("sign", {"final": True})
        final = sub.recv(timeout_s=5) or pytest.fail("subscriber did not recover")
        assert final[1].get("final") is True
        seqs.append(final[1]["seq"])
    assert seqs == sorted(seqs)
    missing = seqs[-1] - seqs[0] + 1 - len(seqs)
    assert len(seqs) < total / 2
    assert missing > total / 2


def test_publish_with_no_subscriber_and_after_close() -> None:
    pub = Publisher(ANY_PORT)
    assert pub.publish("status", {"a": 1}) is True
    pub.close()
    pub.close()
    assert pub.publish("status", {"a": 2}) is False
    assert pub.dropped == {"status": 1}


def test_publish_rejects_unknown_topic_and_nan(publisher: Publisher) -> None:
    with pytest.raises(ProtocolError):
        publisher.publish("predictions", {})
    with pytest.raises(ProtocolError):
        publisher.publish("sign", {"prob": float("nan")})


def test_concurrent_publishers_share_one_socket_safely() -> None:
    threads, per_thread = 4, 500
    # Queues big enough for the burst, so every message must arrive exactly once.
    with (
        Publisher(ANY_PORT, sndhwm=100_000) as publisher,
        Subscriber(publisher.endpoint, ["status"], rcvhwm=100_000) as sub,
    ):
        wait_connected(publisher, sub, "status")
        start = publisher.sent["status"]
        workers = [
            threading.Thread(target=lambda: [publisher.publish("status", {}) for _ in range(per_thread)])
            for _ in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seqs = []
        while (message := sub.recv(timeout_s=0.3)) is not None:
            seqs.append(message[1]["seq"])
    assert publisher.sent["status"] - start == threads * per_thread
    tail = [seq for seq in seqs if seq >= start]
    assert tail == list(range(start, start + threads * per_thread))


def test_bind_conflict_raises(publisher: Publisher) -> None:
    with pytest.raises(zmq.ZMQError):
        Publisher(publisher.endpoint)


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    keys = tmp_path / "keys"
    authorized = tmp_path / "authorized"
    keys.mkdir()
    authorized.mkdir()
    paths: dict[str, Path] = {}
    for name in ("server", "client", "intruder"):
        public, secret = zmq.auth.create_certificates(keys, name)
        paths[name] = Path(public)
        paths[f"{name}_secret"] = Path(secret)
        Path(secret).chmod(0o600)  # as the docs ask; the publisher refuses a world-readable one
    (authorized / "client.key").write_bytes(paths["client"].read_bytes())
    paths["authorized"] = authorized
    return paths


def test_curve_authorized_client_receives_and_others_do_not(certs: dict[str, Path]) -> None:
    with Publisher(
        ANY_PORT, curve_secret_key=certs["server_secret"], curve_authorized_dir=certs["authorized"]
    ) as pub:
        good = Subscriber(
            pub.endpoint, curve_server_key=certs["server"], curve_client_key=certs["client_secret"]
        )
        intruder = Subscriber(
            pub.endpoint, curve_server_key=certs["server"], curve_client_key=certs["intruder_secret"]
        )
        plain = Subscriber(pub.endpoint)
        with good, intruder, plain:
            assert wait_connected(pub, good)["topic"] == "sign"
            for _ in range(20):
                pub.send(sign())
            assert good.recv(timeout_s=5) is not None
            # The intruder and the plaintext client had the whole connection time plus these 20
            # messages; a rejected handshake means they never get a single frame.
            assert intruder.recv(timeout_s=0.5) is None
            assert plain.recv(timeout_s=0.1) is None


def test_curve_without_authorized_dir_accepts_any_client_key(certs: dict[str, Path]) -> None:
    with (
        Publisher(ANY_PORT, curve_secret_key=certs["server_secret"]) as pub,
        Subscriber(
            pub.endpoint, curve_server_key=certs["server"], curve_client_key=certs["intruder_secret"]
        ) as sub,
    ):
        assert wait_connected(pub, sub)["v"] == SCHEMA_VERSION


def test_two_curve_publishers_can_coexist(certs: dict[str, Path]) -> None:
    with (
        Publisher(ANY_PORT, curve_secret_key=certs["server_secret"]) as first,
        Publisher(
            ANY_PORT, curve_secret_key=certs["server_secret"], curve_authorized_dir=certs["authorized"]
        ),
    ):
        assert first.publish("sign", {}) is True


def test_key_file_errors_are_one_clear_line(certs: dict[str, Path], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.key_secret"
    garbage.write_text("this is not a certificate\n")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    cases = [
        ({"curve_secret_key": tmp_path / "missing.key_secret"}, "not found"),
        ({"curve_secret_key": certs["server"]}, "no secret-key"),
        ({"curve_secret_key": garbage}, "garbage.key_secret"),
        (
            {"curve_secret_key": certs["server_secret"], "curve_authorized_dir": tmp_path / "nope"},
            "not found",
        ),
        ({"curve_secret_key": certs["server_secret"], "curve_authorized_dir": empty_dir}, "no *.key"),
        ({"curve_authorized_dir": certs["authorized"]}, "needs curve_secret_key"),
    ]
    for kwargs, fragment in cases:
        with pytest.raises(KeyFileError) as info:
            Publisher(ANY_PORT, **kwargs)
        assert fragment in str(info.value)
        assert "\n" not in str(info.value)
    with pytest.raises(KeyFileError, match="both"):
        Subscriber("tcp://127.0.0.1:1", curve_server_key=certs["server"])
    with pytest.raises(KeyFileError, match="no secret-key"):
        Subscriber("tcp://127.0.0.1:1", curve_server_key=certs["server"], curve_client_key=certs["client"])


def test_seq_is_not_consumed_by_a_message_that_fails_to_encode(publisher: Publisher) -> None:
    with Subscriber(publisher.endpoint, ["status"]) as sub:
        wait_connected(publisher, sub, topic="status")
        publisher.publish("status", {"n": 1})
        with pytest.raises(ProtocolError):
            publisher.publish("status", {"bad": float("nan")})
        publisher.publish("status", {"n": 2})
        seqs = []
        while (message := sub.recv(timeout_s=2)) is not None and len(seqs) < 2:
            if "n" in message[1]:
                seqs.append(message[1]["seq"])
    assert len(seqs) == 2 and seqs[1] == seqs[0] + 1  # no gap where the bad message was


def test_ipv6_loopback_endpoint_binds_and_delivers() -> None:
    with Publisher("tcp://[::1]:0") as pub, Subscriber(pub.endpoint, ["sign"]) as sub:
        assert pub.endpoint.startswith("tcp://[::1]:")
        assert wait_connected(pub, sub)["topic"] == "sign"


def test_ipc_endpoint_of_a_live_publisher_is_refused_and_a_stale_one_reused(tmp_path: Path) -> None:
    import socket

    endpoint = f"ipc://{tmp_path / 'pub.sock'}"
    with Publisher(endpoint) as first, Subscriber(endpoint, ["sign"]) as sub:
        with pytest.raises(zmq.ZMQError, match="in use"):
            Publisher(endpoint)
        assert wait_connected(first, sub)["topic"] == "sign"  # the first one was not taken over
    # A socket file left by a dead process (nobody listens): reused.
    stale = tmp_path / "stale.sock"
    orphan = socket.socket(socket.AF_UNIX)
    orphan.bind(str(stale))
    orphan.close()
    assert stale.exists()
    with Publisher(f"ipc://{stale}") as pub, Subscriber(f"ipc://{stale}", ["sign"]) as sub:
        assert wait_connected(pub, sub)["topic"] == "sign"
    # A path that is not a socket is never replaced.
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(zmq.ZMQError, match="not a socket"):
        Publisher(f"ipc://{precious}")
    assert precious.read_text() == "keep me"


def curve_args(certs: dict[str, Path]) -> dict[str, Path]:
    return {"curve_secret_key": certs["server_secret"], "curve_authorized_dir": certs["authorized"]}


def test_bad_authorized_client_key_is_named_not_silently_locking_everyone_out(
    certs: dict[str, Path],
) -> None:
    broken = certs["authorized"] / "broken.key"
    for content in ("garbage without keys\n", 'curve\n    public-key = "tooshort"\n'):
        broken.write_text(content)
        with pytest.raises(KeyFileError, match=r"broken\.key") as info:
            Publisher(ANY_PORT, **curve_args(certs))
        assert "\n" not in str(info.value)
    broken.unlink()


def test_world_readable_server_secret_key_is_refused(certs: dict[str, Path]) -> None:
    certs["server_secret"].chmod(0o644)
    try:
        with pytest.raises(KeyFileError, match="readable by other users"):
            Publisher(ANY_PORT, **curve_args(certs))
        certs["server_secret"].chmod(0o640)  # a group the daemon is in may read it
        with Publisher(ANY_PORT, **curve_args(certs)) as pub:
            assert pub.encrypted is True
    finally:
        certs["server_secret"].chmod(0o600)
    with Publisher(ANY_PORT) as plain:
        assert plain.encrypted is False
