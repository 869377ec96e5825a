"""Classify uploaded clips in a child process: ``python -m edge.web.clip_worker MODEL --serve``.

``slr-web`` runs this as a separate, low-priority process so that MediaPipe and ONNX Runtime
never live in the web server (its idle memory stays small), a video that crashes the decoder
takes only this process down, and the page stays live while frames are extracted.

**Warm** (``--serve``): the model loads in a thread beside MediaPipe's start
(:class:`edge.recognition.inference.BackgroundLoad`), then the process reads one job per line on
stdin, ``{"video": PATH, "captions": null|MIN_CONFIDENCE}``, answers it and waits for the next,
until stdin closes. Between clips only MediaPipe's tracking is reset
(:meth:`~edge.keypoints.holistic.HolisticExtractor.reset`), so a warm answer equals a cold one
and an upload costs its keypoints, not a process start (issue 29). A clip that fails (not a
video, no frames) is answered with an error and the process stays; anything unexpected ends it
(exit 1) and ``slr-web`` starts a fresh one for the next clip.

**One clip** (``MODEL VIDEO [--captions P]``): the same job once, for the command line.

Output is JSON lines on stdout, per job: ``{"progress": n, "total": t|null}`` while extracting,
then one ``{"result": {...}}`` (the ``slr-predict --json`` object; with captions the episodes,
cues and subtitle texts of ``slr-predict --segments``) or ``{"error": "..."}``. One clip exits 0,
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
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.camera.frame import Frame
    from edge.keypoints.holistic import HolisticExtractor
    from edge.recognition.inference import BackgroundLoad, EdgeModel

#: ORT threads and niceness: the daemon on the same device comes first.
THREADS = 1
NICENESS = 10
PROGRESS_EVERY = 5
#: The poster frame (a preview for files the browser cannot play, e.g. MJPEG AVI) fits this box.
POSTER_PX = 320
#: Longest job line read from stdin (a path and a number; slr-web writes them, still bounded).
MAX_JOB_BYTES = 64 * 1024


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


def classify_upload(
    video: str,
    model: Callable[[], EdgeModel],
    extractor: HolisticExtractor,
    progress: Callable[[int], None],
    top_k: int = 5,
) -> dict:
    """Extract ``video`` and classify it on the shared clip path (what ``slr-predict --json`` prints).

    ``model`` returns the model, waiting for its load: extraction needs only ``extractor``, so a
    model still loading (a fresh worker) is waited for after the frames, as ``slr-predict`` does.
    Raises ``SourceError`` (not a decodable video), ``ModelError`` or ``ExtractorError``.
    """
    from edge.camera.sources import open_source
    from edge.clips.keypoints import extract_clip
    from edge.recognition.classify import classify_clip

    try:
        source = open_source(video)  # decodes the first frame: validation by content, not by name
    except Exception:
        model()  # a model that cannot load is reported first, as when it was loaded first
        raise
    poster = Poster(progress)
    with source:
        clip = extract_clip(source, extractor, on_frame=poster.on_frame)
    result = classify_clip(
        model(),
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
    video: str,
    model: Callable[[], EdgeModel],
    extractor: HolisticExtractor,
    progress: Callable[[int], None],
    min_confidence: float,
    top_k: int = 5,
) -> dict:
    """Episodes and captions of a long ``video``: ``slr-predict VIDEO --segments --json --srt --vtt``.

    The same path as that command (:func:`edge.clips.file_segments.segment_file` with the
    daemon's segment settings, :func:`edge.captions.formats.subtitles` for the cues and both
    subtitle formats), so the page shows exactly what the command line writes for the file.
    """
    from edge.camera.sources import open_source
    from edge.captions.formats import subtitles
    from edge.clips.file_segments import segment_file, segment_options

    loaded = model()  # episodes are classified while the file is read
    source = open_source(video, warn_truncated=False)  # decodes the first frame: validation by content
    poster = Poster(progress)
    with source:
        found = segment_file(
            loaded, source, extractor, segment_options(), top_k=top_k, on_frame=poster.on_frame
        )
        complete, declared = source.truncation() is None, source.expected_frames
    captions = subtitles(found.segments, min_confidence=min_confidence)
    return {
        "model": loaded.name,
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


class Session:
    """What a worker keeps between clips: the model (loading in a thread from the start) and one
    MediaPipe graph, reset before every clip but the first so no tracking carries over."""

    def __init__(self, model_path: str) -> None:
        from edge.recognition.inference import BackgroundLoad

        self.loading: BackgroundLoad = BackgroundLoad(model_path, threads=THREADS)
        self._extractor: HolisticExtractor | None = None
        self._used = False

    def start(self) -> None:
        """Start MediaPipe now, beside the model's load (a failure is retried by the first clip)."""
        from edge.keypoints.holistic import ExtractorError

        with contextlib.suppress(ExtractorError):
            self._fresh_extractor()

    def extractor(self) -> HolisticExtractor:
        """The graph for the next clip: started if there is none, reset if it has seen a clip."""
        extractor = self._extractor or self._fresh_extractor()
        if self._used:
            extractor.reset()
        self._used = True
        return extractor

    def _fresh_extractor(self) -> HolisticExtractor:
        from edge.keypoints.holistic import HolisticExtractor

        # quiet: MediaPipe's start-up lines go nowhere (stderr is not read); results are unchanged.
        self._extractor = HolisticExtractor(quiet=True)
        self._used = False
        return self._extractor

    def discard_extractor(self) -> None:
        """Drop a graph that failed mid-clip: the next clip starts a new one."""
        if self._extractor is not None:
            with contextlib.suppress(Exception):
                self._extractor.close()
        self._extractor = None

    def close(self) -> None:
        self.discard_extractor()


