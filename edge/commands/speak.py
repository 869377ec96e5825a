"""``slr-speak``: say what the daemon recognises, for a hearing person at a counter or a door.

Subscribes like ``slr-listen`` (same ``--endpoint`` and CURVE options), checks every message
against its schema (invalid ones are dropped and counted), and speaks each ``segment`` (and, with
``--topic sign``, each ``sign``) whose probability reaches ``--min-confidence``, with espeak-ng
(:mod:`edge.speech.engine`) through the default audio output. ``--to-dir DIR`` writes one WAV per
utterance instead (atomically: a reader never sees half a file), for tests and for kiosks that
route audio elsewhere.

Receiving and speaking are two threads joined by a small queue (:mod:`edge.speech.queue`): a
burst of signs pushes the oldest unspoken ones out instead of queueing minutes of stale speech.

Exit status: 0 after ``--count`` utterances or on Ctrl-C/SIGTERM (a summary line on stderr),
2 for bad options or key files, a missing espeak-ng or an unknown voice.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.commands.scaffold import EXIT_OK, EXIT_USAGE, add_version, run
from edge.recognition.decisions import DEFAULT_SIGN_THRESHOLD
from edge.speech.engine import BINARY, DEFAULT_RATE, DEFAULT_VOICE, EngineError, EspeakEngine
from edge.speech.queue import SpeechQueue
from edge.speech.utterances import SPOKEN_TOPICS, Utterance, invalid_reason, utterance_of
from edge.util.logs import ThrottledLog
from edge.util.signals import interrupt_on_signals

if TYPE_CHECKING:
    from edge.transport.subscriber import Subscriber

log = logging.getLogger("slr-speak")

#: Default ``--min-confidence``: deliberately the daemon's default sign threshold, not the 0.5 of
#: captions and the dashboard (edge.captions.cues): a spoken guess is noise in the room.
DEFAULT_MIN_CONFIDENCE = DEFAULT_SIGN_THRESHOLD
DEFAULT_QUEUE = 2
DEFAULT_MAX_AGE_S = 5.0
WAV_NAME = re.compile(r"utterance-(\d{6,})\.wav")

EPILOG = """\
examples:
  slr-speak                                   # speak each recognised segment (voice ru)
  slr-speak --topic sign --topic segment --min-confidence 0.7
  slr-speak --to-dir /var/lib/slovo-speak     # one WAV per utterance instead of playing
  slr-speak --voice ru+f3 --rate 140

exit codes: 0 after --count utterances or on Ctrl-C/SIGTERM, 2 on bad options or key files,
            espeak-ng missing or an unknown voice
"""


def build_parser() -> argparse.ArgumentParser:
    from edge.commands.listen import add_subscriber_options

    parser = argparse.ArgumentParser(
        prog="slr-speak",
        description="Speak what slr-edge recognises (segment messages; optionally sign events) "
        "with espeak-ng, or write one WAV per utterance.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    add_subscriber_options(parser)
    parser.add_argument(
        "--topic", action="append", choices=SPOKEN_TOPICS, help="what to speak; repeatable (default segment)"
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=DEFAULT_MIN_CONFIDENCE,
        metavar="P",
        help="speak only results with probability >= P (default %(default)s)",
    )
    parser.add_argument("--voice", default=DEFAULT_VOICE, help="espeak-ng voice (default %(default)s)")
    parser.add_argument(
        "--rate", type=int, default=DEFAULT_RATE, help="words per minute (default %(default)s)"
    )
    parser.add_argument("--to-dir", metavar="DIR", type=Path, help="write utterance-NNNNNN.wav files here")
    parser.add_argument(
        "--queue", type=int, default=DEFAULT_QUEUE, metavar="N", help="unspoken utterances kept (%(default)s)"
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=DEFAULT_MAX_AGE_S,
        metavar="S",
        help="drop an utterance that waited longer than S seconds (%(default)s)",
    )
    parser.add_argument("--count", type=int, metavar="N", help="exit 0 after N utterances")
    parser.add_argument("--quiet", action="store_true", help="no line per utterance on stderr")
    return parser


@dataclass
class Counters:
    received: int = 0
    invalid: int = 0
    #: Valid, but below ``--min-confidence`` or not a sign.
    silent: int = 0
    spoken: int = 0
    failed: int = 0

    def summary(self, queue: SpeechQueue[Utterance]) -> str:
        return (
            f"slr-speak: {self.received} received, {self.invalid} invalid, {self.silent} below threshold, "
            f"{queue.dropped_full} dropped (queue full), {queue.dropped_stale} dropped (stale), "
            f"{self.spoken} spoken, {self.failed} failed"
        )


class WavNamer:
    """``utterance-NNNNNN.wav`` names after the highest already in ``directory``: never overwrites."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        taken = [int(m.group(1)) for p in directory.iterdir() if (m := WAV_NAME.fullmatch(p.name))]
        self._next = max(taken, default=0) + 1

    def next(self) -> Path:
        path = self.directory / f"utterance-{self._next:06d}.wav"
        self._next += 1
        return path


