"""Classify one uploaded clip in a child process: ``python -m edge.web.clip_worker MODEL VIDEO``.

``slr-web`` runs this as a separate, low-priority process per upload so that MediaPipe and ONNX
Runtime never live in the web server (its idle memory stays small), a video that crashes the
decoder takes only this process down, and the page stays live while frames are extracted.

Output is JSON lines on stdout: ``{"progress": n, "total": t|null}`` while extracting, then one
``{"result": {...}}`` (the ``slr-predict --json`` object; with ``--captions P`` the episodes, cues
and subtitle texts of ``slr-predict --segments``) or ``{"error": "..."}``; exit code 0,
or 2 for a clip or model that cannot be used. ``--describe`` prints the model's name, class count
and whether it is untrained, so the server learns that without loading ONNX Runtime itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.camera.frame import Frame

#: ORT threads and niceness: the daemon on the same device comes first.
THREADS = 1
NICENESS = 10
PROGRESS_EVERY = 5
#: The poster frame (a preview for files the browser cannot play, e.g. MJPEG AVI) fits this box.
POSTER_PX = 320


def poster_jpeg(rgb: object) -> str:
    """The frame as a small JPEG ``data:`` URL: the page shows it instead of a video it can't play."""
    import base64

    import cv2
    import numpy as np

    image = np.asarray(rgb)
    height, width = image.shape[:2]
    scale = min(1.0, POSTER_PX / max(height, width))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii") if ok else ""


def classify_upload(video: str, model_path: str, progress: Callable[[int], None], top_k: int = 5) -> dict:
    """Extract ``video`` and classify it on the shared clip path (what ``slr-predict --json`` prints).

    Raises ``SourceError`` (not a decodable video), ``ModelError`` or ``ExtractorError``.
    """
    from edge.camera.sources import open_source
    from edge.clips.keypoints import extract_clip
    from edge.keypoints.holistic import HolisticExtractor
    from edge.recognition.classify import classify_clip
    from edge.recognition.inference import load_model

    model = load_model(model_path, threads=THREADS)
    source = open_source(video)  # decodes the first frame: validation by content, not by name
    poster = Poster(progress)
    with source, HolisticExtractor() as extractor:
        clip = extract_clip(source, extractor, on_frame=poster.on_frame)
    result = classify_clip(
        model,
        clip.raw,
        clip.stamps,
        k=top_k,
        source=video,
        clip_fps=clip.fps,
        declared_frames=clip.declared_frames,
        complete=clip.complete,
    ).to_json()
    return {**result, "poster": poster.jpeg}


def caption_upload(
    video: str, model_path: str, progress: Callable[[int], None], min_confidence: float, top_k: int = 5
) -> dict:
    """Episodes and captions of a long ``video``: ``slr-predict VIDEO --segments --json --srt --vtt``.

    The same path as that command (:func:`edge.clips.file_segments.segment_file` with the
    daemon's segment settings, :func:`edge.captions.formats.subtitles` for the cues and both
    subtitle formats), so the page shows exactly what the command line writes for the file.
    """
    from edge.camera.sources import open_source
    from edge.captions.formats import subtitles
    from edge.clips.file_segments import segment_file, segment_options
    from edge.keypoints.holistic import HolisticExtractor
    from edge.recognition.inference import load_model

    model = load_model(model_path, threads=THREADS)
    source = open_source(video, warn_truncated=False)  # decodes the first frame: validation by content
    poster = Poster(progress)
    with source, HolisticExtractor(quiet=True) as extractor:
        found = segment_file(
            model, source, extractor, segment_options(), top_k=top_k, on_frame=poster.on_frame
        )
        complete, declared = source.truncation() is None, source.expected_frames
    captions = subtitles(found.segments, min_confidence=min_confidence)
    return {
        "model": model.name,
        "frames": found.frames,
        "declared_frames": declared,
        "complete": complete,
        "min_confidence": min_confidence,
        "segments": found.segments,
        "cues": [
            {"start_ms": c.start_ms, "end_ms": c.end_ms, "text": c.text, "prob": c.prob}
            for c in captions.cues
        ],
        "srt": captions.srt,
        "vtt": captions.vtt,
        "poster": poster.jpeg,
    }


class Poster:
    """The ``on_frame`` hook of an upload: the first frame as a poster JPEG, progress every few frames."""

    def __init__(self, progress: Callable[[int], None]) -> None:
        self.jpeg = ""
        self._progress = progress

    def on_frame(self, count: int, frame: Frame) -> None:
        if count == 1:
            self.jpeg = poster_jpeg(frame.rgb)
        if count % PROGRESS_EVERY == 0:
            self._progress(count)


def describe_model(model_path: str) -> dict:
    """Name, class count, sha256 and the untrained flag of an exported model (loads it: validates it)."""
    from edge.contract.model_contract import META_UNTRAINED
    from edge.recognition.inference import load_model

    model = load_model(model_path, threads=THREADS)
    untrained = model.info.metadata.get(META_UNTRAINED, "false").lower() == "true"
    return {"name": model.name, "classes": len(model.labels), "sha256": model.sha256, "untrained": untrained}


def _frame_count(video: str) -> int | None:
    import cv2

    capture = cv2.VideoCapture(video, cv2.CAP_FFMPEG)
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    return count if count > 0 else None


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when slr-web goes (even by SIGKILL): nobody would read the
    result, and a clip left classifying would hold the device's CPU for nothing."""
    with contextlib.suppress(Exception):  # not Linux, or no libc: slr-web still kills it itself
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.web.clip_worker", description=__doc__)
    parser.add_argument("model")
    parser.add_argument("video", nargs="?")
    parser.add_argument("--describe", action="store_true", help="print the model's description and exit")
    parser.add_argument(
        "--captions",
        type=float,
        metavar="MIN_CONFIDENCE",
        help="episodes and captions (cues from this top-1 probability) instead of one result",
    )
    args = parser.parse_args(argv)
    _die_with_parent()
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    from edge.camera.frame import FrameTooLarge, SourceError
    from edge.keypoints.holistic import ExtractorError
    from edge.recognition.inference import ModelError

    try:
        if args.describe:
            _emit({"model": describe_model(args.model)})
            return 0
        if args.video is None:
            parser.error("VIDEO is required without --describe")
        total = _frame_count(args.video)
        _emit({"progress": 0, "total": total})

        def report(done: int) -> None:
            _emit({"progress": done, "total": total})

        if args.captions is not None:
            result = caption_upload(args.video, args.model, report, args.captions)
        else:
            result = classify_upload(args.video, args.model, report)
    except FrameTooLarge as exc:  # a decompression bomb: refused before its frames are decoded
        _emit({"error": f"the video's {exc.reason}"})
        return 2
    except SourceError:
        _emit({"error": "the file is not a video that can be decoded (MP4, AVI, MOV, MKV or WebM)"})
        return 2
    except (ModelError, ExtractorError, ValueError) as exc:
        _emit({"error": str(exc)})
        return 2
    _emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
