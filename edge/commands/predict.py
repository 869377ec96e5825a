"""``slr-predict``: classify one clip (a video file, or a few seconds from a camera) and print the top-k.

A one-shot check that a model and a camera work, before deploying the daemon: same extractor,
same model loading and the same classification path
(:func:`edge.recognition.classify.classify_window`), but the whole clip is one window. When the clip's frame
rate differs from the model's (a camera at 15 fps, or extraction slower than the camera) the
keypoints are resampled to the model's rate first, exactly as the daemon does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge.camera.frame import Frame
    from edge.camera.sources import VideoSource
    from edge.clips.keypoints import ClipKeypoints
    from edge.keypoints.holistic import Extractor
    from edge.recognition.classify import ClipResult

from edge.commands import predict_segments, scaffold
from edge.commands.scaffold import EXIT_OK, EXIT_USAGE, add_version

#: Longest camera recording (--seconds): the clip is classified as one window, kept in memory.
MAX_SECONDS = 60.0

EPILOG = """\
examples:
  slr-predict clip.mp4 --model slovo.onnx
  slr-predict clip.mp4 --model slovo.onnx --json --top-k 3
  slr-predict --camera --seconds 3 --model slovo.onnx          # /dev/video0, after a 3-2-1 countdown
  slr-predict --camera /dev/video2 --seconds 4 --model slovo.onnx