class Speaker(threading.Thread):
    """Takes utterances from the queue and speaks (or writes) them one at a time."""

    def __init__(
        self,
        engine: EspeakEngine,
        queue: SpeechQueue[Utterance],
        counters: Counters,
        namer: WavNamer | None,
        quiet: bool,
    ) -> None:
        super().__init__(name="speaker", daemon=True)
        self.engine, self.queue, self.counters, self.namer, self.quiet = engine, queue, counters, namer, quiet
        self.stopping = threading.Event()
        self._throttled = ThrottledLog(log)

    def run(self) -> None:
        from edge.speech.wav import wav_problem
        from edge.util.files import replaced_on_success

        while not self.stopping.is_set():
            utterance = self.queue.get(timeout=0.5)
            if utterance is None:
                continue
            try:
                if self.namer is None:
                    self.engine.say(utterance.text)
                    where = "spoken"
                else:
                    path = self.namer.next()
                    with replaced_on_success(path) as tmp:
                        self.engine.say(utterance.text, wav=tmp)
                        problem = wav_problem(tmp)  # espeak-ng exits 0 on a full disk
                        if problem is not None:
                            raise EngineError(f"{BINARY} failed on {path.name}: {problem}")
                    where = str(path)
            except (EngineError, OSError) as exc:
                self.counters.failed += 1
                if not self.stopping.is_set():
                    self._throttled(logging.WARNING, "engine", "%s", exc)
                continue
            self.counters.spoken += 1
            if not self.quiet:  # the words too: the log says what a listener heard
                log.info(
                    "%s %s (%.2f) %s: %s",
                    utterance.topic,
                    utterance.seq,
                    utterance.prob,
                    json.dumps(utterance.text, ensure_ascii=False),
                    where,
                )


def _receive(
    args: argparse.Namespace, subscriber: Subscriber, counters: Counters, queue: SpeechQueue[Utterance]
) -> None:
    """The main loop: receive, validate, filter, enqueue; returns after ``--count`` utterances."""
    from edge.commands.listen import printable
    from edge.contract.protocol import ProtocolError

    throttled = ThrottledLog(log)
    with subscriber:
        while args.count is None or counters.spoken + counters.failed < args.count:
            try:
                message = subscriber.recv(timeout_s=0.25)
            except ProtocolError as exc:
                counters.received += 1
                counters.invalid += 1
                throttled(logging.WARNING, "invalid", "dropped a malformed message: %s", printable(str(exc)))
                continue
            if message is None:
                continue
            counters.received += 1
            topic, payload = message
            reason = invalid_reason(topic, payload)
            if reason is not None:
                counters.invalid += 1
                throttled(logging.WARNING, "invalid", "dropped invalid %s: %s", topic, printable(reason))
                continue
            utterance = utterance_of(topic, payload, args.min_confidence)
            if utterance is None:
                counters.silent += 1
            else:
                queue.put(utterance)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``slr-speak`` (``python -m``); SIGTERM and Ctrl-C end it with 0 from here on."""
    return run("slr-speak", command, argv, stop_signals=True, interrupted=EXIT_OK)


def command(argv: list[str] | None) -> int:
    """The command, inside :func:`edge.commands.scaffold.run` (console script: ``scaffold.slr_speak``)."""
    import zmq

    from edge.commands.listen import open_subscriber
    from edge.transport.keys import KeyFileError
    from edge.util.files import output_dir_problem

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    problem = None
    if not 0.0 <= args.min_confidence <= 1.0:
        problem = "--min-confidence must be between 0 and 1"
    elif args.queue < 1 or not 0 < args.max_age < 1e6 or (args.count is not None and args.count < 1):
        problem = "--queue and --count must be >= 1 and --max-age a number of seconds above 0"
    elif args.to_dir is not None:
        problem = output_dir_problem(args.to_dir, "--to-dir")
    if problem is None:
        try:
            engine = EspeakEngine(args.voice, args.rate)
            engine.check_voice()
        except (ValueError, EngineError) as exc:
            problem = str(exc)
    if problem is None:
        try:
            subscriber = open_subscriber(args, args.topic or ["segment"])
        except (KeyFileError, ValueError, zmq.ZMQError) as exc:
            problem = str(exc)
    if problem is not None:
        print(f"slr-speak: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    counters = Counters()
    queue: SpeechQueue[Utterance] = SpeechQueue(args.queue, args.max_age)
    namer = None if args.to_dir is None else WavNamer(args.to_dir)
    speaker = Speaker(engine, queue, counters, namer, args.quiet)
    speaker.start()
    try:
        with interrupt_on_signals():  # SIGTERM (systemd stop) ends it like Ctrl-C: summary, exit 0
            _receive(args, subscriber, counters, queue)
    except KeyboardInterrupt:
        pass
    finally:
        speaker.stopping.set()
        queue.close()
        engine.cancel()  # an utterance in progress ends now; its temporary WAV is removed
        speaker.join(timeout=2.0)
        print(counters.summary(queue), file=sys.stderr, flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
