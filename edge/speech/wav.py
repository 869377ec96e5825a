"""Is a WAV file that espeak-ng wrote complete? Checked before it is renamed into place.

espeak-ng exits 0 when its writes fail (a full disk): the file it leaves is empty, or a header
whose sizes were never filled in, or shorter than its header says. Such a file must not be renamed
into place as an utterance, nor counted as spoken. Only the RIFF structure is read (the first chunks
and the file size), never the samples.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

#: The RIFF header (12 bytes) plus a minimal ``fmt `` chunk (24) and the ``data`` chunk header (8).
MIN_WAV_BYTES = 44


def wav_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a complete PCM WAV with at least one sample (one line), or None if it is."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        return f"cannot read the WAV it wrote: {exc.strerror or exc}"
    if size < MIN_WAV_BYTES:
        return f"the WAV it wrote has {size} bytes (disk full?)"
    riff, riff_size, wave = struct.unpack_from("<4sI4s", head)
    if riff != b"RIFF" or wave != b"WAVE":
        return "the file it wrote is not a WAV"
    if riff_size + 8 > size:
        return f"the WAV it wrote is truncated: {size} of {riff_size + 8} bytes (disk full?)"
    pos, has_fmt = 12, False
    while pos + 8 <= len(head):
        chunk, length = struct.unpack_from("<4sI", head, pos)
        if chunk == b"fmt ":
            has_fmt = True
        elif chunk == b"data":
            if not has_fmt:
                return "the WAV it wrote has no format chunk"
            if length == 0:
                return "the WAV it wrote has no samples (disk full?)"
            if pos + 8 + length > size:
                return f"the WAV it wrote is truncated: {size - pos - 8} of {length} data bytes (disk full?)"
            return None
        pos += 8 + length + (length & 1)
    return "the WAV it wrote has no data chunk"