def run_job(session: Session, video: str, captions: float | None) -> tuple[dict[str, Any], int]:
    """One clip: progress lines, then the answer (``{"result": ...}`` or ``{"error": ...}``) and its
    exit status. A clip or model that cannot be used is an answer; anything else propagates."""
    from edge.camera.frame import FrameTooLarge, SourceError
    from edge.keypoints.holistic import ExtractorError
    from edge.recognition.inference import ModelError

    total = _frame_count(video)
    _emit({"progress": 0, "total": total})

    def report(done: int) -> None:
        _emit({"progress": done, "total": total})

    try:
        extractor = session.extractor()
        if captions is not None:
            result = caption_upload(video, session.loading.result, extractor, report, captions)
        else:
            result = classify_upload(video, session.loading.result, extractor, report)
    except FrameTooLarge as exc:  # a decompression bomb: refused before its frames are decoded
        return {"error": f"the video's {exc.reason}"}, 2
    except SourceError:
        return {"error": "the file is not a video that can be decoded (MP4, AVI, MOV, MKV or WebM)"}, 2
    except ExtractorError as exc:
        session.discard_extractor()
        return {"error": str(exc)}, 2
    except (ModelError, ValueError) as exc:
        return {"error": str(exc)}, 2
    return {"result": result}, 0


def read_job(stream: IO[bytes]) -> tuple[str, float | None] | str | None:
    """The next job from ``stream``: ``(video, captions)``, an error message for a line that is not
    a job (the caller answers it), or None at the end of the stream."""
    line = stream.readline(MAX_JOB_BYTES)
    if not line:
        return None
    if not line.endswith(b"\n") and len(line) >= MAX_JOB_BYTES:
        while (rest := stream.readline(MAX_JOB_BYTES)) and not rest.endswith(b"\n"):
            pass  # skip the rest of an over-long line: it is one bad job, not several
        return f"a job line is longer than {MAX_JOB_BYTES} bytes"
    try:
        job = json.loads(line)
    except (ValueError, RecursionError):
        return "a job line is not JSON"
    if not isinstance(job, dict) or not isinstance(job.get("video"), str) or not job["video"]:
        return 'a job is {"video": PATH, "captions": null or a number within [0, 1]}'
    captions = job.get("captions")
    if captions is not None and (
        isinstance(captions, bool) or not isinstance(captions, (int, float)) or not 0.0 <= captions <= 1.0
    ):
        return "a job's captions must be null or a number within [0, 1]"
    return job["video"], None if captions is None else float(captions)


def serve(model_path: str, jobs: IO[bytes]) -> int:
    """Answer jobs from ``jobs`` until it ends (``--serve``); returns the exit status (0)."""
    session = Session(model_path)
    try:
        session.start()
        while (job := read_job(jobs)) is not None:
            if isinstance(job, str):
                _emit({"error": job})
                continue
            answer, _ = run_job(session, *job)
            _emit(answer)
    finally:
        session.close()
    return 0


def describe_model(model_path: str) -> dict:
    """Name, class count, sha256 and the untrained flag of an exported model (loads it: validates it)."""
    from edge.contract.model_contract import META_UNTRAINED
    from edge.recognition.inference import load_model

    model = load_model(model_path, threads=THREADS)
    untrained = model.info.metadata.get(META_UNTRAINED, "false").lower() == "true"
    return {"name": model.name, "classes": len(model.labels), "sha256": model.sha256, "untrained": untrained}


def _frame_count(video: str) -> int | None:
    """The frame count the progress bar counts towards: what the source itself trusts.

    :attr:`edge.camera.sources.VideoSource.expected_frames`, not the container's raw guess: a
    browser's MediaRecorder WebM claims a frame a millisecond, and its recording would show
    "frame 5 of 2230". A file that can't be opened has no total (the job then reports why).
    """
    from edge.camera.frame import SourceError
    from edge.camera.sources import open_source

    try:
        with open_source(video, warn_truncated=False) as source:
            return source.expected_frames
    except SourceError:
        return None


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
    parser.add_argument("--serve", action="store_true", help="answer jobs read from stdin, one per line")
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
    from edge.recognition.inference import ModelError

    if args.describe:
        try:
            _emit({"model": describe_model(args.model)})
        except (ModelError, ValueError) as exc:
            _emit({"error": str(exc)})
            return 2
        return 0
    if args.serve:
        return serve(args.model, sys.stdin.buffer)
    if args.video is None:
        parser.error("VIDEO is required without --describe or --serve")
    session = Session(args.model)
    try:
        answer, code = run_job(session, args.video, args.captions)
    finally:
        session.close()
    _emit(answer)
    return code


if __name__ == "__main__":
    sys.exit(main())
