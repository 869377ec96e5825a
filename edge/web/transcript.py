"""The transcript: recognised signs kept by ``slr-web`` for every viewer, on disk, bounded.

Entries come from the daemon's ``segment`` messages (a whole signing episode, the unit a
transcript wants) and, for a daemon that publishes windows only, from ``sign`` events; once a
segment arrives, the sign entries this process added are dropped and signs are no longer added
(the page did this per tab before; now every viewer sees the same list).

The list lives in ``<state dir>/transcript.json``: at most :data:`MAX_ENTRIES` entries (oldest
dropped first), labels cut to :data:`MAX_LABEL`, written atomically (temp file in the same
directory, fsync, rename) at most once a second and at shutdown, so it survives a reload, a
restart and a power cut (then it is at most a second old). A file that cannot be read (not
JSON, nested too deep, not this format, not a regular file, over :data:`MAX_FILE_BYTES`) is moved
aside to the first free name of ``transcript.json.unreadable``, ``….unreadable.1``, ``….2`` …
(never overwritten, never followed) and the list starts empty; a bad entry inside a good file is
dropped. Writes are ordered: a write taken earlier never lands over a later one. Clearing is
answered only once the empty list is on disk; if the write fails (a full disk) nothing is cleared
(:class:`SaveError`), so memory and disk keep agreeing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import os
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

from edge.util.files import read_small_regular_file
from edge.util.logs import ThrottledLog

log = logging.getLogger(__name__)

FILENAME = "transcript.json"
FORMAT = 1
MAX_ENTRIES = 1000
MAX_LABEL = 200
KINDS = ("segment", "sign")
#: A transcript file of MAX_ENTRIES entries is well under this; a bigger one is not ours.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Files kept aside before the oldest name is reused (each is at most MAX_FILE_BYTES).
MAX_ASIDE = 100
#: Seconds between two log lines about failing writes (the flusher retries every second).
WRITE_LOG_EVERY_S = 60.0
#: errno values that mean "no room": DELETE answers 507 Insufficient Storage for them.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


class SaveError(OSError):
    """The transcript could not be written; ``full`` when the disk or quota is full."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, f"cannot write {path}: {cause.strerror or cause}")
        self.full = cause.errno in NO_ROOM


def _entry(raw: Any) -> dict[str, Any] | None:
    """A stored or received entry with the right types, or None (then it is dropped)."""
    if not isinstance(raw, dict):
        return None
    entry_id, ts, label, prob, kind = (raw.get(k) for k in ("id", "ts", "label", "prob", "kind"))
    ts, prob = _finite(ts), _finite(prob)
    if not (isinstance(entry_id, int) and not isinstance(entry_id, bool) and entry_id >= 0):
        return None
    if ts is None or prob is None or not (0.0 <= prob <= 1.0 and isinstance(label, str) and kind in KINDS):
        return None
    return {"id": entry_id, "ts": ts, "label": label[:MAX_LABEL], "prob": prob, "kind": kind}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of 400 digits
        return None
    return number if math.isfinite(number) else None


