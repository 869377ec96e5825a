"""The dashboard's warm classification worker (issue 29): one process between uploads.

A stand-in worker speaking the ``--serve`` protocol shows the lifecycle quickly (two jobs one
process, a bad clip keeps it, a crash or a hang → a clean error and a fresh process next time,
the idle let-go); the real ``slr-web`` with the real worker shows it end to end (same pid, the
same top-5 as ``slr-predict --json``, ``kill -9`` mid-job, the let-go, RSS in /metrics).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_web import EventStream, short_clip
from test_web_api import Web, _serve, predicted  # noqa: F401  (predicted: a fixture)

from edge.web import clip_worker
from edge.web.uploads import ClipClassifier, UploadError

# ---- the lifecycle, with a stand-in worker --------------------------------------------------------

FAKE_SERVE = """\
import json, os, sys, time
for line in sys.stdin:
    job = json.loads(line)
    name = os.path.basename(job["video"])
    print(json.dumps({"progress": 0, "total": 2}), flush=True)
    if name == "hang":
        time.sleep(3600)
    if name == "crash":
        os._exit(3)
    if name == "slow":
        print(json.dumps({"progress": 1, "total": 2}), flush=True)
        time.sleep(60)
    if name == "bad":
        print(json.dumps({"error": "not a video"}), flush=True)
        continue
    print(json.dumps({"result": {"pid": os.getpid(), "captions": job["captions"]}}), flush=True)
