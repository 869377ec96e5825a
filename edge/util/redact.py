"""How a source or URL is shown: credentials and secret parameters masked, everywhere, once.

Kept apart from the camera code (and its OpenCV import) so settings, logs and every command can
redact without loading a video decoder.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

#: Query (and fragment) parameters whose value is a secret, compared after lower-casing and dropping
#: ``-``/``_``/``.``; a name that merely ends with one of :data:`_SECRET_SUFFIXES` counts too
#: (``X-Amz-Signature``, ``client_secret``, ``sessionToken``).
_SECRET_NAMES = frozenset(
    {"user", "username", "pass", "passwd", "password", "pwd", "token", "key", "auth", "secret",
     "signature", "sig", "credential", "credentials", "session", "sessionid", "sid", "jwt", "code",
     "authorization", "bearer", "apikey", "accesstoken", "accesskey"}
)  # fmt: skip
_SECRET_SUFFIXES = ("token", "key", "secret", "password", "passwd", "pwd", "signature", "auth", "credential")
#: ``scheme://`` as RFC 3986 spells a scheme; where a URL starts inside a longer text.
_SCHEME = re.compile(r"(?i)(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://")
MASK = "***"


def _secret_name(name: str) -> bool:
    key = re.sub(r"[-_.\s]", "", unquote(name)).lower()
    return key in _SECRET_NAMES or key.endswith(_SECRET_SUFFIXES)


def _mask_params(params: str) -> str:
    """``a=1&token=x;b`` with the values of secret names replaced by :data:`MASK`."""
    parts = re.split(r"([&;])", params)
    for i in range(0, len(parts), 2):
        name, sep, _value = parts[i].partition("=")
        if sep and _secret_name(name):
            parts[i] = f"{name}={MASK}"
    return "".join(parts)


def _redact_url(url: str) -> str:
    """One URL (``scheme://`` at its start) with its userinfo and secret parameters masked.

    The userinfo ends at the LAST ``@``: a password may hold ``@``, ``/``, ``#`` or ``?``
    unescaped (people type them so, and FFmpeg's own split is not ours to rely on), and a host
    never holds ``@``, so everything before the last one is masked. That hides the host too in the
    rare URL whose path or query has an ``@``: showing too little is the safe side. What follows
    is split as RFC 3986 does (query after the first ``?``, fragment after the first ``#``) and
    the values of secret parameters in both (``?token=``, ``#access_token=``) are masked.
    """
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = MASK + "@" + rest.rsplit("@", 1)[1]
    rest, hash_, fragment = rest.partition("#")
    rest, mark, query = rest.partition("?")
    return f"{scheme}://{rest}{mark}{_mask_params(query)}{hash_}{_mask_params(fragment)}"


def redact(text: str | int | os.PathLike[str]) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``; how a source is shown.

    ``rtsp://admin:p@ss/w#rd@cam/stream`` → ``rtsp://***@cam/stream``; query and fragment
    parameters that carry a secret (``?user=…&password=…``, ``api_key=``, ``access_token=``,
    ``X-Amz-Signature=``, case-insensitive) are masked too. The one function that decides what
    of a source may be shown: ``status.source``, logs, every error message and ``slr-predict``'s
    output use it, on a bare source as well as on a whole message. A text that starts with a URL
    is one URL (a password may hold spaces); inside a message a URL ends at the next white space.
    """
    shown = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    body = shown.lstrip()
    if _SCHEME.match(body):
        return shown[: len(shown) - len(body)] + _redact_url(body)
    out, pos = [], 0
    for match in _SCHEME.finditer(shown):
        if match.start() < pos:  # a URL inside one already masked (?next=http://...)
            continue
        space = re.compile(r"\s").search(shown, match.start())
        end = len(shown) if space is None else space.start()
        out += [shown[pos : match.start()], _redact_url(shown[match.start() : end])]
        pos = end
    out.append(shown[pos:])
    return "".join(out)
