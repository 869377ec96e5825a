"""The subscriber units (slovo-mqtt, slovo-speak, slovo-web) installed as the README says and booted
under a real systemd beside the daemon.

`systemd-analyze security` passing says nothing about whether a unit runs: a sandbox that hides a
file the program needs, a credential that is not where the program looks, a socket family the
filter forbids all show only when systemd starts it. So: a bookworm minbase root filesystem (with
espeak-ng, as on a Pi that speaks), ``systemd/install.sh --web --speak --mqtt WHEEL`` (offline, from
a wheelhouse), the config's ``[mqtt]`` table pointing at a real Debian ``mosquitto`` on the host's
loopback (the container shares the host's network), the broker password where the unit's header
says, ``systemctl enable`` of all four units, and ``systemd-nspawn -b``. The units run as shipped,
on their default endpoint and port; only slovo-speak gets the drop-in its header documents for a
machine without a sound card (``--to-dir``).

Checked from the host, as a user's other machines would see it: the broker holds the retained
``online`` availability, the daemon's status and Home Assistant's discovery; a recognised segment
arrives on MQTT; SIGKILL of the bridge makes the broker publish the last will ``offline`` and
systemd brings it back ``online``; the dashboard answers ``/healthz``; slr-speak writes WAV files of
speech; no journal holds a traceback or the broker password.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest
from deploy_support import BootedContainer, installed_rootfs, run
from helpers_mqtt import PASSWORD, USER, Broker, Recorder

from tests.helpers_schema import validate

pytestmark = pytest.mark.deploy

UNITS = ("slovo-edge.service", "slovo-mqtt.service", "slovo-speak.service", "slovo-web.service")
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "espeak-ng")
DEVICE = "hall"
#: The shipped units' defaults: the daemon's endpoint (slr-speak's and slr-web's default too) and
#: the dashboard's port.
DAEMON_PORT = 5556
WEB_PORT = 8080
SPEAK_DROP_IN = """\
[Service]
StateDirectory=slovo-speak
ExecStart=
ExecStart=/opt/slovo-edge/venv/bin/slr-speak --voice ru --min-confidence 0 --to-dir /var/lib/slovo-speak
"""


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Broker:
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def booted(
    tmp_path_factory: pytest.TempPathFactory, tiny_onnx_path: Path, sample_video: Path, broker: Broker
) -> BootedContainer:
    for port in (DAEMON_PORT, WEB_PORT):
        if not _port_is_free(port):
            pytest.fail(f"127.0.0.1:{port} is taken; the shipped units use it (stop what holds it)")
    work = tmp_path_factory.mktemp("nspawn-services")
    root, _ = installed_rootfs(work / "root", PACKAGES, "--web", "--speak", "--mqtt")
    state = root / "var" / "lib" / "slovo-edge"
    state.mkdir(parents=True, exist_ok=True)
    (state / "model.onnx").write_bytes(tiny_onnx_path.read_bytes())
    (state / "clip.mp4").write_bytes(sample_video.read_bytes())  # whole clip: hands down, sign, hands down
    config = root / "etc" / "slovo-edge" / "config.toml"
    example = config.read_text()
    assert "[mqtt]" in example  # the installed example has the table a user edits
    daemon_part = example.split("[mqtt]")[0]
    config.write_text(
        daemon_part.replace('source = "/dev/video0"', 'source = "/var/lib/slovo-edge/clip.mp4"\nloop = true')
        + f'\n[mqtt]\nbroker = "{broker.url()}"\nusername = "{USER}"\n'
        'password_file = "/run/credentials/slovo-mqtt.service/mqtt.password"\n'
        f'device_id = "{DEVICE}"\n'
    )
    password = root / "etc" / "slovo-edge" / "mqtt.password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    drop_in = root / "etc" / "systemd" / "system" / "slovo-speak.service.d" / "to-dir.conf"
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(SPEAK_DROP_IN)
    run(
        [
            "systemd-nspawn",
            "--quiet",
            "-D",
            root,
            "--register=no",
            "--keep-unit",
            "systemctl",
            "enable",
            *UNITS,
        ]
    )
    container = BootedContainer(root, work / "nspawn.log")
    try:
        for unit in UNITS:
            container.wait_for(
                lambda u=unit: container.show(u, "ActiveState") == "active", 180, f"{unit} active"
            )
        yield container
    finally:
        container.close()


def test_every_unit_runs_under_systemd_without_restarting(booted: BootedContainer) -> None:
    time.sleep(10)  # longer than every unit's RestartSec: a crash loop shows as restarts by now
    for unit in UNITS:
        journal = booted.journal(unit)
        assert booted.show(unit, "SubState") == "running", f"{unit}:\n{journal}"
        assert booted.show(unit, "NRestarts") == "0", f"{unit} restarted:\n{journal}"
        assert booted.show(unit, "DynamicUser") == "yes", unit


def test_mqtt_bridge_announces_forwards_and_leaves_a_last_will(
    booted: BootedContainer, broker: Broker
) -> None:
    base = f"slovo/{DEVICE}"
    recorder = Recorder(broker.port)
    try:
        try:
            recorder.wait(lambda: recorder.on(f"{base}/available")[-1:] == [b"online"], 90, "online")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nslovo-mqtt's journal:\n{booted.journal('slovo-mqtt.service')}"
            ) from None
        recorder.wait(lambda: recorder.on(f"{base}/status"), 30, "the daemon's status")
        status = json.loads(recorder.on(f"{base}/status")[-1])
        validate("status", status)
        assert status["camera"] == "ok"
        recorder.wait(
            lambda: recorder.on(f"homeassistant/event/{DEVICE}/sign/config"), 30, "Home Assistant discovery"
        )
        recorder.wait(lambda: recorder.on(f"{base}/segment"), 120, "a segment from the looping clip")
        validate("segment", json.loads(recorder.on(f"{base}/segment")[0]))

        killed_pid = int(booted.show("slovo-mqtt.service", "MainPID"))
        booted.systemctl("kill", "-s", "SIGKILL", "slovo-mqtt.service")
        recorder.wait(lambda: recorder.on(f"{base}/available")[-1:] == [b"offline"], 60, "the last will")
        booted.wait_for(
            lambda: int(booted.show("slovo-mqtt.service", "MainPID")) not in (0, killed_pid), 30, "a restart"
        )
        recorder.wait(lambda: recorder.on(f"{base}/available")[-1:] == [b"online"], 60, "online again")
    finally:
        recorder.close()
    journal = booted.journal("slovo-mqtt.service")
    assert "Traceback" not in journal
    assert PASSWORD not in journal


def test_dashboard_answers_health_and_status(booted: BootedContainer) -> None:
    def healthy() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/healthz", timeout=5) as answer:
            return answer.status == 200

    booted.wait_for(healthy, 60, "slr-web's /healthz to say 200")
    with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/api/status", timeout=5) as answer:
        body = json.loads(answer.read())
    status = body.get("status", body)
    assert status["camera"] == "ok", body
    assert "Traceback" not in booted.journal("slovo-web.service")


def test_speech_unit_writes_spoken_segments(booted: BootedContainer) -> None:
    spoken = booted.root / "var" / "lib" / "private" / "slovo-speak"  # DynamicUser's StateDirectory
    booted.wait_for(lambda: any(spoken.glob("*.wav")), 180, "a WAV from slr-speak")
    time.sleep(1.0)  # let the first file be complete
    first = sorted(spoken.glob("*.wav"))[0]
    with wave.open(str(first)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float64)
        seconds = wav.getnframes() / wav.getframerate()
    rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
    print(f"\nslovo-speak: {first.name}, {seconds:.2f} s, RMS {rms:.0f}")
    assert seconds > 0.2 and rms > 100
    assert "Traceback" not in booted.journal("slovo-speak.service")
