"""Idle economy on realistic live scenes and two transports, side by side in one run: duty cycle,
motion gate, wake-up.

* **Idle CPU** of ``slr-edge run`` (cores = CPU-seconds per wall-second, all threads, from
  ``/proc/PID/task/*/stat``) over ``--seconds`` of a live 30 fps stream, after the daemon went
  idle, per thread group (MediaPipe's threads, the capture thread with FFmpeg's decoder threads,
  the main thread, the rest), for each transport (``--transports``, default both):

  - **h264**: H.264 in MPEG-TS over TCP (``ffmpeg -re ... -c copy -f mpegts
    tcp://127.0.0.1:PORT?listen=1``);
  - **mjpeg**: the same scenes as Motion-JPEG (``-q:v 5``, yuvj420p) over HTTP, as an MJPEG network
    camera delivers them (``ffmpeg -re ... -c copy -f mpjpeg -listen 1
    http://127.0.0.1:PORT/cam.mjpg``; the daemon's source is that URL);

  and three scenes:

  - **empty room**: a still crop of the sample's background (wall and table) scaled to 1280x720,
    with temporal sensor noise (ffmpeg ``noise=alls=8:allf=t``: ~2.6 grey levels after encoding);
  - **test pattern**: ffmpeg's ``testsrc2`` 1280x720, moving colour bars and a counter;
  - **person at rest**: the sample's hand-free frames 96–111 looped, 720x1280;

  each with the duty cycle off (``--idle-fps 0``), on without the motion gate
  (``--idle-motion 0``) and on with it (the defaults). Runs alternate scene × config × transport
  within each round, round by round, so background load hits every case alike. From the
  daemon's ``status`` messages during the same window: MediaPipe looks per second, hence **CPU per
  idle sample** (the daemon's CPU over one sample period) and **MediaPipe's CPU per look**.
* **Capture cost per frame** (in process, on the same clips). H.264: decode, YUV → BGR, BGR → RGB,
  with FFmpeg's default decoder threads and with one (what the daemon uses for live streams).
  MJPEG (per source kind): reading the JPEG packet with OpenCV without decoding it
  (``CAP_PROP_FORMAT`` -1), + a 1/8-scale decode (``IMREAD_REDUCED_COLOR_8``, what the motion
  gate measures), + a full decode (``IMREAD_COLOR``), + BGR → RGB; and FFmpeg's own decode
  (``grab``, ``read``, one thread) for comparison.
* **Wake-up** (first frame with a hand reaching extraction → full-rate extraction, from the
  daemon's "awake" log lines), p50/p95, and the segment latency, per transport, on a live stream
  of 4 s of the noisy empty room (720x1280) followed by the sample clip, looped; gate on.
* **Frames/s with hands present**, duty cycle off vs on with the gate (the sample 4x as a file,
  alternating runs): the gate must not slow full-rate extraction (ratio >= 0.98).
* **Memory for a maximal segment** (the segmenter's preallocated storage).

Streams are built at run time with ffmpeg from ``../shared/samples/slovo_sample.mp4`` (never
stored), each scene with the same filters for both transports. Figures go to
``docs/BENCHMARKS.md`` (section "idle"). The load average is printed with every run: on a shared
machine run it when ``uptime`` is lowest.

    python benchmarks/bench_idle.py [--model M.onnx] [--seconds 20] [--rounds 2] [--transports h264,mjpeg]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_daemon import SUMMARY, daemon_args, default_model, free_endpoint  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

SAMPLE = REPO.parent / "shared" / "samples" / "slovo_sample.mp4"
AWAKE = re.compile(r"awake: full-rate extraction (\d+) ms after the first frame with a hand")
SEGMENT_LATENCY = re.compile(r"segment_latency_ms\(p50=([\d.-]+) p95=([\d.-]+)\)")
SEGMENTS = re.compile(r"segments=(\d+) short=(\d+)")
TICKS = os.sysconf("SC_CLK_TCK")
#: How long the daemon needs to be up and idle (start-up + idle_after_s) before CPU is measured.
SETTLE_S = 12.0
#: How long a stream server may take to open its clip and listen.
LISTEN_TIMEOUT_S = 10.0
#: The sample's background beside the signer (frame 100): wall and table, no person.
ROOM_CROP = "crop=160:90:0:820"
NOISE = "noise=alls=8:allf=t"
SCENES = {
    "room": "empty room, 1280x720 (sample's background, sensor noise)",
    "pattern": "test pattern, 1280x720 (testsrc2)",
    "person": "person at rest, 720x1280 (sample's hand-free frames 96–111, looped)",
}
#: transport → (description, encoder arguments, clip suffix)
TRANSPORTS = {
    "h264": (
        "H.264 in MPEG-TS over TCP",
        ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "30"),
        ".mp4",
    ),
    "mjpeg": (
        "Motion-JPEG, q 5, multipart over HTTP",
        ("-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"),
        ".mkv",
    ),
}
#: (label, extra daemon flags)
CONFIGS = {
    "duty off": ["--idle-fps", "0"],
    "duty on, no gate": ["--idle-motion", "0"],
    "duty on + gate": [],
}
TARGETS = {"room": 0.15, "pattern": 0.15, "person": 0.35}
STRETCH = {"room": 0.10, "pattern": 0.10, "person": 0.25}
GROUPS = ("mediapipe", "capture", "main", "other")
#: MJPEG capture steps: (key, column heading)
MJPEG_STEPS = {
    "packet": "packet (`read`, raw)",
    "+ 1/8": "+ 1/8 decode (`IMREAD_REDUCED_COLOR_8`)",
    "+ full": "+ full decode (`IMREAD_COLOR`)",
    "+ RGB": "+ full decode + BGR→RGB",
    "grab": "FFmpeg decode (`grab`)",
    "read": "FFmpeg decode + BGR (`read`)",
}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, stdin=subprocess.DEVNULL)


def build_streams(tmp: Path, video: Path, transports: list[str]) -> dict[tuple[str, str], Path]:
    """The benchmark's clips (30 fps), made from the sample at run time: (transport, clip) → path.

    Clips "room", "pattern", "person" and "wake" for each of ``transports``, encoded from the same
    filters; ("file", "hands") is the sample 4 times over for the file measurement.
    """
    still = "select='eq(n,100)'," + ROOM_CROP + ",scale={size},loop=-1:1:0," + NOISE
    clips: dict[tuple[str, str], Path] = {}
    for transport in transports:
        _, encode, suffix = TRANSPORTS[transport]

        def out(name: str, transport: str = transport, suffix: str = suffix) -> str:
            clips[(transport, name)] = tmp / f"{name}-{transport}{suffix}"
            return str(clips[(transport, name)])

        ffmpeg(
            *("-i", str(video), "-vf", still.format(size="1280:720")),
            *("-frames:v", "300", "-r", "30", *encode, out("room")),
        )
        ffmpeg("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", "-t", "10", *encode, out("pattern"))
        # frames 96..111 of the sample: the signer, hands down
        ffmpeg(
            *("-i", str(video), "-vf", "select='gte(n,96)',setpts=N/30/TB"),
            *("-r", "30", *encode, out("person")),
        )
        ffmpeg(  # 4 s of the noisy room (portrait, like the clip), then the clip
            *("-i", str(video), "-i", str(video), "-filter_complex"),
            f"[0:v]{still.format(size='720:1280')},trim=end_frame=120,setpts=N/30/TB,format=yuv420p[a];"
            "[1:v]format=yuv420p,fps=30[b];[a][b]concat=n=2:v=1",
            *encode,
            out("wake"),
        )
    listing = tmp / "four_times.txt"  # the sample 4 times over (stream copy): a file long enough to time
    listing.write_text(f"file '{video.resolve()}'\n" * 4)
    hands = clips[("file", "hands")] = tmp / "hands.mp4"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(hands))
    return clips


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU-seconds (user + system) of each thread of ``pid``: tid → (name, seconds)."""
    out: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / TICKS)
    return out


