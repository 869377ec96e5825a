"""Idle economy on realistic live scenes, side by side in one run: duty cycle, motion gate, wake-up.

* **Idle CPU** of ``slr-edge run`` (cores = CPU-seconds per wall-second, all threads, from
  ``/proc/PID/task/*/stat``) over ``--seconds`` of a live 30 fps stream (``ffmpeg -re`` into a
  local MPEG-TS socket), after the daemon went idle, per thread group (MediaPipe's threads, the
  capture thread with FFmpeg's decoder threads, the main thread, the rest), for three scenes:

  - **empty room**: a still crop of the sample's background (wall and table) scaled to 1280x720,
    with temporal sensor noise (ffmpeg ``noise=alls=8:allf=t``: ~2.6 grey levels after encoding);
  - **test pattern**: ffmpeg's ``testsrc2`` 1280x720, moving colour bars and a counter;
  - **person at rest**: the sample's hand-free frames 96–111 looped, 720x1280;

  each with the duty cycle off (``--idle-fps 0``), on without the motion gate
  (``--idle-motion 0``) and on with it (the defaults). Runs alternate scene by scene and round by
  round, so background load hits every configuration alike. From the daemon's ``status`` messages
  during the same window: MediaPipe looks per second, hence **CPU per idle sample** (the daemon's
  CPU over one sample period) and **MediaPipe's CPU per look**.
* **Capture cost per frame** (in process, on the same clips): decode, YUV → BGR, BGR → RGB, with
  FFmpeg's default decoder threads and with one (what the daemon uses for live streams).
* **Wake-up** (first frame with a hand reaching extraction → full-rate extraction, from the
  daemon's "awake" log lines), p50/p95, and the segment latency, on a live stream of 4 s of the
  noisy empty room (720x1280) followed by the sample clip, looped; gate on.
* **Frames/s with hands present**, duty cycle off vs on with the gate (the sample 4x as a file,
  alternating runs): the gate must not slow full-rate extraction (ratio >= 0.98).
* **Memory for a maximal segment** (the segmenter's preallocated storage).

Streams are built at run time with ffmpeg from ``../shared/samples/slovo_sample.mp4`` (never
stored). Figures go to ``docs/BENCHMARKS.md`` (section "idle"). The load average is printed with
every run: on a shared machine run it when ``uptime`` is lowest.

    python benchmarks/bench_idle.py [--model M.onnx] [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
#: The sample's background beside the signer (frame 100): wall and table, no person.
ROOM_CROP = "crop=160:90:0:820"
NOISE = "noise=alls=8:allf=t"
SCENES = {
    "room": "empty room, 1280x720 (sample's background, sensor noise)",
    "pattern": "test pattern, 1280x720 (testsrc2)",
    "person": "person at rest, 720x1280 (sample's hand-free frames 96–111, looped)",
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


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, stdin=subprocess.DEVNULL)


def build_streams(tmp: Path, video: Path) -> dict[str, Path]:
    """The benchmark's clips (H.264, 30 fps), made from the sample at run time."""
    x264 = ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "30")
    still = "select='eq(n,100)'," + ROOM_CROP + ",scale={size},loop=-1:1:0," + NOISE
    room = tmp / "room.mp4"
    ffmpeg(
        "-i",
        str(video),
        "-vf",
        still.format(size="1280:720"),
        "-frames:v",
        "300",
        "-r",
        "30",
        *x264,
        str(room),
    )
    pattern = tmp / "pattern.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", "-t", "10", *x264, str(pattern))
    person = tmp / "person.mp4"  # frames 96..111 of the sample: the signer, hands down
    ffmpeg("-i", str(video), "-vf", "select='gte(n,96)',setpts=N/30/TB", "-r", "30", *x264, str(person))
    wake = tmp / "wake.mp4"  # 4 s of the noisy room (portrait, like the clip), then the clip
    ffmpeg(
        *("-i", str(video), "-i", str(video), "-filter_complex"),
        f"[0:v]{still.format(size='720:1280')},trim=end_frame=120,setpts=N/30/TB,format=yuv420p[a];"
        "[1:v]format=yuv420p,fps=30[b];[a][b]concat=n=2:v=1",
        *x264,
        str(wake),
    )
    listing = tmp / "four_times.txt"  # the sample 4 times over (stream copy): a file long enough to time
    listing.write_text(f"file '{video.resolve()}'\n" * 4)
    hands = tmp / "hands.mp4"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(hands))
    return {"room": room, "pattern": pattern, "person": person, "wake": wake, "hands": hands}


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
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        from edge.runtime.publisher import Subscriber

        with Subscriber(self.endpoint, ["status"]) as sub:
            while not self._stop.is_set():
                msg = sub.recv(timeout_s=0.5)
                if msg is not None and self.recording:
                    self.values.append(float(msg[1]["extraction_fps"]))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return statistics.mean(self.values) if self.values else 0.0


