"""File helpers shared by the runtime (model checksum in status messages) and the tools (atomic writes)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Lowercase hex sha256 of a file, read in chunks (models can be 100+ MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (``os.umask`` can only be read by setting it, so it is set back at once)."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def new_file_mode(base: int = 0o666) -> int:
    """The mode ``open()`` would give a new file: ``base`` less the umask.

    Temporary files (``mkstemp``: 0600) that are renamed into place get this mode, so a result
    is exactly as shared as the user asked for: a private umask (077) keeps face landmarks,
    which are biometric data, private.
    """
    return base & ~current_umask()


def output_dir_problem(out_dir: Path, what: str = "output directory") -> str | None:
    """Create ``out_dir`` if needed; why it cannot take new files (one line), or None if it can.

    Tools call this before hours of work, not after: a typo'd or read-only output must fail first.
    A name the file system cannot hold (a 300-character component) is such a problem too, not an
    exception.
    """
    try:
        if out_dir.exists() and not out_dir.is_dir():
            return f"{what} {str(out_dir)!r} exists and is not a directory"
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {what} {str(out_dir)!r}: {exc.strerror or exc}"
    if not os.access(out_dir, os.W_OK | os.X_OK):
        return f"{what} {str(out_dir)!r} is not writable"
    return None


#: What :func:`replaced_on_success` and :func:`write_files_atomically` add to a name for their
#: temporary file: ``.NAME.`` + 8 random characters + ``.tmp``.
TEMP_NAME_EXTRA = len("..") + 8 + len(".tmp")


def _temp_prefix(name: str) -> str:
    return f".{name}."


def output_file_problem(path: str | Path, what: str = "output") -> str | None:
    """Why ``path`` cannot take a file written atomically (one line), or None if it can.

    Checked before any work, so a bad output fails first and in one line (exit 2), never after
    the work with a traceback: a symbolic link (to a file, or dangling) is refused rather than
    replaced by a regular file (what ``slr-export`` and ``slr-eval`` do too, through
    :func:`write_files_atomically`), as is a directory or a special file, a missing or read-only
    directory, and a name too long for the file system once the temporary file's extra
    characters are added. Paths that resolve to one file are :func:`same_output_problem`'s.
    """
    path = Path(path)
    shown = repr(str(path))
    if not path.name:
        return f"{what} {shown} names no file"
    parent = path.parent if str(path.parent) else Path(".")
    try:
        if parent.is_dir():
            limit = os.pathconf(parent, "PC_NAME_MAX")
            if len(os.fsencode(path.name)) + TEMP_NAME_EXTRA > limit:
                most = limit - TEMP_NAME_EXTRA
                return f"{what} {shown}: the file name is too long (at most {most} bytes here)"
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode):
            return f"{what} {shown} is a symbolic link; refusing to write through it"
        if info is not None and stat.S_ISDIR(info.st_mode):
            return f"{what} {shown} is a directory"
        if info is not None and not stat.S_ISREG(info.st_mode):
            return f"{what} {shown} exists and is not a regular file"
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return f"cannot write {what} into {str(parent)!r} (missing or not writable)"
    except OSError as exc:
        return f"{what} {shown}: {exc.strerror or exc}"
    return None


def same_output_problem(paths: Mapping[str, str | Path]) -> str | None:
    """Why two of ``paths`` (``{what: path}``) cannot both be written: they are one file, maybe
    through a symlinked directory (``out/x`` and ``out/alias/x``), or an existing input."""
    seen: dict[str, str] = {}
    for what, path in paths.items():
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError) as exc:
            return f"{what} {str(path)!r}: {exc}"
        if real in seen:
            return f"{seen[real]} and {what} name the same file"
        seen[real] = what
    return None


def read_regular_file(path: str | Path) -> bytes:
    """The bytes of ``path``, which must be a regular file (symlinks followed).

    A FIFO given as a config file would block ``open()`` until some writer appears, i.e. forever;
    it is opened non-blocking and refused, as are directories and devices (``OSError`` whose
    ``strerror`` says so; a missing file is the usual ``FileNotFoundError``).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, a device or a directory?)", str(path))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def read_small_regular_file(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` (a regular file, symlinks followed) if it holds at most ``max_bytes``.

    For secrets, keys and certificates given on the command line: a FIFO would block ``open()``
    forever and ``/dev/zero`` would be read until memory runs out, so both are refused before
    reading (``OSError`` whose ``strerror`` says why), as is a file over the limit.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, a device or a directory?)", str(path))
        if info.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)  # the file may grow after fstat
        if len(data) > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        return data
    finally:
        os.close(fd)


@contextlib.contextmanager
def replaced_on_success(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto ``path`` if the block succeeds, else removed.

    For results written by someone else (a subprocess given the temporary name) or in pieces: a
    reader never sees a partial file, and an interrupted write (Ctrl-C, SIGTERM, a full disk) leaves
    the previous ``path``, or nothing, never half of the new one. The result gets the mode a plain
    ``open()`` would give it (:func:`new_file_mode`), and is flushed to disk before the rename.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path.name), suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # cleanup must not mask the original error
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`replaced_on_success`)."""
    with replaced_on_success(path) as tmp:
        tmp.write_bytes(data)


def write_files_atomically(files: dict[Path, bytes]) -> None:
    """Write each ``path: data`` through a temporary file in its directory, then rename them all.

    All or nothing as far as a file system allows: every temporary file is written and synced
    before the first rename, so a full disk or an error leaves every old file as it was (the
    temporaries are removed); only a failure between two renames can mix old and new. A path that
    is a symlink is refused (``OSError``) rather than written through: ``--out`` pointing at a
    symlinked ``metrics.json`` must not destroy its target.
    """
    for path in files:
        if path.is_symlink():
            raise OSError(errno.ELOOP, "is a symbolic link; refusing to write through it", str(path))
        if path.exists() and not path.is_file():
            raise OSError(errno.EEXIST, "exists and is not a regular file", str(path))
    temps: dict[Path, str] = {}
    try:
        for path, data in files.items():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path.name), suffix=".tmp")
            temps[path] = tmp
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, new_file_mode())
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