def group_of(tid: int, name: str, pid: int) -> str:
    if name.startswith("mediapipe"):
        return "mediapipe"
    if name == "capture":  # the capture thread and FFmpeg's decoder threads it started
        return "capture"
    return "main" if tid == pid else "other"


def niced(nice: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child process niceness ``nice`` (None for 0)."""
    if not nice:
        return None

    def renice() -> None:
        os.nice(nice)

    return renice


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(server: subprocess.Popen[bytes], port: int, timeout_s: float = LISTEN_TIMEOUT_S) -> None:
    """Wait until ``server`` listens on 127.0.0.1:``port``.

    Read from ``/proc/net/tcp`` rather than by connecting: ffmpeg's ``-listen 1`` and
    ``?listen=1`` serve one client, and a probe connection would be that client.
    """
    address = int.from_bytes(socket.inet_aton("127.0.0.1"), sys.byteorder)
    local = f"{address:08X}:{port:04X}"
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise SystemExit(f"stream server exited with {server.returncode} before listening on {port}")
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[3] == "0A":  # TCP_LISTEN
                return
        if time.monotonic() > deadline:
            server.kill()
            server.wait()
            raise SystemExit(f"stream server not listening on {port} after {timeout_s:g} s")
        time.sleep(0.02)


def serve(clip: Path, transport: str) -> tuple[subprocess.Popen[bytes], str]:
    """Serve ``clip`` looped at its frame rate over ``transport``: (server process, the daemon's source)."""
    port = free_port()
    if transport == "h264":
        output = ["-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"]
        source = f"tcp://127.0.0.1:{port}"
    elif transport == "mjpeg":
        source = f"http://127.0.0.1:{port}/cam.mjpg"
        output = ["-f", "mpjpeg", "-listen", "1", source]
    else:
        raise ValueError(f"unknown transport {transport!r}")
    server = subprocess.Popen(
        ["ffmpeg", "-loglevel", "quiet", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy", *output],
        stdin=subprocess.DEVNULL,
    )
    wait_listening(server, port)
    return server, source


@dataclass
class LiveRun:
    cores: float
    groups: dict[str, float]
    looks_per_s: float
    load: float
    log: str = field(repr=False)


class StatusRate:
    """Averages the daemon's ``extraction_fps`` (MediaPipe looks per second) from its status messages."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.values: list[float] = []
        self.recording = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from edge.transport.subscriber import Subscriber

        with Subscriber(self.endpoint, ["status"]) as sub:
            while not self._stop.is_set():
                msg = sub.recv(timeout_s=0.5)
                if msg is not None and self.recording:
                    self.values.append(float(msg[1]["extraction_fps"]))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return statistics.mean(self.values) if self.values else 0.0


def live_run(model: Path, clip: Path, transport: str, flags: list[str], seconds: float, nice: int) -> LiveRun:
    """Cores and per-thread-group cores of the daemon over ``seconds`` of a looped live stream of
    ``clip`` served over ``transport`` ("h264": MPEG-TS over TCP, "mjpeg": multipart JPEG over HTTP)."""
    server, source = serve(clip, transport)
    endpoint = free_endpoint()
    args = daemon_args(model, source, 8, endpoint)
    rate = StatusRate(endpoint)
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen([*args, *flags], cwd=REPO, stdout=log, stderr=log, preexec_fn=niced(nice))
            try:
                time.sleep(SETTLE_S)
                before, start = thread_cpu(proc.pid), time.monotonic()
                rate.recording = True
                time.sleep(seconds)
                rate.recording = False
                after, elapsed = thread_cpu(proc.pid), time.monotonic() - start
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        finally:
            server.kill()
            server.wait()
            looks = rate.stop()
        groups = dict.fromkeys(GROUPS, 0.0)
        for tid, (name, cpu) in after.items():
            used = cpu - before.get(tid, (name, 0.0))[1]
            groups[group_of(tid, name, proc.pid)] += used / elapsed
        log.seek(0)
        text = log.read().decode(errors="replace")
    return LiveRun(sum(groups.values()), groups, looks, os.getloadavg()[0], text)


def file_fps(model: Path, video: Path, flags: list[str], nice: int) -> float:
    args = [*daemon_args(model, video, 8, free_endpoint()), *flags]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, preexec_fn=niced(nice))
    match = SUMMARY.search(out.stderr + out.stdout)
    if out.returncode != 0 or match is None:
        raise SystemExit(f"daemon failed:\n{out.stderr[-2000:]}")
    return float(match["fps"])


def process_cpu() -> float:
    """CPU-seconds of this process, all threads (FFmpeg's decoder threads and OpenCV's too)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def capture_costs(clip: Path, frames: int = 150, repeats: int = 3) -> dict[tuple[str, str], float]:
    """CPU ms per frame of the capture's steps on an H.264 ``clip``, in process: (decoder threads, step) → ms.

    Steps: ``grab`` (demux + decode: what every frame of an H.264 stream costs), ``+ BGR``
    (``retrieve``: OpenCV's YUV → BGR), ``+ RGB`` (the conversion MediaPipe needs, which the
    daemon makes only for frames it uses). Decoder threads: OpenCV's default (one per core, frame
    threading) and 1 (what the daemon uses for live streams). Each figure is the median of
    ``repeats`` passes, all cases alternating, so background load hits them alike.
    """
    import cv2
    import numpy as np

    passes: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        for threads, params in (("default", []), ("1", [cv2.CAP_PROP_N_THREADS, 1])):
            for step in ("grab", "+ BGR", "+ RGB"):
                cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, params)
                start, done = process_cpu(), 0
                while done < frames:
                    if step == "grab":
                        ok = cap.grab()
                    else:
                        ok, bgr = cap.read()
                        if ok and step == "+ RGB":
                            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=np.empty_like(bgr))
                    if not ok:
                        break
                    done += 1
                passes.setdefault((threads, step), []).append((process_cpu() - start) / max(1, done) * 1000)
                cap.release()
    return {key: statistics.median(values) for key, values in passes.items()}


def mjpeg_costs(clip: Path, frames: int = 150, repeats: int = 3) -> dict[str, float]:
    """CPU ms per frame of the capture's steps on an MJPEG ``clip``, in process: step → ms.

    ``packet``: reading the JPEG bytes with OpenCV, undecoded (``CAP_PROP_FORMAT`` -1 before the
    first read: ``read()`` returns them as a 1×N uint8 array), what every frame of an MJPEG network
    stream costs; ``+ 1/8``: packet + ``imdecode(IMREAD_REDUCED_COLOR_8)`` (the motion gate's
    1/8-scale DCT decode); ``+ full``: packet + ``imdecode(IMREAD_COLOR)``; ``+ RGB``: packet + full
    decode + BGR → RGB (a frame MediaPipe looks at); ``grab`` / ``read``: FFmpeg's own decode, and
    + YUV → BGR, on one decoder thread (what the daemon uses for live streams), for comparison.
    Each figure is the median of ``repeats`` passes of up to ``frames`` frames, all steps alternating.
    """
    import cv2
    import numpy as np

    passes: dict[str, list[float]] = {}
    for _ in range(repeats):
        for step in MJPEG_STEPS:
            raw = step not in ("grab", "read")
            cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, [] if raw else [cv2.CAP_PROP_N_THREADS, 1])
            if raw and not cap.set(cv2.CAP_PROP_FORMAT, -1):
                raise SystemExit(f"{clip}: OpenCV cannot return raw packets (CAP_PROP_FORMAT -1)")
            start, done = process_cpu(), 0
            while done < frames:
                if step == "grab":
                    ok = cap.grab()
                else:
                    ok, buf = cap.read()
                    if ok and step == "+ 1/8":
                        ok = cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_8) is not None
                    elif ok and step in ("+ full", "+ RGB"):
                        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
                        ok = bgr is not None
                        if ok and step == "+ RGB":
                            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=np.empty_like(bgr))
                if not ok:
                    break
                done += 1
            if not done:
                raise SystemExit(f"{clip}: no frame for step {step!r}")
            passes.setdefault(step, []).append((process_cpu() - start) / done * 1000)
            cap.release()
    return {key: statistics.median(values) for key, values in passes.items()}


