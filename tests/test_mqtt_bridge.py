"""``slr-mqtt`` against a real mosquitto: retained availability and status, signs equal to the
ZeroMQ messages, the last will after SIGKILL, a broker restart within the queue bound, refused
credentials, and the daemon's config file accepting ``[mqtt]``.

Needs Debian's ``mosquitto`` and ``mosquitto-clients`` (scripts/test.sh installs them).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_mqtt import PASSWORD, USER, Broker, Recorder, start_bridge
from helpers_web import free_port, stop

from edge.contract.protocol import ModelInfo, SignEvent, Status
from edge.daemon.config import read_toml
from edge.transport.publisher import Publisher
from tests.helpers_schema import validate

DEVICE = "testdev"


def status() -> Status:
    return Status(
        camera="ok", source="/dev/video0", encrypted=False, capture_fps=30.0, extraction_fps=29.5,
        dropped_frames=0, inference_p50_ms=7.0, buffer_fill=128, idle=False,
        model=ModelInfo("m", "0" * 64), uptime_s=3.0, version="0.1.0", state="running",
        latency_p50_ms=40.0, latency_p95_ms=60.0,
    )  # fmt: skip


def sign(i: int) -> SignEvent:
    return SignEvent(label=f"привет-{i}", index=i, prob=0.9, windows=2, window_start=i, window_end=i + 1.0,
                     latency_ms=35.0)  # fmt: skip


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    with Publisher(f"tcp://127.0.0.1:{free_port()}") as pub:
        yield pub


def bridge_args(broker: Broker, publisher: Publisher, tmp_path: Path, *extra: str) -> list[str]:
    password = tmp_path / "mqtt.password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(
        f'model = "/nonexistent.onnx"\nendpoint = "{publisher.endpoint}"\n\n[mqtt]\n'
        f'broker = "{broker.url()}"\nusername = "{USER}"\npassword_file = "{password}"\n'
        f'device_id = "{DEVICE}"\nqos = 1\n'
    )
    return ["--config", str(config), "--log-level", "DEBUG", *extra]


def keep_status(publisher: Publisher, stop_at: list[bool]) -> None:
    while not stop_at:
        publisher.publish("status", status())
        time.sleep(0.3)


def test_daemon_config_accepts_the_mqtt_table(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('model = "m.onnx"\n[mqtt]\nbroker = "mqtt://x"\n')
    assert read_toml(config) == {"model": "m.onnx"}


def test_bridge_end_to_end(broker: Broker, publisher: Publisher, tmp_path: Path) -> None:
    log = tmp_path / "bridge.log"
    recorder = Recorder(broker.port)
    proc = start_bridge(bridge_args(broker, publisher, tmp_path, "--queue-size", "5"), log)
    done: list[bool] = []
    feeder = threading.Thread(target=keep_status, args=(publisher, done), daemon=True)
    feeder.start()
    base = f"slovo/{DEVICE}"
    try:
        recorder.wait(lambda: recorder.on(f"{base}/available")[-1:] == [b"online"], what="online")
        late = Recorder(broker.port)  # a new subscriber gets only what is retained, flagged so
        late.wait(lambda: late.on(f"{base}/status") and late.on(f"{base}/bridge"), what="retained status")
        late.close()
        validate("status", json.loads(late.on(f"{base}/status")[-1]))
        # the first message on each topic is the retained one (live ones may follow before close)
        first: dict[str, bool] = {}
        for topic, _, retained in late.messages:
            first.setdefault(topic, retained)
        assert all(first.values()), first
        assert late.on(f"{base}/available") == [b"online"]
        configs = [t for t, _, _ in late.messages if t.startswith("homeassistant/")]
        assert f"homeassistant/event/{DEVICE}/sign/config" in configs
        config = json.loads(recorder.on(f"homeassistant/sensor/{DEVICE}/latency_p50/config")[-1])
        assert (
            config["availability_topic"] == f"{base}/available" and config["state_topic"] == f"{base}/status"
        )

        # signs arrive equal to the ZeroMQ messages (the same JSON object), and an invalid one is dropped
        sent = []
        for i in range(3):
            publisher.publish("sign", sign(i))
        publisher.publish("sign", {"label": "no index"})  # breaks the schema
        recorder.wait(lambda: len(recorder.on(f"{base}/sign")) >= 3, what="3 signs")
        got = [json.loads(p) for p in recorder.on(f"{base}/sign")]
        sent = [s.label for s in map(sign, range(3))]
        assert [g["label"] for g in got] == sent
        for g in got:
            validate("sign", g)
        recorder.wait(lambda: any(json.loads(p)["invalid"] >= 1 for p in recorder.on(f"{base}/bridge")),
                      what="invalid counted")  # fmt: skip

        # broker restart mid-stream: 8 signs while it is down, queue bound 5 -> the newest 5 arrive, 3 dropped
        broker.stop()
        time.sleep(1.0)
        for i in range(10, 18):
            publisher.publish("sign", sign(i))
        time.sleep(1.0)
        broker.start()
        recorder.wait(lambda: len(recorder.on(f"{base}/sign")) >= 8, what="queued signs after restart")
        time.sleep(1.0)
        labels = [json.loads(p)["label"] for p in recorder.on(f"{base}/sign")][3:]
        assert labels == [sign(i).label for i in range(13, 18)]
        recorder.wait(lambda: recorder.on(f"{base}/available")[-1:] == [b"online"], what="re-announced")
        recorder.wait(lambda: any(json.loads(p)["dropped"] == 3 for p in recorder.on(f"{base}/bridge")),
                      what="drops counted")  # fmt: skip

        # the daemon gone: no status for daemon_timeout_s (5 s) -> offline
        done.append(True)
        recorder.wait(
            lambda: recorder.on(f"{base}/available")[-1:] == [b"offline"], 30, "offline on daemon gone"
        )
        done.clear()
        feeder = threading.Thread(target=keep_status, args=(publisher, done), daemon=True)
        feeder.start()
        recorder.wait(lambda: recorder.on(f"{base}/available")[-1:] == [b"online"], what="back online")

        # SIGKILL: the broker publishes the last will
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        recorder.wait(lambda: recorder.on(f"{base}/available")[-1:] == [b"offline"], what="last will")
    finally:
        done.append(True)
        stop(proc)
        recorder.close()
    text = log.read_text(errors="replace")
    assert PASSWORD not in text
    assert PASSWORD not in broker.log.read_text(errors="replace")
    print(text[-3000:])


def test_wrong_password_is_one_line_and_exit_2(broker: Broker, publisher: Publisher, tmp_path: Path) -> None:
    args = bridge_args(broker, publisher, tmp_path)
    (tmp_path / "mqtt.password").write_text("wrong-password\n")
    log = tmp_path / "bridge.log"
    proc = start_bridge(args, log)
    try:
        assert proc.wait(60) == 2
    finally:
        stop(proc)
    errors = [line for line in log.read_text().splitlines() if line.startswith("slr-mqtt: error:")]
    assert len(errors) == 1 and "refused" in errors[0], log.read_text()
    assert broker.log.read_text().count(f"slr-mqtt-{DEVICE}") <= 3  # one attempt, no retry storm
    assert "wrong-password" not in log.read_text()


def test_malformed_mqtt_table_is_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "c.toml"
    config.write_text('[mqtt]\nbroker = "mqtt://u:hunter2@host"\n')
    result = subprocess.run([sys.executable, "-m", "edge.commands.mqtt", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "hunter2" not in result.stderr


def make_ca_and_server(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1 signed by it (openssl CLI), made now."""
    import subprocess

    ca_key, ca, key, csr, cert = (
        tmp_path / f"{name}{s}" for s in ("-ca.key", "-ca.pem", ".key", ".csr", ".pem")
    )
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", f"/CN={name} test CA")  # fmt: skip
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    ext = tmp_path / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


