"""What a JPEG's header says, read without decoding it: for sources that deliver frames compressed.

An MJPEG network camera sends every frame as a complete JPEG. Decoding one at 720p costs ~4 ms
of CPU, and while the daemon idles almost none of them is ever used: they are held in case a
hand appears, measured for motion, then let go. So such frames stay JPEG bytes until something
needs their pixels (:class:`edge.camera.frame.Frame`), and two facts come from the header
instead: the size, checked against ``max_frame_pixels`` before any decoding (a 200 KB JPEG can
declare 8192 x 8192), and that the bytes are a JPEG at all (a stream may carry garbage).

The motion gate needs only a small copy, which libjpeg makes from the DCT coefficients at 1/8
scale (``cv2.IMREAD_REDUCED_COLOR_8``: 1–2 ms for a 720p camera JPEG against 3–4.5 ms in full,
each output pixel the mean of an 8 x 8 block; the entropy data must still be read) without
decoding the full picture.
"""

from __future__ import annotations

import numpy as np

#: Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic); C4, C8 and CC
#: share the range but are DHT, JPG and DAC, which carry no size.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers that stand alone (no length field): TEM and the restart markers RST0..RST7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's start-of-frame header, or None if ``data`` is not a JPEG.

    Walks the marker segments from SOI to the first SOF (a few hundred bytes, or past an EXIF
    thumbnail); anything malformed, truncated before the SOF, or declaring a zero size gives None.
    """
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if raw[:2] != b"\xff\xd8":
        return None
    pos, end = 2, len(raw)
    while pos + 4 <= end:
        if raw[pos] != 0xFF:
            return None
        while pos < end and raw[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= end:
            return None
        marker = raw[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # a second SOI, EOI or scan data before any SOF
            return None
        if pos + 2 > end:
            return None
        length = int.from_bytes(raw[pos : pos + 2], "big")
        if length < 2:
            return None
        if marker in _SOF_MARKERS:
            if length < 8 or pos + 7 > end:
                return None
            height = int.from_bytes(raw[pos + 3 : pos + 5], "big")
            width = int.from_bytes(raw[pos + 5 : pos + 7], "big")
            return (width, height) if width > 0 and height > 0 else None
        pos += length
    return None
