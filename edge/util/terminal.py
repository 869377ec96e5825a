"""Text from files and the network, made safe to print on a terminal.

Labels, source names and model names come from model metadata and from ZeroMQ messages: an escape
sequence in one must appear as text and never reach the terminal, where it could clear the screen
(``ESC[2J``), retitle the window (``ESC]0;…BEL``), start a C1 control sequence (U+009B is a
one-character ``ESC[``) or reorder what follows (bidi overrides and isolates, U+202A–U+202E,
U+2066–U+2069). Every control (Unicode category Cc: C0, DEL, C1), format (Cf) and line/paragraph
separator (Zl, Zp) character is escaped; the zero-width joiner stays (it joins emoji). Used by
``slr-listen`` (both modes) and ``slr-predict``'s table.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

_ESCAPED = frozenset({"Cc", "Cf", "Zl", "Zp"})
_KEPT = frozenset({"\u200d"})  # ZWJ: harmless, and emoji need it


def _unsafe(ch: str) -> bool:
    return ch not in _KEPT and unicodedata.category(ch) in _ESCAPED


def for_terminal(text: str) -> str:
    """``text`` with each unsafe character shown as ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN`` text."""
    if text.isprintable():  # fast path: no Cc/Cf/Zl/Zp in it (isprintable is False for all of them)
        return text
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(value: Any) -> Any:
    """``value`` with :func:`for_terminal` applied to every string in it (keys too), recursively."""
    if isinstance(value, str):
        return for_terminal(value)
    if isinstance(value, Mapping):
        return {printable(key): printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [printable(item) for item in value]
    return value


def json_line(value: Any) -> str:
    """One line of JSON for a terminal or a pipe: UTF-8 text (Cyrillic as is), but every unsafe
    character as a JSON ``\\uXXXX`` escape (a surrogate pair above U+FFFF), so it is still valid
    JSON that decodes to exactly ``value``."""
    text = json.dumps(value, ensure_ascii=False)
    if text.isprintable():
        return text
    return "".join(_json_escape(ch) if _unsafe(ch) else ch for ch in text)


def _json_escape(ch: str) -> str:
    # Only inside strings: outside them JSON text is ASCII punctuation, digits and letters.
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