def test_tls_with_a_test_ca(broker: Broker, publisher: Publisher, tmp_path: Path) -> None:
    ca, cert, key = make_ca_and_server(tmp_path, "good")
    other_ca, _, _ = make_ca_and_server(tmp_path, "other")
    tls_port = free_port()
    broker.stop()
    broker.conf.write_text(
        broker.conf.read_text()
        + f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
    )
    broker.start()
    args = bridge_args(broker, publisher, tmp_path, "--broker", f"mqtts://127.0.0.1:{tls_port}", "--ca-file")
    recorder = Recorder(broker.port)
    proc = start_bridge([*args, str(ca)], tmp_path / "tls.log")
    done: list[bool] = []
    threading.Thread(target=keep_status, args=(publisher, done), daemon=True).start()
    try:
        recorder.wait(lambda: recorder.on(f"slovo/{DEVICE}/status"), what="status over TLS")
    finally:
        done.append(True)
        stop(proc)
        recorder.close()
    bad = start_bridge([*args, str(other_ca)], tmp_path / "bad.log")
    try:
        assert bad.wait(60) == 2
    finally:
        stop(bad)
    errors = [line for line in (tmp_path / "bad.log").read_text().splitlines() if "error:" in line]
    assert len(errors) == 1 and "not trusted" in errors[0]
