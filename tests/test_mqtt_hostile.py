"""``slr-mqtt`` under hostile input (issue 28) and its Home Assistant bookkeeping (issue 27, 10-12).

In process: the one wire check in the bridge, the outbox's byte bound, every config value that
exited 1, hung, printed a secret or was silently accepted. As processes, against a real
``mosquitto``: stops from the first moment (the console entry points, SIGTERM during the import),
``--remove-discovery`` against a silent broker, clean stops without an ERROR line, the retained
counters after a stop and a kill, the exit summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_mqtt import PASSWORD, USER, Broker, Recorder, start_bridge
from helpers_web import clean_env, free_port, stop

from edge.contract.protocol import encode, envelope
from edge.mqtt import config
from edge.mqtt.bridge import Bridge
from edge.mqtt.outbox import Outbox, Outgoing
from edge.mqtt.topics import Topics
from edge.util.settings import ConfigError
from tests.helpers_wire import sign_message, status_message

REPO = Path(__file__).resolve().parents[1]
SECRET = "hunter2-mqtt-secret"
DEVICE = "hostiledev"


# -- the bridge's check (issue 26) ------------------------------------------------------------------


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def publish(self, item: Outgoing) -> bool:
        self.sent.append(item)
        return True

    def pump(self, **_: Any) -> None:
        pass


def bridge(bound: int = 10, max_bytes: int | None = None) -> Bridge:
    b = Bridge(Topics("slovo", "d"), Outbox(bound, max_bytes=max_bytes), qos=1, discovery=False,
               daemon_timeout_s=5.0)  # fmt: skip
    b.link = FakeLink()
    return b


def segment_message(seq: int = 1) -> dict[str, Any]:
    body = {
        "top_k": [{"label": "да", "index": 1, "prob": 0.9}], "start": 1.0, "end": 2.0, "frames": 30,
        "hand_frames": 28, "cut": False, "resampled": False, "inference_ms": 7.0, "latency_ms": 5.0,
        "model": "m",
    }  # fmt: skip
    return envelope("segment", body, seq=seq, ts=time.time())


@pytest.mark.parametrize(
    ("topic", "field", "value"),
    [
        ("sign", "v", 1.0),
        ("sign", "seq", 5.0),
        ("sign", "index", 7.0),
        ("sign", "windows", 3.0),
        ("segment", "frames", 30.0),
        ("segment", "hand_frames", 1e1),
        ("status", "dropped_frames", 0.0),
        ("status", "buffer_fill", 64.0),
    ],
)
def test_bridge_refuses_floats_where_the_schema_says_integer(topic: str, field: str, value: Any) -> None:
    make = {"sign": lambda: sign_message("да"), "segment": segment_message, "status": status_message}[topic]
    b = bridge()
    assert b.handle(topic, make())
    assert not b.handle(topic, {**make(), field: value})
    carried = [*(item for item in b.link.sent if item.topic.endswith("/" + topic))]
    assert b.invalid == 1 and len(b.outbox) + len(carried) == 1


def test_outbox_is_bounded_in_bytes_too() -> None:
    """300 signs of 800 KB with the broker away: the count bound (1000) would keep all 240 MB."""
    b = bridge(bound=1000, max_bytes=16 << 20)
    big = "x" * 800_000
    for seq in range(300):
        assert b.handle("sign", {**sign_message(big, seq=seq)})
    assert b.outbox.size_bytes <= 16 << 20
    assert len(b.outbox) == (16 << 20) // len(encode("sign", sign_message(big))[1])
    assert b.outbox.dropped == 300 - len(b.outbox)


def test_seq_gaps_are_counted_as_lost() -> None:
    b = bridge()
    for seq in (1, 2, 5, 6, 10):
        b.handle("sign", sign_message("a", seq=seq))
    b.handle("sign", sign_message("a", seq=1))  # a restarted daemon starts again
    b.handle("sign", sign_message("a", seq=3))
    assert b.lost == 2 + 3 + 1


# -- config values (issue 28) -------------------------------------------------------------------------


def load(tmp_path: Path, table: str, top: str = "") -> config.Settings:
    path = tmp_path / "c.toml"
    path.write_text(f"{top}\n[mqtt]\n{table}\n", encoding="utf-8")
    return config.load(path, environ={}, hostname="h")


@pytest.mark.parametrize(
    "broker",
    [
        f"mqtt://127.0.0.1:1883/?password={SECRET}",
        f"mqtt://127.0.0.1:1883?token={SECRET}",
        f"mqtt://127.0.0.1#token={SECRET}",
        f"mqtts://broker.lan/?api_key={SECRET}",
        f"mqtt://broker.lan/x#access_token={SECRET}",
        f"mqtt://u:{SECRET}@broker.lan",
    ],
)
def test_broker_url_with_a_secret_is_refused_without_showing_it(tmp_path: Path, broker: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f'broker = "{broker}"')
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "broker",
    ["mqtt://[::1:48002", "mqtt://[zz::1]", "mqtt://[::1", "mqtt://h:0",
     "mqtt://h:65536", "mqtt://h:99999", "mqtt://h:-1", "mqtt://h:port", "mqtt://:1883"],
)  # fmt: skip
def test_bad_broker_hosts_and_ports_are_config_errors(tmp_path: Path, broker: str) -> None:
    with pytest.raises(ConfigError):
        load(tmp_path, f'broker = "{broker}"')


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536", "tcp://[::1:5556",
     "tcp://127.0.0.1", "udp://127.0.0.1:5556", "tcp://:5556", "tcp://127.0.0.1:5556/x"],
)  # fmt: skip
def test_bad_daemon_endpoints_are_config_errors(tmp_path: Path, endpoint: str) -> None:
    with pytest.raises(ConfigError):
        load(tmp_path, f'endpoint = "{endpoint}"')
    with pytest.raises(ConfigError):
        load(tmp_path, "", top=f'endpoint = "{endpoint}"')


def test_good_values_still_load(tmp_path: Path) -> None:
    got = load(tmp_path, 'broker = "mqtt://[::1]:1884"\nendpoint = "tcp://[::1]:5556"')
    assert (got.broker.host, got.broker.port, got.endpoint) == ("::1", 1884, "tcp://[::1]:5556")
    assert load(tmp_path, 'broker = "mqtts://broker.lan"').broker.port == 8883


def password_file(tmp_path: Path, data: bytes | None = None, size: int | None = None) -> Path:
    path = tmp_path / "pw"
    if size is not None:
        with path.open("wb") as handle:
            handle.truncate(size)  # sparse: 64 MiB of NUL on one "line"
    else:
        path.write_bytes(data or b"")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("what", "content"),
    [
        ("64 MiB one line", {"size": 64 << 20}),
        ("1 MiB of text", {"data": b"p" * (1 << 20)}),
        ("password over 65535 bytes", {"data": b"p" * 70_000 + b"\n"}),
        ("password of 3-byte characters over the limit", {"data": "я".encode() * 33_000}),
        ("NUL inside", {"data": b"ab\x00cd\n"}),
    ],
)
def test_password_files_that_cannot_be_a_password(tmp_path: Path, what: str, content: dict[str, Any]) -> None:
    path = password_file(tmp_path, **content)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f'username = "u"\npassword_file = "{path}"')
    assert "p" * 100 not in str(info.value)
    print(what, f"{time.monotonic() - started:.3f} s")


def test_password_file_dev_zero_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load(tmp_path, 'username = "u"\npassword_file = "/dev/zero"')


@pytest.mark.parametrize("username", ["u" * 65_536, "я" * 32_768, "a\\u0000b"])
def test_user_names_mqtt_cannot_carry(tmp_path: Path, username: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f'username = "{username}"')
    assert len(str(info.value)) < 300


# -- processes ------------------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


def write_config(tmp_path: Path, broker_url: str, endpoint: str, *, password: str = PASSWORD) -> Path:
    pw = tmp_path / "mqtt.password"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    path = tmp_path / "config.toml"
    path.write_text(
        f'endpoint = "{endpoint}"\n[mqtt]\nbroker = "{broker_url}"\nusername = "{USER}"\n'
        f'password_file = "{pw}"\ndevice_id = "{DEVICE}"\nqos = 1\n'
    )
    return path


ENTRY_POINT_PROBE = """
import importlib.abc, importlib.metadata, os, signal, sys
name, module, signum = sys.argv[1], sys.argv[2], int(sys.argv[3])
class Stop(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == module:  # the stop arrives while the command's own module loads
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signum)
        return None
