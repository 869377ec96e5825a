"""A real Debian ``mosquitto`` on a free loopback port with a password file, and an independent paho
client that records what the broker delivers, for the ``slr-mqtt`` tests."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from helpers_web import clean_env, free_port

REPO = Path(__file__).resolve().parents[1]
USER = "slovo"
PASSWORD = "s3cret-Pa55word-xyz"


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(f"{name} is missing: apt-get install -y mosquitto mosquitto-clients")
    return path


@dataclass
class Broker:
    """One mosquitto process; a restart keeps the port, retained messages and persistent sessions."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.passwords = self.workdir / "passwords"
        subprocess.run(
            [tool("mosquitto_passwd"), "-c", "-b", str(self.passwords), USER, PASSWORD], check=True
        )
        self.passwords.chmod(0o600)
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {self.passwords}\n"
            f"persistence true\npersistence_location {self.workdir}/\nlog_dest stderr\nlog_type all\n"
            # as root, mosquitto would switch to the mosquitto user, who cannot read the test's files
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        )
        self.log = self.workdir / "mosquitto.log"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([tool("mosquitto"), "-c", str(self.conf)], stdout=out, stderr=out)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if f"Opening ipv4 listen socket on port {self.port}" in self.log.read_text(errors="replace"):
                time.sleep(0.2)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"mosquitto did not start:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class Recorder:
    """An independent paho subscriber: every (topic, payload, retained) the broker delivers.

    Its session is persistent (QoS 1), so across a broker restart it gets what was published while it
    was reconnecting, like a real consumer would.
    """

    def __init__(self, port: int, topic: str = "#") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"recorder-{time.time_ns()}", clean_session=False
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def wait(self, predicate: object, timeout: float = 60.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        with self._lock:
            seen = [(t, p[:80]) for t, p, _ in self.messages[-20:]]
        raise AssertionError(f"timed out waiting for {what}; last messages: {seen}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_bridge(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edge.commands.mqtt", *args],
            cwd=REPO,
            env=clean_env(),
            stdout=out,
            stderr=out,
        )
