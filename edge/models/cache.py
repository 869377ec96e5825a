"""The model cache: downloaded files keyed by checksum, partial downloads, locks, and two small indexes.

Layout under the cache root (``SLOVO_MODEL_CACHE``; under systemd ``$STATE_DIRECTORY/models``,
i.e. ``/var/lib/slovo-edge/models``; else ``$XDG_CACHE_HOME/slovo-edge/models``)::

    blobs/<sha256>/<file>   a downloaded file, named by the checksum of its bytes
    partial/<key>.part      a download in progress (kept after Ctrl-C or a drop, for resuming)
    locks/<key>.lock        held while one fetch downloads or exports <key>
    models/<key>.onnx       a model exported from a checkpoint (key: checkpoint, labels, int8)
    lock.json               source → sha256 of its first download (trust on first use)
    installed.json          registry name → the model file ``--model NAME`` resolves to

Everything is written by rename (``.part`` or a temporary file, then :func:`os.replace`), so a
reader never sees half a file, and the indexes are read-modify-written under a lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from edge.models.errors import BadSource, FetchFailed
from edge.util.files import atomic_write_bytes, file_sha256, output_dir_problem

CACHE_ENV = "SLOVO_MODEL_CACHE"
TOFU_FILE = "lock.json"
INSTALLED_FILE = "installed.json"


def default_cache_dir() -> Path:
    """Where models are cached: ``SLOVO_MODEL_CACHE``, the unit's state directory, or the XDG cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:  # systemd's StateDirectory=slovo-edge
        return Path(state) / "models"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slovo-edge" / "models"


def source_key(source_id: str) -> str:
    """A file-name-safe key for a source (URL or registry file)."""
    return hashlib.sha256(source_id.encode()).hexdigest()[:24]


class Cache:
    """One cache directory (created on first use)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def ensure(self) -> None:
        """Create the layout, or :class:`BadSource` saying why the directory cannot be used."""
        problem = output_dir_problem(self.root, "model cache")
        if problem:
            raise BadSource(f"{problem} (set {CACHE_ENV} to another directory)")
        for sub in ("blobs", "partial", "locks", "models"):
            (self.root / sub).mkdir(exist_ok=True)

    # -- files -----------------------------------------------------------------------------------
    def blob(self, sha256: str, *, check: bool = False) -> Path | None:
        """The cached file whose bytes have ``sha256``, if there is one.

        With ``check`` its bytes are hashed again, and a file that no longer matches (a bad disk, a
        hand edit) is deleted and reported absent, so the caller downloads it afresh.
        """
        folder = self.root / "blobs" / sha256
        if folder.is_dir():
            for path in folder.iterdir():
                if path.is_file() and not path.name.startswith("."):
                    if check and file_sha256(path) != sha256:
                        path.unlink(missing_ok=True)
                        return None
                    return path
        return None

    def store(self, part: Path, sha256: str, name: str) -> Path:
        """Move a verified ``part`` into ``blobs/<sha256>/<name>`` (atomic rename)."""
        folder = self.root / "blobs" / sha256
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        os.replace(part, target)
        return target

    def partial(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.part"

    def model(self, key: str) -> Path:
        return self.root / "models" / f"{key}.onnx"

    @contextlib.contextmanager
    def locked(self, key: str, *, waiting: str | None = None) -> Iterator[None]:
        """Hold ``locks/<key>.lock``; says once on stderr (``waiting``) when another fetch holds it."""
        lock = FileLock(str(self.root / "locks" / f"{key}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if waiting:
                print(waiting, file=sys.stderr)
            lock.acquire(poll_interval=0.1)  # Ctrl-C still interrupts the wait
        try:
            yield
        finally:
            lock.release()

    # -- indexes ---------------------------------------------------------------------------------
    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.root / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise FetchFailed(f"cannot read the cache index {path}: {exc}") from None
        return data if isinstance(data, dict) else {}

    @contextlib.contextmanager
    def _updating(self, name: str) -> Iterator[dict[str, Any]]:
        with self.locked(f"index-{name}"):
            data = self._read_json(name)
            yield data
            atomic_write_bytes(
                self.root / name,
                (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode(),
            )

    def recorded(self, source_id: str) -> dict[str, Any] | None:
        """What the first download of ``source_id`` was (``sha256``, ``size``, ``first_seen``), if any."""
        entry = self._read_json(TOFU_FILE).get(source_id)
        return entry if isinstance(entry, dict) and isinstance(entry.get("sha256"), str) else None

    def record(self, source_id: str, sha256: str, size: int) -> None:
        """Trust ``sha256`` for ``source_id`` from now on."""
        with self._updating(TOFU_FILE) as data:
            data[source_id] = {
                "sha256": sha256,
                "size": size,
                "first_seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }

    def tofu(self) -> dict[str, Any]:
        return self._read_json(TOFU_FILE)

    def installed(self, name: str) -> Path | None:
        """The model a registry name was last fetched to (None if never, or since removed)."""
        entry = self._read_json(INSTALLED_FILE).get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            return None
        path = Path(entry["path"])
        if not path.is_absolute():
            path = self.root / path
        return path if path.is_file() else None

    def set_installed(self, name: str, path: Path, sha256: str) -> None:
        try:
            shown = str(path.relative_to(self.root))
        except ValueError:
            shown = str(path)
        with self._updating(INSTALLED_FILE) as data:
            data[name] = {"path": shown, "sha256": sha256}

    def installed_all(self) -> dict[str, Any]:
        return self._read_json(INSTALLED_FILE)