"""


def _classifier(tmp_path: Path, **options: Any) -> ClipClassifier:
    script = tmp_path / "fake_serve.py"
    script.write_text(FAKE_SERVE, encoding="utf-8")
    return ClipClassifier("model.onnx", worker=(sys.executable, str(script)), **options)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _job(classifier: ClipClassifier, name: str, captions: float | None = None) -> dict[str, Any]:
    return await classifier._run_worker(Path(name), lambda _: None, captions=captions)


def test_two_jobs_one_process_and_a_bad_clip_keeps_it(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[Any], int]:
        classifier = _classifier(tmp_path, worker_idle_s=60)
        try:
            first = await _job(classifier, "clip")
            with pytest.raises(UploadError) as bad:
                await _job(classifier, "bad")
            second = await _job(classifier, "clip", captions=0.5)
            return [first, bad.value.status, second, classifier.warm.pid], classifier.warm.starts
        finally:
            await classifier.close()

    (first, bad_status, second, pid), starts = asyncio.run(scenario())
    assert bad_status == 422
    assert first["pid"] == second["pid"] == pid and starts == 1
    assert first["captions"] is None and second["captions"] == 0.5
    assert not _alive(pid)  # closed with slr-web


def test_a_crash_is_a_clean_500_and_the_next_job_gets_a_fresh_worker(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, str, dict[str, Any], dict[str, Any]]:
        classifier = _classifier(tmp_path, worker_idle_s=60)
        try:
            before = await _job(classifier, "clip")
            with pytest.raises(UploadError) as crash:
                await _job(classifier, "crash")
            after = await _job(classifier, "clip")
            return crash.value.status, str(crash.value), before, after
        finally:
            await classifier.close()

    status, message, before, after = asyncio.run(scenario())
    assert status == 500 and message == "the classifier stopped unexpectedly (exit code 3)"
    assert after["pid"] != before["pid"]


def test_kill_9_mid_job_is_a_clean_500_and_the_next_job_works(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, str, int, dict[str, Any]]:
        classifier = _classifier(tmp_path, worker_idle_s=60)
        try:
            await _job(classifier, "clip")
            victim = classifier.warm.pid
            assert victim is not None
            running = asyncio.Event()

            def progress(event: dict[str, Any]) -> None:
                if event.get("done") == 1:
                    running.set()

            job = asyncio.ensure_future(classifier._run_worker(Path("slow"), progress))
            await asyncio.wait_for(running.wait(), 60)
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(UploadError) as crash:
                await job
            after = await _job(classifier, "clip")
            return crash.value.status, str(crash.value), victim, after
        finally:
            await classifier.close()

    status, message, victim, after = asyncio.run(scenario())
    assert status == 500 and message == "the classifier stopped unexpectedly (exit code -9)"
    assert after["pid"] != victim


def test_a_hung_worker_is_killed_after_the_timeout(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, dict[str, Any], int]:
        classifier = _classifier(tmp_path, worker_idle_s=60)
        try:
            hung = (await _job(classifier, "clip"))["pid"]
            classifier.timeout_s = 1.0  # a start on a loaded machine may take longer: only the hang has it
            with pytest.raises(UploadError) as timeout:
                await _job(classifier, "hang")
            after = await _job(classifier, "clip")
            return timeout.value.status, hung, after, classifier.warm.starts
        finally:
            await classifier.close()

    status, hung, after, starts = asyncio.run(scenario())
    assert status == 504
    assert not _alive(hung)  # killed when the timeout passed, not left sleeping
    assert after["pid"] != hung and starts == 2


def test_an_idle_worker_is_let_go_and_a_later_job_starts_one(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, bool, bool, dict[str, Any]]:
        classifier = _classifier(tmp_path, worker_idle_s=0.2)
        try:
            first = (await _job(classifier, "clip"))["pid"]
            kept = _alive(first)  # just answered: still there
            deadline = time.monotonic() + 60
            while _alive(first) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            gone = not _alive(first) and classifier.warm.pid is None
            return first, kept, gone, await _job(classifier, "clip")
        finally:
            await classifier.close()

    first, kept, gone, later = asyncio.run(scenario())
    assert kept and gone
    assert later["pid"] != first


def test_idle_0_is_a_process_per_clip(tmp_path: Path) -> None:
    async def scenario() -> tuple[dict[str, Any], int | None]:
        classifier = _classifier(tmp_path)  # the class's default: no warm worker
        return await _job(classifier, "clip"), classifier.warm.pid

    result, pid = asyncio.run(scenario())
    assert pid is None and not _alive(result["pid"])


# ---- the worker's job lines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"video": "/tmp/a", "captions": null}\n', ("/tmp/a", None)),
        (b'{"video": "/tmp/a", "captions": 0.5}\n', ("/tmp/a", 0.5)),
        (b'{"video": "/tmp/a", "captions": 1}\n', ("/tmp/a", 1.0)),
        (b"not json\n", "not JSON"),
        (b"[" * 100_000 + b"\n", "longer than"),
        (b'"just a string"\n', "a job is"),
        (b'{"video": ""}\n', "a job is"),
        (b'{"video": 5}\n', "a job is"),
        (b'{"video": "/tmp/a", "captions": true}\n', "captions must be"),
        (b'{"video": "/tmp/a", "captions": 2}\n', "captions must be"),
        (b'{"video": "/tmp/a", "captions": "0.5"}\n', "captions must be"),
    ],
    ids=["plain", "captions", "int", "not-json", "long", "string", "empty", "number", "bool", "2", "text"],
)
def test_a_job_line_is_checked(line: bytes, expected: Any) -> None:
    stream = io.BytesIO(line + b'{"video": "/tmp/next", "captions": null}\n')
    job = clip_worker.read_job(stream)
    if isinstance(expected, tuple):
        assert job == expected
    else:
        assert isinstance(job, str) and expected in job
    assert clip_worker.read_job(stream) == ("/tmp/next", None)  # one bad line is one answer
    assert clip_worker.read_job(stream) is None


# ---- end to end: slr-web and the real worker ---------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers_web import build_slovo_model

    return build_slovo_model(tmp_path_factory.mktemp("warm_model") / "slovo-tiny.onnx")


@pytest.fixture(scope="module")
def clip(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_clip(sample_video, tmp_path_factory.mktemp("warm_clip") / "short.mp4", frames=30)


@pytest.fixture(scope="module")
def warm_web(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    yield from _serve(tmp_path_factory.mktemp("warm_web"), model, "--max-upload-mb", "5")


@pytest.fixture(scope="module")
def idle_web(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    yield from _serve(tmp_path_factory.mktemp("idle_web"), model, "--worker-idle-s", "1")


def _workers(web: Web) -> list[int]:
    """slr-web's clip worker processes (not the ``--describe`` one of its start)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == web.proc.pid and b"edge.web.clip_worker" in cmdline and b"--describe" not in cmdline:
            found.append(int(entry.name))
    return found


