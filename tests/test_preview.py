"""On-demand preview frames: the XPUB subscription rule, the publisher's watcher count, the encoder.

The promise to existing subscribers: whoever subscribes to ``prediction``, ``sign``, ``status`` or
to everything (``b""``) receives exactly the messages it did before, also while someone watches
the preview; only a subscription to ``preview`` by name gets preview frames, and only then are
frames produced.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import zmq

from edge.contract.layout import LEFT_HAND, empty_frame
from edge.contract.protocol import TOPICS, SignEvent
from edge.daemon.preview import MAX_SIDE, PreviewWorker, encode_preview, keypoint_groups
from edge.transport.publisher import Publisher
from edge.transport.subscriber import Subscriber
from edge.transport.subscriptions import SubscriptionRouter
from tests.helpers_schema import validate


def test_router_maps_prefixes_to_broadcast_topics_only() -> None:
    router = SubscriptionRouter()
    assert router.handle(b"\x01") == [(True, t.encode()) for t in TOPICS]  # "everything"
    assert router.handle(b"\x01s") == [(True, b"sign"), (True, b"status"), (True, b"segment")]
    assert router.handle(b"\x01p") == [(True, b"prediction")]  # never preview by prefix
    assert router.handle(b"\x01prev") == []
    assert router.watchers("preview") == 0
    assert router.handle(b"\x01preview") == [(True, b"preview")]
    assert router.handle(b"\x01preview") == [(True, b"preview")]
    assert router.watchers("preview") == 2
    assert router.handle(b"\x00preview") == [(False, b"preview")]
    assert router.watchers("preview") == 1
    assert router.handle(b"\x00preview") == [(False, b"preview")]
    assert router.handle(b"\x00preview") == [(False, b"preview")]  # never negative
    assert router.watchers("preview") == 0
    assert router.handle(b"") == [] and router.handle(b"\x05data") == [] and router.handle(b"\x01\xff") == []


def _drain(sock: zmq.Socket, seconds: float = 0.5) -> list[bytes]:
    topics = []
    while sock.poll(int(seconds * 1000)):
        topics.append(bytes(sock.recv_multipart()[0]))
    return topics


def test_existing_subscribers_see_no_change_while_preview_is_watched() -> None:
    context = zmq.Context.instance()
    with Publisher("tcp://127.0.0.1:0") as publisher:
        everything = context.socket(zmq.SUB)
        everything.setsockopt(zmq.SUBSCRIBE, b"")
        everything.connect(publisher.endpoint)
        signs = Subscriber(publisher.endpoint, ["sign"])
        default = Subscriber(publisher.endpoint)  # slr-listen's default: the broadcast topics
        time.sleep(0.3)
        publisher.watchers("preview")  # let the publisher apply the subscriptions
        assert publisher.watchers("preview") == 0

        watcher = context.socket(zmq.SUB)
        watcher.setsockopt(zmq.SUBSCRIBE, b"preview")
        watcher.connect(publisher.endpoint)
        deadline = time.monotonic() + 5
        while publisher.watchers("preview") != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert publisher.watchers("preview") == 1

        preview = {"jpeg": "AA==", "width": 1, "height": 1, "frame_ts": 0.0, "keypoints": {}}
        for i in range(3):
            publisher.publish("preview", preview)
            publisher.send(SignEvent("да", 1, 0.9, 2, float(i), float(i) + 1, 30.0))
        try:
            assert _drain(everything) == [b"sign"] * 3
            assert [signs.recv(1.0)[0] for _ in range(3)] == ["sign"] * 3
            assert [default.recv(1.0)[0] for _ in range(3)] == ["sign"] * 3
            assert default.recv(0.3) is None
            assert _drain(watcher) == [b"preview"] * 3  # only what it asked for
        finally:
            watcher.close(linger=0)
            everything.close(linger=0)
            signs.close()
            default.close()
        deadline = time.monotonic() + 5
        while publisher.watchers("preview") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert publisher.watchers("preview") == 0  # a disconnect counts as leaving


def _frame_with_left_hand() -> np.ndarray:
    kp = empty_frame()
    kp[LEFT_HAND, 0] = np.linspace(0.4, 0.6, 21)
    kp[LEFT_HAND, 1] = 0.5
    kp[LEFT_HAND, 2] = 0.0
    return kp


def test_encode_preview_fits_640_and_carries_the_frames_keypoints() -> None:
    rgb = np.zeros((1920, 1080, 3), np.uint8)
    rgb[:, :540] = (255, 0, 0)
    body = encode_preview(rgb, _frame_with_left_hand(), 3.25).to_payload()
    assert body["height"] == MAX_SIDE and body["width"] == 360
    jpeg = cv2.imdecode(np.frombuffer(base64.b64decode(body["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    assert jpeg.shape == (640, 360, 3)
    assert jpeg[320, 10, 2] > 200 and jpeg[320, 350, 2] < 50  # red on the left half (BGR), as sent
    groups = body["keypoints"]
    assert groups["pose"] is None and groups["right_hand"] is None and groups["lips"] is None
    assert len(groups["left_hand"]) == 21 and groups["left_hand"][0] == [0.4, 0.5]
    validate("preview", {**body, "v": 1, "seq": 0, "ts": 1.0, "topic": "preview"})
    small = encode_preview(np.zeros((240, 320, 3), np.uint8), empty_frame(), 0.0)
    assert (small.width, small.height) == (320, 240)  # never upscaled
    assert keypoint_groups(empty_frame()) == {
        "pose": None,
        "left_hand": None,
        "right_hand": None,
        "lips": None,
    }


class _FakePublisher:
    def __init__(self) -> None:
        self.count = 0
        self.sent: list[object] = []
        self.lock = threading.Lock()

    def watchers(self, topic: str) -> int:
        assert topic == "preview"
        return self.count

    def send(self, message: object) -> bool:
        with self.lock:
            self.sent.append(message)
        return True


@pytest.fixture
def worker() -> Iterator[PreviewWorker]:
    publisher = _FakePublisher()
    worker = PreviewWorker(publisher, max_fps=5.0)
    worker.start()
    yield worker
    worker.stop()
    worker.join(2)


def _offer_for(worker: PreviewWorker, seconds: float) -> None:
    rgb = np.zeros((48, 64, 3), np.uint8)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        worker.offer(rgb, empty_frame(), time.monotonic())
        time.sleep(0.01)  # a 100 frames/s camera


def test_worker_sends_nothing_while_nobody_watches(worker: PreviewWorker) -> None:
    _offer_for(worker, 1.0)
    assert worker.publisher.sent == [] and worker.watched is False  # type: ignore[attr-defined]


def test_worker_sends_at_most_max_fps_while_watched(worker: PreviewWorker) -> None:
    worker.publisher.count = 1  # type: ignore[attr-defined]
    time.sleep(0.4)  # the worker polls the watcher count every 0.25 s
    _offer_for(worker, 2.0)
    sent = len(worker.publisher.sent)  # type: ignore[attr-defined]
    assert 5 <= sent <= 11, sent  # 5/s for 2 s, not 100/s
    worker.publisher.count = 0  # type: ignore[attr-defined]
    time.sleep(0.4)
    before = len(worker.publisher.sent)  # type: ignore[attr-defined]
    _offer_for(worker, 0.6)
    assert len(worker.publisher.sent) <= before + 1  # type: ignore[attr-defined]
