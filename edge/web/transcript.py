"""The transcript: recognised signs kept by ``slr-web`` for every viewer, on disk, bounded.

Entries come from the daemon's ``segment`` messages (a whole signing episode, the unit a
transcript wants) and, for a daemon that publishes windows only, from ``sign`` events; once a
segment arrives, the sign entries this process added are dropped and signs are no longer added
(the page did this per tab before; now every viewer sees the same list).

The list lives in ``<state dir>/transcript.json``: at most :data:`MAX_ENTRIES` entries (oldest
dropped first), labels cut to :data:`MAX_LABEL`, written atomically (temp file in the same
directory, fsync, rename) at most once a second and at shutdown, so it survives a reload, a
restart and a power cut (then it is at most a second old). A file that cannot be read (not
JSON, not a regular file, over :data:`MAX_FILE_BYTES`) is moved aside
(``transcript.json.unreadable``), never overwritten or followed, and the list starts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import stat
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILENAME = "transcript.json"
FORMAT = 1
MAX_ENTRIES = 1000
MAX_LABEL = 200
KINDS = ("segment", "sign")
#: A transcript file of MAX_ENTRIES entries is well under this; a bigger one is not ours.
MAX_FILE_BYTES = 4 * 1024 * 1024


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class Transcript:
    """The shared transcript; methods are called from the event loop (the writer runs in a thread)."""

    def __init__(self, directory: Path | None, max_entries: int = MAX_ENTRIES) -> None:
        self.path = None if directory is None else Path(directory) / FILENAME
        self.entries: deque[dict[str, Any]] = deque(maxlen=max_entries)
        self.next_id = 0
        self.segments_seen = False
        self._signs_added: set[int] = set()
        self._dirty = False
        self._write_lock = threading.Lock()
        self.load()

    # -- persistence --------------------------------------------------------------------------

    def load(self) -> None:
        if self.path is None or not os.path.lexists(self.path):
            return
        try:
            info = os.lstat(self.path)
            if not stat.S_ISREG(info.st_mode):  # a FIFO would hang the start, a symlink points elsewhere
                raise ValueError("not a regular file")
            if info.st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not a transcript file of this version")
            entries = [e for e in map(_entry, data.get("entries", [])) if e is not None]
        except (OSError, ValueError) as exc:
            aside = self.path.with_name(FILENAME + ".unreadable")
            log.warning("transcript %s unreadable (%s); moved to %s, starting empty", self.path, exc, aside)
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return
        self.entries.extend(entries)
        self.next_id = max([e["id"] for e in entries], default=-1) + 1
        log.info("transcript: %d entries from %s", len(self.entries), self.path)

    def take(self) -> str | None:
        """The file's new content if something changed since the last call (event loop side)."""
        if self.path is None or not self._dirty:
            return None
        self._dirty = False
        return json.dumps(
            {"format": FORMAT, "entries": list(self.entries)}, ensure_ascii=False, separators=(",", ":")
        )

    def write(self, body: str) -> None:
        """Write ``body`` atomically (temp + fsync + rename); runs in a worker thread."""
        assert self.path is not None
        with self._write_lock:
            fd, tmp = tempfile.mkstemp(prefix=".transcript-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(body)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except OSError as exc:
                self._dirty = True  # try again on the next flush
                log.error("cannot write the transcript %s: %s", self.path, exc)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def flush(self) -> None:
        """Write now if something changed (at shutdown, after a clear)."""
        body = self.take()
        if body is not None:
            self.write(body)

    async def flush_async(self) -> None:
        body = self.take()
        if body is not None:
            await asyncio.to_thread(self.write, body)

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

    def clear(self) -> int:
        """Remove every entry (for every viewer); written at once. Returns how many there were."""
        count = len(self.entries)
        self.entries.clear()
        self._signs_added.clear()
        self._dirty = True
        self.flush()
        return count

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.entries)


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
