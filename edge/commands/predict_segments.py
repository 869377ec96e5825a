"""``slr-predict VIDEO --segments``: continuous signing in a file, one line (or cue) per episode.

A recorded video of continuous signing (an interpreter's recording, a lecture, a video call) goes
through the daemon's segment path (:mod:`edge.clips.file_segments`): the same segmenter
settings as ``slr-edge run`` (declared once, in :class:`edge.daemon.config.DaemonConfig`), the
same classification, so ``--json`` prints exactly the ``segment`` messages that
``slr-edge run --source VIDEO --publish segments`` publishes for the file. ``--srt``/``--vtt``
write subtitles (:mod:`edge.captions`) atomically once the whole file is done, so Ctrl-C or
SIGTERM (exit 130) never leaves a partial subtitle file. :mod:`edge.commands.predict` only
registers these options and hands over.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge.commands.scaffold import EXIT_FAILURE, EXIT_OK
from edge.util.signals import interrupt_on_signals

if TYPE_CHECKING:
    from edge.clips.file_segments import FileSegments, SegmentOptions

DESCRIPTION = """\
Cut a video of continuous signing into episodes (hands up, one sign, hands down for --gap) and
classify each as slr-edge run --publish segments does; print one line per episode, or with --json
the segment messages. --srt/--vtt (which imply --segments) write subtitles: one cue per episode
whose top-1 reaches --min-confidence, written only when the whole file is done.
  slr-predict lecture.mp4 --model slovo.onnx --segments
  slr-predict lecture.mp4 --model slovo.onnx --segments --json | jq -r '.[].top_k[0].label'
  slr-predict lecture.mp4 --model slovo.onnx --srt lecture.srt --vtt lecture.vtt --captions-top3
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--segments`` group of ``slr-predict``."""
    from edge.clips.file_segments import SEGMENT_SETTINGS
    from edge.daemon.config import DaemonConfig
    from edge.util import settings

    group = parser.add_argument_group("continuous signing and captions", DESCRIPTION)
    group.add_argument("--segments", action="store_true", help="one result per signing episode")
    group.add_argument("--srt", metavar="FILE", help="write SubRip subtitles (UTF-8)")
    group.add_argument("--vtt", metavar="FILE", help="write WebVTT subtitles (UTF-8)")
    group.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        metavar="P",
        help="captions only for episodes whose top-1 probability is at least P (default 0.5)",
    )
    group.add_argument(
        "--captions-top3",
        action="store_true",
        help="add the top 3 with probabilities (WebVTT: a NOTE per cue; SRT: a second line)",
    )
    declared = settings.declared(DaemonConfig)
    for name in SEGMENT_SETTINGS:
        item = declared[name]
        group.add_argument(
            item.flag,
            dest=name,
            type=item.kind,
            default=None,
            metavar=item.spec.metavar,
            help=f"{item.spec.help} (default {item.default:g}, as slr-edge run)",
        )


def wanted(args: argparse.Namespace) -> bool:
    """Whether the command line asks for the segments mode (``ValueError`` for its options without it)."""
    from edge.clips.file_segments import SEGMENT_SETTINGS

    if args.segments or args.srt or args.vtt:
        return True
    stray = [name for name in ("min_confidence", *SEGMENT_SETTINGS) if getattr(args, name) is not None]
    if stray or args.captions_top3:
        raise ValueError(
            "--min-confidence, --captions-top3, --gap, --max-segment and "
            "--min-segment-frames need --segments (or --srt/--vtt)"
        )
    return False


def _options(args: argparse.Namespace) -> SegmentOptions:
    """The segment settings from the flags (``ConfigError``: exit 2)."""
    from edge.clips.file_segments import SEGMENT_SETTINGS, segment_options

    return segment_options(
        {name: getattr(args, name) for name in SEGMENT_SETTINGS if getattr(args, name) is not None}
    )


def _check_outputs(args: argparse.Namespace) -> list[Path]:
    """Refuse, before any work, subtitle paths that cannot be written or would destroy the input.

    :func:`edge.util.files.output_file_problem` for each (symlinks refused, names too long, ...),
    then no two of the outputs and the input may resolve to one file.
    """
    from edge.util.files import output_file_problem, same_output_problem

    named = {flag: Path(p) for flag, p in (("--srt", args.srt), ("--vtt", args.vtt)) if p is not None}
    for flag, path in named.items():
        problem = output_file_problem(path, f"subtitles ({flag})")
        if problem is not None:
            raise ValueError(problem)
        if same_output_problem({flag: path, "the input": args.video}) is not None:
            raise ValueError(f"subtitle output {str(path)!r} is the input video")
    problem = same_output_problem(named)
    if problem is not None:
        raise ValueError(problem)
    return list(named.values())


def run_segments(args: argparse.Namespace) -> int:
    """The segments mode of ``slr-predict`` (options already parsed); returns the exit code."""
    from edge.captions.cues import DEFAULT_MIN_CONFIDENCE

    if args.video is None or args.camera is not None:
        raise ValueError("--segments, --srt and --vtt need a VIDEO file (not --camera)")
    if args.top_k < 1 or args.threads < 1:
        raise ValueError("--top-k and --threads must be >= 1")
    min_confidence = DEFAULT_MIN_CONFIDENCE if args.min_confidence is None else args.min_confidence
    if not 0.0 <= min_confidence <= 1.0:  # also refuses nan
        raise ValueError("--min-confidence must be between 0 and 1")
    options = _options(args)
    outputs = _check_outputs(args)
    with interrupt_on_signals():  # SIGTERM too: the worker thread stops, no subtitle file is written
        found = _segment_video(args, options)
        if args.srt is not None or args.vtt is not None:
            _write_captions(args, found, min_confidence)
    if args.json:
        print(json.dumps(found.segments, ensure_ascii=False))
    else:
        _print_table(found, args.video)
        for path in outputs:
            print(f"wrote {path}", file=sys.stderr)
    if found.classification_errors:
        print(
            f"slr-predict: error: {found.classification_errors} episode(s) could not be classified "
            "(the model produced non-finite output)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


def _segment_video(args: argparse.Namespace, options: SegmentOptions) -> FileSegments:
    from tqdm import tqdm

    from edge.camera.sources import open_source
    from edge.clips.file_segments import segment_file
    from edge.keypoints.holistic import HolisticExtractor
    from edge.recognition.inference import load_model

    model = load_model(args.model, threads=args.threads)
    source = open_source(args.video, warn_truncated=False)  # a bad file fails before MediaPipe loads
    with source, HolisticExtractor(quiet=True) as extractor:
        bar = tqdm(
            desc="episodes",
            unit="frame",
            total=source.expected_frames,
            disable=args.no_progress or args.json or not sys.stderr.isatty(),
            file=sys.stderr,
        )
        try:
            found = segment_file(
                model, source, extractor, options, top_k=args.top_k, on_frame=lambda _n, _f: bar.update()
            )
        finally:
            bar.close()
        truncated = source.truncation()
    if truncated is not None:
        print(f"slr-predict: warning: {truncated}; the episodes cover only the decoded part", file=sys.stderr)
    if found.extraction_errors:
        print(
            f"slr-predict: warning: extraction failed on {found.extraction_errors} frame(s); skipped",
            file=sys.stderr,
        )
    if not found.segments:
        print(f"slr-predict: warning: no signing episode found in {args.video}", file=sys.stderr)
    return found


def _write_captions(args: argparse.Namespace, found: FileSegments, min_confidence: float) -> None:
    from edge.captions.formats import subtitles
    from edge.util.files import atomic_write_bytes

    captions = subtitles(found.segments, min_confidence=min_confidence, top3=args.captions_top3)
    cues = captions.cues
    for path, text in ((args.srt, captions.srt), (args.vtt, captions.vtt)):
        if path is not None:
            atomic_write_bytes(path, text.encode("utf-8"))
    skipped = len(found.segments) - len(cues)
    if skipped and not args.json:
        print(
            f"{len(cues)} cue(s); {skipped} episode(s) below --min-confidence {min_confidence:g} "
            "or without a sign left out",
            file=sys.stderr,
        )


def clock(seconds: float) -> str:
    """``H:MM:SS.ss`` for a position in a video."""
    minutes, secs = divmod(max(0.0, seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:05.2f}"


def _print_table(found: FileSegments, video: str) -> None:
    """One line per episode: number, start–end, top-k, confidence of the top-1, hand frames."""
    from rich.console import Console
    from rich.text import Text

    from edge.commands.listen import confidence_style, printable

    console = Console(highlight=False)
    console.print(Text(f"{printable(Path(video).name)}: {len(found.segments)} episode(s)", style="bold"))
    for i, segment in enumerate(found.segments, 1):
        best = segment["top_k"][0]
        ranked = ", ".join(f"{printable(e['label'])} {e['prob']:.2f}" for e in segment["top_k"])
        line = Text.assemble(  # Text, not markup: a label is never read as rich markup
            f"{i:3d}  {clock(segment['start'])}–{clock(segment['end'])}  ",
            (f"{printable(best['label'])} {best['prob']:.3f}", f"bold {confidence_style(best['prob'])}"),
            f"  hands {segment['hand_frames']}/{segment['frames']}",
            (" cut" if segment["cut"] else "", "yellow"),
            (f"  ({ranked})", "dim"),
        )
        console.print(line, soft_wrap=True)
    if found.short:
        console.print(f"{found.short} hand flicker(s) shorter than --min-segment-frames ignored")