sys.meta_path.insert(0, Stop())
(entry,) = importlib.metadata.entry_points(group="console_scripts", name=name)
sys.argv = [name, *sys.argv[4:]]
sys.exit(entry.load()())
"""


@pytest.mark.parametrize(
    ("name", "module", "code"),
    [("slr-mqtt", "edge.commands.mqtt", 0), ("slr-speak", "edge.commands.speak", 0),
     ("slr-predict", "edge.commands.predict", 130), ("slr-mqtt", "edge.commands.scaffold", 0),
     ("slr-predict", "edge.commands.scaffold", 130)],
)  # fmt: skip
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_the_command_loads_is_a_clean_stop(
    name: str, module: str, code: int, signum: int
) -> None:
    """SIGTERM in slr-mqtt's first ~0.2 s killed it (-15), SIGINT was a traceback: the console
    scripts take both signals before the command's module is imported (deterministic here: the
    signal is sent from inside that import)."""
    done = subprocess.run(
        [sys.executable, "-c", ENTRY_POINT_PROBE, name, module, str(int(signum)), "--help"],
        capture_output=True, text=True, timeout=120, env=clean_env(), cwd=REPO,
    )  # fmt: skip
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr


IMPORT_FAILS_PROBE = """
import importlib.abc, importlib.metadata, os, signal, sys, time
name, module, signum = sys.argv[1], sys.argv[2], int(sys.argv[3])
class Stop(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == module:  # as a C extension's init does when the signal interrupts it
            sys.meta_path.remove(self)
            try:
                os.kill(os.getpid(), signum)
                time.sleep(5)
            except KeyboardInterrupt:
                raise ImportError("initialization failed") from None
        return None
sys.meta_path.insert(0, Stop())
(entry,) = importlib.metadata.entry_points(group="console_scripts", name=name)
sys.argv = [name, *sys.argv[4:]]
sys.exit(entry.load()())
"""


@pytest.mark.parametrize(
    ("name", "module", "code"),
    [("slr-mqtt", "paho.mqtt.client", 0), ("slr-predict", "edge.camera.sources", 130),
     ("slr-speak", "zmq", 0)],
)  # fmt: skip
def test_a_stop_that_breaks_an_import_is_still_a_stop(name: str, module: str, code: int) -> None:
    """slr-predict stopped with SIGINT while MediaPipe or OpenCV loaded said "unexpected error:
    ImportError: initialization failed" and exit 1 (found by test_file_segments at load 10)."""
    predict = ["/nonexistent.mp4", "--model", "/nonexistent.onnx", "--srt", "/tmp/x.srt"]
    args = {"slr-mqtt": ["--broker", "mqtt://127.0.0.1:1"], "slr-speak": [], "slr-predict": predict}[name]
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_FAILS_PROBE, name, module, str(int(signal.SIGINT)), *args],
        capture_output=True, text=True, timeout=120, env=clean_env(), cwd=REPO,
    )  # fmt: skip
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert "unexpected error" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def silent_broker() -> tuple[socket.socket, int]:
    """A TCP listener that accepts and never answers (no CONNACK)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    return server, server.getsockname()[1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_remove_discovery_against_a_silent_broker_stops_with_130(tmp_path: Path, signum: int) -> None:
    server, port = silent_broker()
    cfg = write_config(tmp_path, f"mqtt://127.0.0.1:{port}", "tcp://127.0.0.1:5599")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.commands.mqtt", "--config", str(cfg), "--remove-discovery"],
        cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        server.settimeout(120)
        conn, _ = server.accept()  # it connected and now waits for a CONNACK that never comes
        time.sleep(0.3)
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        stop(proc)  # type: ignore[arg-type]
        server.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    help_text = subprocess.run(
        [sys.executable, "-m", "edge.commands.mqtt", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    ).stdout
    assert "130 --remove-discovery interrupted" in help_text
    conn.close()


def help_text() -> str:
    command = [sys.executable, "-m", "edge.commands.mqtt", "--help"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO).stdout


def test_help_names_every_environment_variable() -> None:
    """Item 12: the help said env names are the flag names with '_'; --daemon-timeout is not."""
    from edge.mqtt.config import ENV_PREFIX, MqttConfig
    from edge.util.settings import declared

    text = subprocess.run(
        [sys.executable, "-m", "edge.commands.mqtt", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    ).stdout
    flat = " ".join(text.split())
    for name, item in declared(MqttConfig).items():
        if item.flag != "--" + name.replace("_", "-"):
            assert f"{ENV_PREFIX}{name.upper()}" in flat, name
    assert "SLR_MQTT_DAEMON_TIMEOUT_S" in flat


def feed(endpoint_holder: list[Any], stop_at: list[bool]) -> None:
    pub = endpoint_holder[0]
    seq = 0
    while not stop_at:
        seq += 1
        pub.send(encode("status", status_message(seq=seq)))
        time.sleep(0.2)


def test_stops_kills_and_counters(broker: Broker, tmp_path: Path) -> None:
    """Items 10 and 11: three clean stops log no ERROR; the summary is words (no dict); the retained
    ``bridge`` message never says the daemon is online once the bridge is gone (stopped or killed);
    a stop publishes the final counters; discovery configs carry the QoS."""
    from tests.helpers_wire import RoguePublisher

    with RoguePublisher() as pub:
        cfg = write_config(tmp_path, broker.url(), pub.endpoint)
        for round_ in range(4):
            one_round(broker, pub, cfg, tmp_path / f"bridge-{round_}.log", kill=round_ == 3)


def one_round(broker: Broker, pub: Any, cfg: Path, log: Path, *, kill: bool) -> None:
    base = f"slovo/{DEVICE}"
    recorder = Recorder(broker.port)
    proc = start_bridge(["--config", str(cfg)], log)
    done: list[bool] = []
    threading.Thread(target=feed, args=([pub], done), daemon=True).start()
    try:
        recorder.wait(lambda: recorder.on(f"{base}/available")[-1:] == [b"online"], what="online")
        for i in range(3):
            pub.send(encode("sign", sign_message(f"s{i}", seq=100 + i)))
        recorder.wait(lambda: len(recorder.on(f"{base}/sign")) >= 3, what="3 signs")
        configs = [json.loads(p) for t, p, _ in recorder.messages if t.startswith("homeassistant/") and p]
        assert configs and all(c["qos"] == 1 for c in configs)
        if kill:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        else:
            assert stop(proc, 60) == 0
    finally:
        done.append(True)
        stop(proc)
        recorder.close()
    late = Recorder(broker.port)  # what a new subscriber reads now: the retained state
    try:
        late.wait(lambda: late.on(f"{base}/bridge") and late.on(f"{base}/available"), what="retained")
        time.sleep(0.5)
        retained = json.loads(late.on(f"{base}/bridge")[-1])
        assert late.on(f"{base}/available")[-1] == b"offline"
    finally:
        late.close()
    assert "daemon" not in retained and retained["last_status_ts"] > 0, retained
    if not kill:
        text = log.read_text(errors="replace")
        assert retained["forwarded"].get("sign", 0) >= 3, retained  # the final counters
        assert " ERROR " not in text, text[-3000:]
        (summary,) = [line for line in text.splitlines() if "stopped:" in line]
        assert "{" not in summary and "forwarded " in summary and " sign" in summary, summary


def test_a_refused_connection_forwards_nothing(broker: Broker, tmp_path: Path) -> None:
    from tests.helpers_wire import RoguePublisher

    with RoguePublisher() as pub:
        cfg = write_config(tmp_path, broker.url(), pub.endpoint, password="wrong-password")
        log = tmp_path / "bridge.log"
        proc = start_bridge(["--config", str(cfg)], log)
        done: list[bool] = []
        threading.Thread(target=feed, args=([pub], done), daemon=True).start()
        try:
            assert proc.wait(60) == 2
        finally:
            done.append(True)
            stop(proc)
    (summary,) = [line for line in log.read_text().splitlines() if "stopped:" in line]
    assert "forwarded nothing" in summary and "{" not in summary, summary


def test_encrypted_key_file_on_a_terminal_is_exit_2_not_a_prompt(tmp_path: Path) -> None:
    """OpenSSL asks for the pass phrase on the controlling terminal: slr-mqtt must not wait there."""
    import fcntl
    import termios

    key, cert = tmp_path / "client.key", tmp_path / "client.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=client", "-passout", "pass:" + SECRET],
        check=True, capture_output=True,
    )  # fmt: skip
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[mqtt]\nbroker = "mqtts://127.0.0.1:{free_port()}"\ncert_file = "{cert}"\nkey_file = "{key}"\n'
    )
    primary, secondary = os.openpty()

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.commands.mqtt", "--config", str(cfg)],
        stdin=secondary, stdout=secondary, stderr=secondary, cwd=REPO, env=clean_env(),
        start_new_session=True, preexec_fn=controlling_terminal,
    )  # fmt: skip
    os.close(secondary)
    output = b""
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        code = proc.poll()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.set_blocking(primary, False)
        with contextlib.suppress(OSError):
            output = os.read(primary, 65536)
        os.close(primary)
    text = output.decode(errors="replace")
    assert code == 2, text
    assert "encrypted" in text and "PEM pass phrase" not in text, text


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_big_signs_with_the_broker_away_stay_within_queue_bytes(tmp_path: Path) -> None:
    """300 valid signs of 800 KB while the broker is down: 34 -> 265 MiB before (the count bound
    alone allows ~1 GB); now the outbox keeps 16 MiB of them and counts the rest as dropped."""
    from tests.helpers_wire import RoguePublisher

    label = "ж" * 400_000  # 800 KB of UTF-8
    with RoguePublisher() as pub:
        cfg = write_config(tmp_path, f"mqtt://127.0.0.1:{free_port()}", pub.endpoint)  # nobody there
        log = tmp_path / "bridge.log"
        proc = start_bridge(["--config", str(cfg), "--log-level", "DEBUG"], log)
        try:
            deadline = time.monotonic() + 120
            while "connecting to the broker" not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text(errors="replace")
                time.sleep(0.2)
            time.sleep(1.0)  # subscribed
            before = rss_mib(proc.pid)
            frames = [encode("sign", sign_message(label, seq=i)) for i in range(1, 301)]
            for item in frames:
                pub.send(item)
                time.sleep(0.01)
            time.sleep(3.0)
            peak = rss_mib(proc.pid)
        finally:
            code = stop(proc, 60)
    text = log.read_text(errors="replace")
    (summary,) = [line for line in text.splitlines() if "stopped:" in line]
    print(f"RSS {before:.0f} -> {peak:.0f} MiB; {summary}")
    assert code == 0
    assert peak - before < 80, (before, peak)
    assert "dropped from the queue" in summary and " 0 dropped" not in summary, summary