class Transcript:
    """The shared transcript; methods are called from the event loop (the writer runs in a thread)."""

    def __init__(self, directory: Path | None, max_entries: int = MAX_ENTRIES) -> None:
        self.path = None if directory is None else Path(directory) / FILENAME
        self.entries: deque[dict[str, Any]] = deque(maxlen=max_entries)
        self.next_id = 0
        self.segments_seen = False
        self._signs_added: set[int] = set()
        self._dirty = False
        self._generation = 0  # of the newest content taken for writing
        self._written = 0  # of the newest content on disk
        self._clearing = 0  # clears waiting for their write
        self._write_lock = threading.Lock()
        self._throttled = ThrottledLog(log, WRITE_LOG_EVERY_S)
        self.load()

    # -- persistence --------------------------------------------------------------------------

    def load(self) -> None:
        """Read the stored list; anything unusable is moved aside and the list starts empty."""
        if self.path is None or not os.path.lexists(self.path):
            return
        try:
            entries = _parse(self.path)
        except (OSError, ValueError, RecursionError) as exc:
            self._move_aside(exc)
            return
        self.entries.extend(entries)
        self.next_id = max([e["id"] for e in entries], default=-1) + 1
        log.info("transcript: %d entries from %s", len(self.entries), self.path)

    def _move_aside(self, reason: BaseException) -> None:
        """Rename the unreadable file to the first free ``.unreadable[.N]`` name (never onto one).

        If it cannot be moved, the transcript is kept in memory only: writing would overwrite it.
        """
        assert self.path is not None
        why = "nested too deep" if isinstance(reason, RecursionError) else str(reason)
        for n in range(MAX_ASIDE):
            aside = self.path.with_name(FILENAME + ".unreadable" + (f".{n}" if n else ""))
            if os.path.lexists(aside):
                continue
            try:
                os.rename(self.path, aside)
            except OSError as exc:
                log.error("transcript %s unreadable (%s) and not moved aside (%s): kept in memory only",
                          self.path, why, exc.strerror or exc)  # fmt: skip
                break
            log.warning("transcript %s unreadable (%s); moved to %s, starting empty", self.path, why, aside)
            return
        else:
            log.error("transcript %s unreadable (%s) and %d files are already aside: kept in memory only",
                      self.path, why, MAX_ASIDE)  # fmt: skip
        self.path = None

    def take(self) -> tuple[int, str] | None:
        """``(generation, content)`` if something changed since the last call (event loop side)."""
        if self.path is None or not self._dirty or self._clearing:
            return None  # during a clear, a list it may remove must not be taken for writing
        self._dirty = False
        self._generation += 1
        return self._generation, _dump(self.entries)

    def write(self, generation: int, body: str) -> None:
        """Write ``body`` atomically (temp + fsync + rename); runs in a worker thread.

        A body older than the one already written is skipped, so a slow periodic write cannot land
        over a clear taken after it. Raises :class:`SaveError` (and marks the list to be retried).
        """
        assert self.path is not None
        with self._write_lock:
            if generation <= self._written:
                return
            try:
                _write_atomically(self.path, body)
            except OSError as exc:
                self._dirty = True  # try again on the next flush
                raise SaveError(self.path, exc) from None
            self._written = generation

    def flush(self) -> None:
        """Write now if something changed (at shutdown); a failure is logged."""
        taken = self.take()
        if taken is not None:
            self._write_logged(*taken)

    async def flush_async(self) -> None:
        taken = self.take()
        if taken is not None:
            await asyncio.to_thread(self._write_logged, *taken)

    def _write_logged(self, generation: int, body: str) -> None:
        try:
            self.write(generation, body)
        except SaveError as exc:
            self._throttled(logging.ERROR, "write", "%s (retrying every second)", exc)

    # -- changes ------------------------------------------------------------------------------

    def add(self, topic: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The entry a ``segment`` or ``sign`` message makes (None if it makes none or is malformed)."""
        if topic == "segment":
            top = payload.get("top_k")
            best = top[0] if isinstance(top, list) and top and isinstance(top[0], dict) else {}
            label, prob = best.get("label"), best.get("prob")
            if not self.segments_seen:
                self.segments_seen = True
                self._drop_signs()
        elif topic == "sign" and not self.segments_seen:
            label, prob = payload.get("label"), payload.get("prob")
        else:
            return None
        fields = {"id": self.next_id, "ts": payload.get("ts"), "label": label, "prob": prob, "kind": topic}
        entry = _entry(fields)
        if entry is None:
            return None
        self.next_id += 1
        self.entries.append(entry)
        if topic == "sign":
            self._signs_added.add(entry["id"])
        self._dirty = True
        return entry

    def _drop_signs(self) -> None:
        if self._signs_added:
            kept = [e for e in self.entries if e["id"] not in self._signs_added]
            self.entries.clear()
            self.entries.extend(kept)
            self._signs_added.clear()
            self._dirty = True

    async def clear_async(self) -> int:
        """Remove every entry (for every viewer) once the empty list is on disk; how many there were.

        Raises :class:`SaveError` if it cannot be written: then nothing is removed. Entries that
        arrive while the write is under way are kept.
        """
        last = self.next_id - 1
        count = len(self.entries)
        if self.path is not None:
            self._generation += 1
            self._clearing += 1
            try:
                await asyncio.to_thread(self.write, self._generation, _dump(()))
            finally:
                self._clearing -= 1
        kept = [e for e in self.entries if e["id"] > last]
        self.entries.clear()
        self.entries.extend(kept)
        self._signs_added.intersection_update(e["id"] for e in kept)
        self._dirty = bool(kept)
        return count

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.entries)


def _parse(path: Path) -> list[dict[str, Any]]:
    """The valid entries of a transcript file; ``OSError``/``ValueError``/``RecursionError`` if unusable."""
    # No symlink is followed (O_NOFOLLOW); a FIFO or device is refused before it is read.
    raw = read_small_regular_file_nofollow(path, MAX_FILE_BYTES)
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a transcript file of this version")
    stored = data.get("entries", [])
    if not isinstance(stored, list):
        raise ValueError("its entries are not a list")
    return [e for e in map(_entry, stored) if e is not None]


def read_small_regular_file_nofollow(path: Path, max_bytes: int) -> bytes:
    """:func:`edge.util.files.read_small_regular_file` on ``path`` itself, not where a symlink points."""
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "a symbolic link", str(path))
    return read_small_regular_file(path, max_bytes)


def _dump(entries: Any) -> str:
    return json.dumps({"format": FORMAT, "entries": list(entries)}, ensure_ascii=False, separators=(",", ":"))


def _write_atomically(path: Path, body: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".transcript-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def default_state_dir() -> Path:
    """systemd's ``$STATE_DIRECTORY`` (``StateDirectory=slovo-web``), else the XDG state directory."""
    systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "slovo-web"


def prepare_state_dir(directory: Path) -> Path:
    """Create ``directory`` (mode 0700) and check it is a writable directory; ``ValueError`` if not."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
            raise ValueError(f"--state-dir {directory}: not a writable directory")
    except OSError as exc:
        raise ValueError(f"--state-dir {directory}: {exc.strerror or exc}") from None
    return directory