exit codes: 0 result printed (also when no hands were found, or the file ended before its declared
            length: a warning says so), 2 missing/corrupt/non-regular video (a FIFO, a device),
            unusable model, bad option, camera not available; 1 unexpected error; 130 Ctrl-C
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slr-predict",
        description="Recognise the sign in one video clip (or a short camera recording) "
        "and print the top classes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    parser.add_argument("video", nargs="?", help="video file (mp4, avi, mov, mkv, webm, gif)")
    parser.add_argument(
        "--model",
        required=True,
        metavar="ONNX",
        help="model exported by slr-export, or a name fetched by slr-model (slovo-500)",
    )
    parser.add_argument(
        "--camera",
        nargs="?",
        const="/dev/video0",
        metavar="DEVICE",
        help="record from a camera instead (default /dev/video0)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="camera recording length (default 3)")
    parser.add_argument(
        "--countdown", type=int, default=3, help="seconds of countdown before recording (default 3)"
    )
    parser.add_argument("--top-k", type=int, default=5, help="classes to print (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    predict_segments.add_arguments(parser)  # --segments, --srt, --vtt: continuous signing
    return parser


def _extract_file(
    source: VideoSource, extractor: Extractor, progress: bool, check: Callable[[], None]
) -> ClipKeypoints:
    """The file's keypoints on the shared whole-file path, with a bar on a terminal.

    ``check`` runs before each frame (the model loading beside it raises there if it failed).
    """
    from tqdm import tqdm

    from edge.clips.keypoints import extract_clip

    # A bar only on a terminal: in a log file its carriage returns make one endless line.
    bar = tqdm(
        desc="extracting",
        unit="frame",
        total=source.expected_frames,
        disable=not progress or not sys.stderr.isatty(),
        file=sys.stderr,
    )
    with source, bar:

        def on_frame(_count: int, _frame: Frame) -> None:
            check()
            bar.update()

        clip = extract_clip(source, extractor, on_frame=on_frame)
    if clip.truncation is not None:
        print(
            f"slr-predict: warning: {clip.truncation}; the result covers only the decoded part",
            file=sys.stderr,
        )
    return clip


def _record_camera(
    device: str, source: VideoSource, seconds: float, countdown: int, extractor: Extractor, progress: bool
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Countdown, then extract the newest camera frame repeatedly for ``seconds``.

    Extraction is slower than the camera, so frames are taken from the capture thread's
    latest-frame box (stale ones dropped) and their grab timestamps drive resampling later.
    """
    from edge.camera.capture import CaptureThread, LatestFrameBox
    from edge.camera.frame import SourceError

    for n in range(countdown, 0, -1):
        print(f"{n}...", file=sys.stderr, flush=True)
        time.sleep(1.0)
    print("recording", file=sys.stderr, flush=True)
    box = LatestFrameBox(drop_stale=True)
    capture = CaptureThread(device, box, source=source)
    capture.start()
    frames, stamps = [], []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            item = box.get(timeout=0.5)
            if item is None:
                if capture.state != "ok":
                    raise SourceError(f"camera {device!r} stopped delivering frames while recording")
                continue
            frames.append(extractor.extract(item.frame.rgb))
            stamps.append(item.frame.timestamp)
    finally:
        capture.stop()
        capture.join(1.0)
    if not frames:
        raise SourceError(f"camera {device!r} delivered no frames in {seconds:g} s")
    if progress:
        print(f"recorded {len(frames)} frames ({box.dropped} dropped while extracting)", file=sys.stderr)
    return np.stack(frames), np.asarray(stamps, dtype=np.float64), capture.fps


def _print_table(result: ClipResult) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from edge.util.terminal import for_terminal

    # Labels and names come from the model's metadata and the file name: escaped, never markup.
    table = Table(title=Text(for_terminal(f"{Path(result.source).name} — model {result.model}")))
    table.add_column("#", justify="right")
    table.add_column("sign")
    table.add_column("class", justify="right")
    table.add_column("probability", justify="right")
    for rank, entry in enumerate(result.top_k, 1):
        table.add_row(str(rank), Text(for_terminal(entry.label)), str(entry.index), f"{entry.prob:.3f}")
    console = Console()
    console.print(table)
    fps = "?" if result.clip_fps is None else f"{result.clip_fps:.1f}"
    console.print(
        f"{result.frames} frames at {fps} fps, hands in {result.hand_frames}"
        + (", resampled to the model's frame rate" if result.resampled else "")
    )


def run(args: argparse.Namespace) -> int:
    from edge.camera.sources import open_source
    from edge.keypoints.holistic import HolisticExtractor
    from edge.models.resolve import resolve_model
    from edge.recognition.classify import classify_clip
    from edge.recognition.inference import BackgroundLoad
    from edge.util.redact import redact

    args.model = resolve_model(args.model)  # --model NAME: a fetched registry model
    if predict_segments.wanted(args):
        return predict_segments.run_segments(args)
    if (args.video is None) == (args.camera is None):
        raise ValueError("give either a VIDEO file or --camera [DEVICE]")
    if args.top_k < 1 or args.threads < 1 or args.countdown < 0:
        raise ValueError("--top-k and --threads must be >= 1 and --countdown >= 0")
    if not 0 < args.seconds <= MAX_SECONDS:
        raise ValueError(f"--seconds must be more than 0 and at most {MAX_SECONDS:g}")
    # The ONNX session is built beside the source's probing and MediaPipe's start (two cores);
    # a model that fails to load still stops the run before the result, and wins over a bad source.
    loading = BackgroundLoad(args.model, threads=args.threads)
    progress = not args.no_progress and not args.json
    name = args.video if args.video is not None else args.camera
    try:
        # A missing/corrupt file or an absent camera fails here, before MediaPipe loads.
        source = open_source(name, warn_truncated=False)
    except Exception:
        loading.result()  # a model error is reported first, as when the model was loaded first
        raise
    try:
        extractor = HolisticExtractor()
    except BaseException:
        source.close()
        raise
    complete, declared = True, None
    with extractor:
        if args.video is not None:
            clip = _extract_file(source, extractor, progress, loading.check)
            raw, ts, fps, complete, declared = (
                clip.raw,
                clip.stamps,
                clip.fps,
                clip.complete,
                clip.declared_frames,
            )
        else:
            raw, ts, fps = _record_camera(name, source, args.seconds, args.countdown, extractor, progress)
    model = loading.result()
    shown = redact(name)  # a camera URL's password is never printed
    result = classify_clip(
        model, raw, ts, k=args.top_k, source=shown, clip_fps=fps, declared_frames=declared, complete=complete
    )
    if result.hand_frames == 0:
        print(
            f"slr-predict: warning: no hands found in {shown}; the result is not meaningful", file=sys.stderr
        )
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        _print_table(result)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``slr-predict`` (``python -m``; the console script is ``scaffold.slr_predict``)."""
    return scaffold.run("slr-predict", command, argv, stop_signals=True)


def command(argv: list[str] | None) -> int:
    """The command itself, inside :func:`edge.commands.scaffold.run`."""
    args = build_parser().parse_args(argv)
    from edge.camera.frame import SourceError
    from edge.keypoints.holistic import ExtractorError
    from edge.recognition.inference import ModelError

    try:
        return run(args)
    except (ModelError, SourceError, ExtractorError, ValueError) as exc:
        print(f"slr-predict: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