def live_run(model: Path, clip: Path, flags: list[str], seconds: float, nice: int) -> LiveRun:
    """Cores and per-thread-group cores of the daemon over ``seconds`` of a looped live stream of ``clip``."""
    port = free_port()
    server = subprocess.Popen(
        [
            *("ffmpeg", "-loglevel", "quiet", "-re", "-stream_loop", "-1", "-i", str(clip)),
            *("-c", "copy", "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"),
        ],
        stdin=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    endpoint = free_endpoint()
    args = daemon_args(model, f"tcp://127.0.0.1:{port}", 8, endpoint)
    rate = StatusRate(endpoint)
    with tempfile.TemporaryFile() as log:
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


def capture_costs(clip: Path, frames: int = 150, repeats: int = 3) -> dict[tuple[str, str], float]:
    """CPU ms per frame of the capture's steps on ``clip``, in process: (decoder threads, step) → ms.

    Steps: ``grab`` (demux + decode: what every frame of an H.264 stream costs), ``+ BGR``
    (``retrieve``: OpenCV's YUV → BGR), ``+ RGB`` (the conversion MediaPipe needs, which the
    daemon makes only for frames it uses). Decoder threads: OpenCV's default (one per core, frame
    threading) and 1 (what the daemon uses for live streams). Each figure is the median of
    ``repeats`` passes, all cases alternating, so background load hits them alike.
    """
    import resource

    import cv2
    import numpy as np

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads: FFmpeg's decoder threads too
        return usage.ru_utime + usage.ru_stime

    passes: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        for threads, params in (("default", []), ("1", [cv2.CAP_PROP_N_THREADS, 1])):
            for step in ("grab", "+ BGR", "+ RGB"):
                cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG, params)
                start, done = cpu(), 0
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
                passes.setdefault((threads, step), []).append((cpu() - start) / max(1, done) * 1000)
                cap.release()
    return {key: statistics.median(values) for key, values in passes.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model to serve (default: the tiny test model)")
    parser.add_argument("--video", type=Path, default=SAMPLE)
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU measuring time per run")
    parser.add_argument("--wake-seconds", type=float, default=80.0, help="length of the wake-up run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of every scene x config")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the daemons under test (root may give a negative one, so that a shared "
        "machine's load does not cap the CPU share they can use)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    from edge.runtime.config import DaemonConfig

    defaults = DaemonConfig(model="m")
    idle_fps = defaults.idle_fps
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(Path(tmp))
        streams = build_streams(Path(tmp), args.video)
        costs = {scene: capture_costs(streams[scene]) for scene in SCENES}
        for scene, cost in costs.items():
            print(scene, " ".join(f"{t}/{step} {ms:.2f} ms" for (t, step), ms in cost.items()), flush=True)
        runs: dict[tuple[str, str], list[LiveRun]] = {}
        for _ in range(args.rounds):
            for scene in SCENES:
                for label, flags in CONFIGS.items():
                    run = live_run(model, streams[scene], flags, args.seconds, args.nice)
                    runs.setdefault((scene, label), []).append(run)
                    parts = " ".join(f"{g} {c:.3f}" for g, c in run.groups.items())
                    print(
                        f"{scene:8} {label:17} {run.cores:.3f} cores ({parts}); "
                        f"{run.looks_per_s:.2f} looks/s; load {run.load:.2f}",
                        flush=True,
                    )
        wake = live_run(model, streams["wake"], [], args.wake_seconds, args.nice)
        wakes = [float(m) for m in AWAKE.findall(wake.log)]
        lat = SEGMENT_LATENCY.search(wake.log)
        segs = SEGMENTS.search(wake.log)
        print(f"wake-ups {wakes} ms; segment latency {lat.groups() if lat else None}", flush=True)
        file_runs: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(max(3, args.rounds)):  # alternating off/on; each run is only seconds long
            file_runs["off"].append(file_fps(model, streams["hands"], CONFIGS["duty off"], args.nice))
            file_runs["on"].append(file_fps(model, streams["hands"], [], args.nice))
        fps_off, fps_on = (statistics.median(file_runs[k]) for k in ("off", "on"))
        print(f"hands present: {file_runs['off']} vs {file_runs['on']} frames/s", flush=True)

    load_after = os.getloadavg()
    from edge.runtime.segmenter import Segmenter, capacity_for

    capacity = capacity_for(defaults.max_segment_s, 30.0)
    seg_mib = Segmenter(defaults.gap_s, defaults.max_segment_s, 1, capacity).nbytes / 2**20
    budget_ms = 1000.0 / idle_fps + 1000.0 / 30.0
    p50, p95 = lat.groups() if lat else ("-", "-")

    def med(scene: str, label: str, pick: Callable[[LiveRun], float]) -> float:
        return statistics.median(pick(r) for r in runs[(scene, label)])

    lines = [
        "## Idle economy on live scenes: duty cycle and motion gate (`benchmarks/bench_idle.py`)",
        "",
        f"Live 30 fps H.264 streams (`ffmpeg -re` into a local MPEG-TS socket), model "
        f"`{model.name if args.model else 'tiny test model (helpers_onnx)'}`, idle_fps {idle_fps:g}, "
        f"idle_after_s {defaults.idle_after_s:g}, idle_motion {defaults.idle_motion:g} %, "
        f"idle_keepalive_s {defaults.idle_keepalive_s:g}; cores = the daemon's CPU-seconds per second "
        f"(all threads) over {args.seconds:g} s after it went idle, median of {args.rounds} alternating "
        "round(s).",
        "",
        "| scene | duty off | duty on, no gate | duty on + gate | gate / no gate | target (stretch) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for scene, title in SCENES.items():
        off, nogate, gate = (med(scene, label, lambda r: r.cores) for label in CONFIGS)
        mark = "✓" if gate <= TARGETS[scene] else "✗"
        stretch = " ✓" if gate <= STRETCH[scene] else ""
        lines.append(
            f"| {title} | {off:.3f} | {nogate:.3f} | {gate:.3f} | {gate / nogate:.2f} | "
            f"≤ {TARGETS[scene]} {mark} (≤ {STRETCH[scene]}{stretch}) |"
        )
    lines += [
        "",
        "Per thread group with the gate (cores), MediaPipe looks per second (from `status`), and the "
        f"cost of one idle sample period ({1000 / idle_fps:.0f} ms): the daemon's CPU per sample, and "
        "MediaPipe's CPU per sample, without the gate / with it:",
        "",
        "| scene | MediaPipe | capture + decode | main | other | Holistic looks/s, no gate / gate | "
        "CPU per idle sample, no gate / gate | MediaPipe CPU per idle sample, no gate / gate "
        "| MediaPipe CPU per look (gate) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scene, title in SCENES.items():
        groups = [med(scene, "duty on + gate", lambda r, g=g: r.groups[g]) for g in GROUPS]  # type: ignore[misc]
        looks = [med(scene, label, lambda r: r.looks_per_s) for label in list(CONFIGS)[1:]]
        per_sample = [med(scene, label, lambda r: r.cores) / idle_fps * 1000 for label in list(CONFIGS)[1:]]
        per_look = [  # MediaPipe's CPU over one sample period
            med(scene, label, lambda r: r.groups["mediapipe"]) / idle_fps * 1000
            for label in list(CONFIGS)[1:]
        ]
        lines.append(
            f"| {title.split(',')[0]} | "
            + " | ".join(f"{g:.3f}" for g in groups)
            + f" | {looks[0]:.2f} / {looks[1]:.2f} | {per_sample[0]:.0f} / {per_sample[1]:.0f} ms"
            + f" | {per_look[0]:.0f} / {per_look[1]:.0f} ms"
            + (f" | {groups[0] / looks[1] * 1000:.0f} ms |" if looks[1] > 0 else " | - |")
        )
    lines += [
        "",
        "What remains is the capture. CPU per frame of its steps, in process on the same clips "
        "(FFmpeg decoder threads: OpenCV's default / 1, what the daemon uses for live streams); every "
        "frame of a live stream pays decode + BGR, the RGB conversion only frames that are used "
        "(extracted or looked at):",
        "",
        "| scene | decode (`grab`) | + YUV→BGR (`retrieve`) | + BGR→RGB | decode + BGR at 30 fps, 1 thread |",
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
    lines += [
        "",
        "Per source kind: a network stream or file (H.264/H.265) must decode every frame, since later "
        "frames refer to it; only the conversions can be skipped, and the daemon skips the RGB one for "
        "frames it never uses (held idle frames that a still sample lets go, gated samples, frames the "
        "one-slot box drops at full rate), and decodes a live stream on one thread (no frame "
        "threading: less CPU handing frames between threads, no frame of delay). A V4L2 camera "
        "delivering MJPEG or YUYV could skip the whole decode (`grab()` without `retrieve()`) of a "
        "frame known to be dropped, but while idle every frame is held for the wake-up replay until "
        "the next sample decides, and at full rate the box can only tell a frame was dropped after a "
        "newer one arrived; so the daemon decodes every frame of every source kind. On a 720p 30 fps "
        "H.264 stream that decode alone is most of the empty room's budget on this machine; a device "
        "meant to idle cheaply wants a hardware decoder or a lower-resolution stream.",
    ]
    wake_text = (
        f"p50 {percentile(wakes, 50):.0f} ms, p95 {percentile(wakes, 95):.0f} ms, max {max(wakes):.0f} ms "
        f"(target p95 ≤ {budget_ms:.0f} ms) {'✓' if percentile(wakes, 95) <= budget_ms else '✗'}"
        if wakes
        else "no wake-up seen"
    )
    ratio = fps_on / fps_off
    lines += [
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| wake-up from the noisy empty room, first hand frame → full-rate extraction (live, gate on, "
        f"{len(wakes)} wake-ups) | {wake_text} |",
        f"| segment: episode end → publish latency p50 / p95 (live, {segs.group(1) if segs else 0} segments) "
        f"| {p50} / {p95} ms |",
        f"| frames/s with hands present (the sample 4× as a file, median of {len(file_runs['off'])} "
        f"alternating runs), duty cycle off / on with the gate | {fps_off:.2f} / {fps_on:.2f} "
        f"(ratio {ratio:.2f}, target ≥ 0.98 {'✓' if ratio >= 0.98 else '✗'}) |",
        f"| memory for a maximal segment ({defaults.max_segment_s:g} s, room for {capacity} frames at 2× "
        f"30 fps) | {seg_mib:.1f} MiB preallocated, plus one copy of the episode while it is classified |",
        "",
        f"1-minute load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} on "
        f"{os.cpu_count()} cores (per run: "
        + ", ".join(f"{r.load:.1f}" for rs in runs.values() for r in rs)
        + f"), daemons under test at niceness {args.nice}."
        + (
            " The machine was shared with other work, which inflates CPU time per frame: compare "
            "the columns of one row."
            if max(load_before[0], load_after[0]) > (os.cpu_count() or 1) / 2
            else ""
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        write_section("idle", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