def _metric(web: Web, name: str) -> float:
    for line in web.get("/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _same_top_k(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert [e["index"] for e in got["top_k"]] == [e["index"] for e in expected["top_k"]]
    for a, b in zip(got["top_k"], expected["top_k"], strict=True):
        assert a["prob"] == pytest.approx(b["prob"], abs=1e-6)


def test_the_warm_worker_serves_uploads_with_one_process(
    warm_web: Web,
    clip: Path,
    predicted: dict[str, Any],  # noqa: F811
) -> None:
    pids = []
    good, bad = clip.read_bytes(), b"not a video" * 10
    for data, expected_status in ((good, 200), (bad, 422), (good, 200)):
        status, result = warm_web.post_file(data)
        assert status == expected_status, result
        if status == 200:
            _same_top_k(result, predicted)  # a warm answer equals slr-predict's cold one
            for key in ("frames", "hand_frames", "clip_fps", "resampled"):
                assert result[key] == predicted[key], key
        pids.append(_workers(warm_web))
    assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 1  # a bad clip did not end it
    assert _metric(warm_web, "slovo_web_worker_starts") == 1
    assert _metric(warm_web, "slovo_web_worker_up") == 1
    assert _metric(warm_web, "slovo_web_worker_rss_bytes") > 50e6  # MediaPipe and ONNX Runtime


def test_kill_9_of_the_warm_worker_mid_upload(warm_web: Web, clip: Path, sample_video: Path) -> None:
    status, _ = warm_web.post_file(clip.read_bytes())  # a warm worker to kill
    assert status == 200
    (victim,) = _workers(warm_web)
    events = EventStream(warm_web.port)
    answers: list[tuple[int, dict[str, Any]]] = []
    long_clip = short_clip(sample_video, clip.parent / "long.mp4", frames=90)
    upload = threading.Thread(target=lambda: answers.append(warm_web.post_file(long_clip.read_bytes())))
    upload.start()
    try:
        deadline = time.monotonic() + 120
        while not any(
            kind == "progress" and data.get("state") == "extracting" and (data.get("done") or 0) > 0
            for kind, data in events.events(0.2)
        ):
            assert time.monotonic() < deadline, "the job never started"
        os.kill(victim, signal.SIGKILL)
    finally:
        events.close()
        upload.join(300)
    assert [(status, body["error"]) for status, body in answers] == [
        (500, "the classifier stopped unexpectedly (exit code -9)")  # the same reply as before
    ]
    status, result = warm_web.post_file(clip.read_bytes())
    assert status == 200, result
    assert _workers(warm_web) not in ([], [victim])


def test_an_idle_worker_is_let_go(idle_web: Web, clip: Path) -> None:
    status, _ = idle_web.post_file(clip.read_bytes())
    assert status == 200
    deadline = time.monotonic() + 60
    while _workers(idle_web):
        assert time.monotonic() < deadline, "the idle worker was not let go"
        time.sleep(0.1)
    assert _metric(idle_web, "slovo_web_worker_up") == 0
    assert _metric(idle_web, "slovo_web_worker_rss_bytes") == 0
    status, result = idle_web.post_file(clip.read_bytes())
    assert status == 200, result  # a later upload starts a fresh one
    assert _metric(idle_web, "slovo_web_worker_starts") == 2