def look_costs(person: Path, room: Path, looks: int = 60, step: int = 10) -> dict[str, float]:
    """CPU ms per MediaPipe look, in process, at the idle sample spacing (every ``step``-th frame).

    What one idle look at the person at rest consists of: Holistic (what the daemon runs), and
    its parts run alone on the same frames (Pose: the same pose detector and landmark model;
    Face Mesh: the face landmark model, tracking; Hands: palm detection + hand landmarks), plus
    Holistic on the empty room (no person: the pose detector alone). Also the largest wrist
    visibility Holistic's pose gives on the person at rest: its graph runs the hand models for a
    wrist above 0.1.
    """
    import cv2
    import mediapipe as mp

    from edge.keypoints.holistic import native_stderr_silenced

    def frames_of(clip: Path) -> list:
        cap, out = cv2.VideoCapture(str(clip)), []
        while (got := cap.read())[0]:
            rgb = cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB)
            rgb.flags.writeable = False
            out.append(rgb)
        cap.release()
        return out

    person_frames, room_frames = frames_of(person), frames_of(room)
    solutions = mp.solutions

    def holistic() -> Any:
        return solutions.holistic.Holistic(model_complexity=1)

    cases = {  # name: (graph, frames, spacing)
        "holistic": (holistic, person_frames, step),
        "holistic, every frame": (holistic, person_frames, 1),
        "pose": (lambda: solutions.pose.Pose(model_complexity=1), person_frames, step),
        "face": (lambda: solutions.face_mesh.FaceMesh(), person_frames, step),
        "hands": (lambda: solutions.hands.Hands(model_complexity=1), person_frames, step),
        "holistic, empty room": (holistic, room_frames, step),
    }
    out: dict[str, float] = {}
    wrist = 0.0
    for name, (make, frames, spacing) in cases.items():
        with native_stderr_silenced():
            graph = make()
            graph.process(frames[0])
        start = time.process_time()
        for i in range(looks):
            result = graph.process(frames[(i * spacing) % len(frames)])
            if name == "holistic" and result.pose_landmarks is not None:
                points = result.pose_landmarks.landmark
                wrist = max(wrist, points[15].visibility, points[16].visibility)
        out[name] = (time.process_time() - start) / looks * 1000
        graph.close()
    out["wrist visibility"] = wrist
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def parse_transports(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TRANSPORTS]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of distinct transports from {', '.join(TRANSPORTS)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model to serve (default: the tiny test model)")
    parser.add_argument("--video", type=Path, default=SAMPLE)
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU measuring time per run")
    parser.add_argument(
        "--wake-seconds", type=float, default=80.0, help="length of the wake-up run (per transport)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of every scene x config x transport"
    )
    parser.add_argument(
        "--transports",
        type=parse_transports,
        default=list(TRANSPORTS),
        help=f"comma-separated live transports to compare (default: {','.join(TRANSPORTS)})",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the daemons under test (root may give a negative one, so that a shared "
        "machine's load does not cap the CPU share they can use)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench_idle_results.json",
        help="where the measurements are saved (JSON) before the report is made (default: %(default)s)",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: make the report from the measurements saved in --results",
    )
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads(args.results.read_text())
    else:
        data = measure(args)
        args.results.write_text(json.dumps(data, indent=1))
        print(f"measurements saved in {args.results}", flush=True)
    markdown = report(data)
    print(markdown)
    if not args.no_write:
        write_section("idle", markdown)
    return 0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of the benchmark, as JSON-ready data (see :func:`report`)."""
    transports: list[str] = args.transports
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(Path(tmp))
        streams = build_streams(Path(tmp), args.video, transports)
        costs: dict[str, dict[tuple[str, str], float]] = {}
        jpeg_costs: dict[str, dict[str, float]] = {}
        for scene in SCENES:  # the scene's H.264 and MJPEG clips one after the other
            if "h264" in transports:
                costs[scene] = capture_costs(streams[("h264", scene)])
                print(
                    f"h264  {scene:8}",
                    " ".join(f"{t}/{step} {ms:.2f} ms" for (t, step), ms in costs[scene].items()),
                    flush=True,
                )
            if "mjpeg" in transports:
                jpeg_costs[scene] = mjpeg_costs(streams[("mjpeg", scene)])
                print(
                    f"mjpeg {scene:8}",
                    " ".join(f"{step} {ms:.3f} ms" for step, ms in jpeg_costs[scene].items()),
                    flush=True,
                )
        first = transports[0]
        per_look = look_costs(streams[(first, "person")], streams[(first, "room")])
        print("MediaPipe per look:", {k: round(v, 2) for k, v in per_look.items()}, flush=True)
        runs: dict[tuple[str, str, str], list[LiveRun]] = {}
        for _ in range(args.rounds):
            for scene in SCENES:
                for label, flags in CONFIGS.items():
                    for transport in transports:
                        clip = streams[(transport, scene)]
                        run = live_run(model, clip, transport, flags, args.seconds, args.nice)
                        runs.setdefault((transport, scene, label), []).append(run)
                        parts = " ".join(f"{g} {c:.3f}" for g, c in run.groups.items())
                        print(
                            f"{transport:5} {scene:8} {label:17} {run.cores:.3f} cores ({parts}); "
                            f"{run.looks_per_s:.2f} looks/s; load {run.load:.2f}",
                            flush=True,
                        )
        wakes: dict[str, list[float]] = {}
        wake_logs: dict[str, str] = {}
        for transport in transports:
            wake = live_run(model, streams[(transport, "wake")], transport, [], args.wake_seconds, args.nice)
            wakes[transport] = [float(m) for m in AWAKE.findall(wake.log)]
            wake_logs[transport] = wake.log
            lat = SEGMENT_LATENCY.search(wake.log)
            print(
                f"{transport:5} wake-ups {wakes[transport]} ms; "
                f"segment latency {lat.groups() if lat else None}; load {wake.load:.2f}",
                flush=True,
            )
        file_runs: dict[str, list[float]] = {"off": [], "on": []}
        hands = streams[("file", "hands")]
        for _ in range(max(3, args.rounds)):  # alternating off/on; each run is only seconds long
            file_runs["off"].append(file_fps(model, hands, CONFIGS["duty off"], args.nice))
            file_runs["on"].append(file_fps(model, hands, [], args.nice))
        print(f"hands present: {file_runs['off']} vs {file_runs['on']} frames/s", flush=True)
        model_name = model.name if args.model else "tiny test model (helpers_onnx)"

    load_after = os.getloadavg()
    wake_latency = {
        t: (m.groups() if (m := SEGMENT_LATENCY.search(text)) else None) for t, text in wake_logs.items()
    }
    wake_segments = {
        t: (int(m.group(1)) if (m := SEGMENTS.search(text)) else 0) for t, text in wake_logs.items()
    }
    return {
        "transports": transports,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "nice": args.nice,
        "model": model_name,
        "costs": {
            scene: {f"{t}|{step}": ms for (t, step), ms in cost.items()} for scene, cost in costs.items()
        },
        "jpeg_costs": jpeg_costs,
        "per_look": per_look,
        "runs": {
            "|".join(key): [
                {"cores": r.cores, "groups": r.groups, "looks_per_s": r.looks_per_s, "load": r.load}
                for r in values
            ]
            for key, values in runs.items()
        },
        "wakes": wakes,
        "wake_latency": wake_latency,
        "wake_segments": wake_segments,
        "file_runs": file_runs,
        "load_before": list(load_before),
        "load_after": list(load_after),
    }


def report(data: dict[str, Any]) -> str:
    """The markdown section for docs/BENCHMARKS.md from :func:`measure`'s data."""
    from edge.daemon.config import DaemonConfig

    transports: list[str] = data["transports"]
    costs = {
        scene: {tuple(key.split("|", 1)): ms for key, ms in cost.items()}
        for scene, cost in data["costs"].items()
    }
    jpeg_costs: dict[str, dict[str, float]] = data["jpeg_costs"]
    per_look: dict[str, float] = data["per_look"]
    runs = {
        tuple(key.split("|")): [
            LiveRun(r["cores"], r["groups"], r["looks_per_s"], r["load"], "") for r in values
        ]
        for key, values in data["runs"].items()
    }
    wakes: dict[str, list[float]] = data["wakes"]
    file_runs: dict[str, list[float]] = data["file_runs"]
    fps_off, fps_on = (statistics.median(file_runs[k]) for k in ("off", "on"))
    load_before, load_after = data["load_before"], data["load_after"]
    defaults = DaemonConfig(model="m")
    idle_fps = defaults.idle_fps
    from edge.recognition.segmenter import Segmenter, capacity_for

    capacity = capacity_for(defaults.max_segment_s, 30.0)
    seg_mib = Segmenter(defaults.gap_s, defaults.max_segment_s, 1, capacity).nbytes / 2**20
    budget_ms = 1000.0 / idle_fps + 1000.0 / 30.0

    def med(transport: str, scene: str, label: str, pick: Callable[[LiveRun], float]) -> float:
        return statistics.median(pick(r) for r in runs[(transport, scene, label)])

    lines = [
        "## Idle economy on live scenes: duty cycle and motion gate (`benchmarks/bench_idle.py`)",
        "",
        "Live 30 fps streams over "
        + " and ".join(f"`{t}` ({TRANSPORTS[t][0]})" for t in transports)
        + " (`ffmpeg -re`, the same scenes built with the same filters for each; "
        f"`h264`: `-f mpegts tcp://127.0.0.1:PORT?listen=1`; `mjpeg`: `-f mpjpeg -listen 1 "
        f"http://127.0.0.1:PORT/cam.mjpg`, as an MJPEG network camera serves it), model "
        f"`{data['model']}`, idle_fps {idle_fps:g}, "
        f"idle_after_s {defaults.idle_after_s:g}, idle_motion {defaults.idle_motion:g} %, "
        f"idle_keepalive_s {defaults.idle_keepalive_s:g}; cores = the daemon's CPU-seconds per second "
        f"(all threads) over {data['seconds']:g} s after it went idle, median of {data['rounds']} round(s) "
        "alternating scene × config × transport.",
        "",
        "| scene | transport | duty off | duty on, no gate | duty on + gate | gate / no gate | "
        "target (stretch) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for scene, title in SCENES.items():
        for transport in transports:
            off, nogate, gate = (med(transport, scene, label, lambda r: r.cores) for label in CONFIGS)
            mark = "✓" if gate <= TARGETS[scene] else "✗"
            stretch = " ✓" if gate <= STRETCH[scene] else ""
            gate_ratio = f"{gate / nogate:.2f}" if nogate > 0 else "-"
            lines.append(
                f"| {title} | {transport} | {off:.3f} | {nogate:.3f} | {gate:.3f} | {gate_ratio} | "
                f"≤ {TARGETS[scene]} {mark} (≤ {STRETCH[scene]}{stretch}) |"
            )
    lines += [
        "",
        "Per thread group with the gate (cores), MediaPipe looks per second (from `status`), and the "
        f"cost of one idle sample period ({1000 / idle_fps:.0f} ms): the daemon's CPU per sample, and "
        "MediaPipe's CPU per sample, without the gate / with it:",
        "",
        "| scene | transport | MediaPipe | capture + decode | main | other | "
        "Holistic looks/s, no gate / gate | CPU per idle sample, no gate / gate | "
        "MediaPipe CPU per idle sample, no gate / gate "
        "| MediaPipe CPU per look (gate) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    duty_on = list(CONFIGS)[1:]
    for scene, title in SCENES.items():
        for transport in transports:
            groups = [
                med(transport, scene, "duty on + gate", lambda r, g=g: r.groups[g])  # type: ignore[misc]
                for g in GROUPS
            ]
            looks = [med(transport, scene, label, lambda r: r.looks_per_s) for label in duty_on]
            per_sample = [
                med(transport, scene, label, lambda r: r.cores) / idle_fps * 1000 for label in duty_on
            ]
            mediapipe_per_sample = [  # MediaPipe's CPU over one sample period
                med(transport, scene, label, lambda r: r.groups["mediapipe"]) / idle_fps * 1000
                for label in duty_on
            ]
            lines.append(
                f"| {title.split(',')[0]} | {transport} | "
                + " | ".join(f"{g:.3f}" for g in groups)
                + f" | {looks[0]:.2f} / {looks[1]:.2f} | {per_sample[0]:.0f} / {per_sample[1]:.0f} ms"
                + f" | {mediapipe_per_sample[0]:.0f} / {mediapipe_per_sample[1]:.0f} ms"
                + (f" | {groups[0] / looks[1] * 1000:.0f} ms |" if looks[1] > 0 else " | - |")
            )
    if costs:
        lines += [
            "",
            "With H.264 what remains is the capture. CPU per frame of its steps on the H.264 clips, "
            "in process (FFmpeg decoder threads: OpenCV's default / 1, what the daemon uses for live "
            "streams); every frame of an H.264 live stream pays decode + BGR, the RGB conversion only "
            "frames that are used (extracted or looked at):",
            "",
            "| scene | decode (`grab`) | + YUV→BGR (`retrieve`) | + BGR→RGB | "
            "decode + BGR at 30 fps, 1 thread |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for scene, title in SCENES.items():
            cost = costs[scene]

            def step(name: str, cost: dict[tuple[str, str], float] = cost) -> str:
                return f"{cost[('default', name)]:.2f} / {cost[('1', name)]:.2f} ms"

            lines.append(
                f"| {title.split(',')[0]} | {step('grab')} | {step('+ BGR')} | {step('+ RGB')} | "
                f"{cost[('1', '+ BGR')] * 30 / 1000:.3f} cores |"
            )
    if jpeg_costs:
        lines += [
            "",
            "Per source kind: CPU per frame of an MJPEG network stream's capture steps on the MJPEG "
            "clips, in process. OpenCV reads the JPEG bytes of a frame without decoding them "
            "(`CAP_PROP_FORMAT` -1); each later column adds a decode with `cv2.imdecode` to that "
            "read (the 1/8-scale one is what the motion gate measures, the full one plus BGR→RGB "
            "what a frame MediaPipe looks at costs); FFmpeg's own MJPEG decode (`grab`, and + BGR "
            "with `read`, one decoder thread) for comparison:",
            "",
            "| scene | "
            + " | ".join(MJPEG_STEPS.values())
            + " | packets at 30 fps | "
            + ("H.264 decode + BGR at 30 fps |" if costs else "FFmpeg decode + BGR at 30 fps |"),
            "| --- |" + " ---: |" * (len(MJPEG_STEPS) + 2),
        ]
        for scene, title in SCENES.items():
            jcost = jpeg_costs[scene]
            other = costs[scene][("1", "+ BGR")] if costs else jcost["read"]
            lines.append(
                f"| {title.split(',')[0]} | "
                + " | ".join(
                    f"{jcost[key]:.3f} ms" if key == "packet" else f"{jcost[key]:.2f} ms"
                    for key in MJPEG_STEPS
                )
                + f" | {jcost['packet'] * 30 / 1000:.4f} cores | {other * 30 / 1000:.3f} cores |"
            )
    lines += [
        "",
        "An H.264 (or H.265) stream or file must decode every frame, since later frames refer to "
        "it; only the conversions can be skipped: the daemon makes the RGB one only for frames it "
        "uses, and decodes a live stream on one thread. An MJPEG network stream is kept as JPEG "
        "bytes: a frame that is never used is never decoded, the motion gate measures a 1/8-scale "
        "DCT decode of its sample, and only frames MediaPipe looks at (or replays after a wake-up) "
        "are fully decoded. V4L2 cameras still decode every frame in OpenCV's V4L2 backend, MJPEG "
        "or YUYV alike (not changed: there is no camera on this machine to prove it with).",
    ]
    if costs and jpeg_costs:
        room_h264 = costs["room"][("1", "+ BGR")] * 30 / 1000
        room_jpeg = jpeg_costs["room"]["packet"] * 30 / 1000
        lines[-1] += (
            f" On the empty room at 30 fps, H.264 decode + BGR of every frame costs {room_h264:.3f} "
            f"cores in process on this machine, reading the MJPEG packets {room_jpeg:.4f} cores."
        )
    lines += [
        "",
        "What one idle look costs: CPU per MediaPipe call, in process, on every 10th frame (the "
        "idle sample spacing) of the person at rest, for Holistic and for its parts run alone:",
        "",
        "| graph | CPU per look |",
        "| --- | ---: |",
        f"| Holistic, person at rest (what the daemon runs) | {per_look['holistic']:.1f} ms |",
        f"| Holistic, person at rest, every frame (full rate, for comparison) | "
        f"{per_look['holistic, every frame']:.1f} ms |",
        f"| Pose alone (the same pose detector and landmark model) | {per_look['pose']:.1f} ms |",
        f"| Face Mesh alone (face landmarks, tracking) | {per_look['face']:.1f} ms |",
        f"| Hands alone (palm detection + hand landmarks) | {per_look['hands']:.1f} ms |",
        f"| Holistic, empty room (no person: the pose detector only) | "
        f"{per_look['holistic, empty room']:.1f} ms |",
        "",
        f"An idle look costs about what a full-rate frame costs ({per_look['holistic']:.0f} vs "
        f"{per_look['holistic, every frame']:.0f} ms: tracking holds between samples, the pose is "
        "followed from the previous look, not detected anew), so nothing idle-specific is left "
        "in it. Most of a look at a person is Holistic itself: its pose "
        "model, and its hand models, which its graph runs for every wrist whose pose visibility "
        "exceeds 0.1 (a threshold in the graph, not a setting): the person at rest reaches "
        f"{per_look['wrist visibility']:.2f} with no hand in view. A cheaper pre-check that "
        "skipped those looks would have to agree with Holistic's hand model, which only that "
        "model can (a Hands-lite pre-check missed hands Holistic finds, and was not taken).",
    ]
    lines += ["", "| figure | value |", "| --- | --- |"]
    for transport in transports:
        values = wakes[transport]
        wake_text = (
            f"p50 {percentile(values, 50):.0f} ms, p95 {percentile(values, 95):.0f} ms, "
            f"max {max(values):.0f} ms (target p95 ≤ {budget_ms:.0f} ms) "
            f"{'✓' if percentile(values, 95) <= budget_ms else '✗'}"
            if values
            else f"no wake-up seen (target p95 ≤ {budget_ms:.0f} ms) ✗"
        )
        latency = data["wake_latency"].get(transport)
        p50, p95 = latency if latency else ("-", "-")
        lines += [
            f"| wake-up from the noisy empty room, first hand frame → full-rate extraction "
            f"({transport}, live, gate on, {len(values)} wake-ups) | {wake_text} |",
            f"| segment: episode end → publish latency p50 / p95 ({transport}, live, "
            f"{data['wake_segments'].get(transport, 0)} segments) | {p50} / {p95} ms |",
        ]
    ratio = fps_on / fps_off
    lines += [
        f"| frames/s with hands present (the sample 4× as a file, median of {len(file_runs['off'])} "
        f"alternating runs), duty cycle off / on with the gate | {fps_off:.2f} / {fps_on:.2f} "
        f"(ratio {ratio:.2f}, target ≥ 0.98 {'✓' if ratio >= 0.98 else '✗'}) |",
        f"| memory for a maximal segment ({defaults.max_segment_s:g} s, room for {capacity} frames at 2× "
        f"30 fps) | {seg_mib:.1f} MiB preallocated, plus one copy of the episode while it is classified |",
        "",
        f"1-minute load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} on "
        f"{os.cpu_count()} cores (per run: "
        + ", ".join(f"{r.load:.1f}" for rs in runs.values() for r in rs)
        + f"), daemons under test at niceness {data['nice']}."
        + (
            " The machine was shared with other work, which inflates CPU time per frame: compare "
            "the columns of one row."
            if max(load_before[0], load_after[0]) > (os.cpu_count() or 1) / 2
            else ""
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
