"""The text-to-speech engine: ``espeak-ng`` (Debian package ``espeak-ng``; Russian voice ``ru``).

It runs as a subprocess with an argument list, never through a shell, and the text goes on its
standard input (``--stdin``), so nothing in a label can become an option or a command. Every call
is bounded by :data:`SPEAK_TIMEOUT_S`: a stuck audio device must not stall the queue forever.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

BINARY = "espeak-ng"
#: Words per minute (espeak-ng's own default is 175; a little slower is clearer for single words).
DEFAULT_RATE = 160
RATE_RANGE = (80, 450)
DEFAULT_VOICE = "ru"
#: Longest one utterance may take to synthesise and play.
SPEAK_TIMEOUT_S = 30.0
#: Voice names as espeak-ng spells them (``ru``, ``en-us``, ``ru+f3``, ``zle/ru``).
VOICE_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}")


class EngineError(RuntimeError):
    """The engine is missing, has no such voice, or failed on one utterance (one line)."""


class EspeakEngine:
    """Speaks text through the default audio output, or writes it to a WAV file."""

    def __init__(self, voice: str = DEFAULT_VOICE, rate: int = DEFAULT_RATE, binary: str = BINARY) -> None:
        if not VOICE_PATTERN.fullmatch(voice):
            raise ValueError(f"--voice {voice!r} is not a voice name (e.g. ru, en-us, ru+f3)")
        if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
            raise ValueError(f"--rate must be {RATE_RANGE[0]}..{RATE_RANGE[1]} words per minute")
        path = shutil.which(binary)
        if path is None:
            raise EngineError(f"{binary} is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
        self.binary, self.voice, self.rate = path, voice, rate
        self._lock = threading.Lock()
        self._running: subprocess.Popen[bytes] | None = None
        self._cancelled = False

    def command(self, wav: Path | None = None) -> list[str]:
        """The engine's argument list: UTF-8 text from stdin, to ``wav`` or to the audio output."""
        args = [self.binary, "-v", self.voice, "-s", str(self.rate), "-b", "1", "--stdin"]
        return [*args, "-w", str(wav)] if wav is not None else args

    def check_voice(self) -> None:
        """Fail now (``EngineError``) rather than on the first sign if the voice does not exist."""
        try:
            self._run([self.binary, "-v", self.voice, "-q", "--stdin"], "a")
        except EngineError:
            raise EngineError(f"{BINARY} has no voice {self.voice!r} (see {BINARY} --voices)") from None

    def say(self, text: str, wav: Path | None = None) -> None:
        """Speak ``text`` (or write it to ``wav``); ``EngineError`` if the engine fails or is cancelled."""
        self._run(self.command(wav), text)

    def cancel(self) -> None:
        """Stop the utterance in progress, and refuse new ones (shutting down)."""
        with self._lock:
            self._cancelled = True
            if self._running is not None:
                self._running.kill()

    def _run(self, command: list[str], text: str) -> None:
        with self._lock:
            if self._cancelled:
                raise EngineError("cancelled")
            try:
                proc = subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
            except OSError as exc:
                raise EngineError(f"cannot run {BINARY}: {exc.strerror or exc}") from None
            self._running = proc
        try:
            _, stderr = proc.communicate(text.encode("utf-8"), timeout=SPEAK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise EngineError(f"{BINARY} did not finish within {SPEAK_TIMEOUT_S:g} s") from None
        finally:
            with self._lock:
                self._running = None
        if proc.returncode != 0:
            lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
            raise EngineError(f"{BINARY} failed ({lines[-1].strip()[:200] if lines else proc.returncode})")
