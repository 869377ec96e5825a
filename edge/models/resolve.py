"""``--model NAME``: a registry name that ``slr-model fetch`` has installed stands for its ``.onnx``.

One function the daemon's config, ``slr-predict`` and ``slr-web`` call on their ``--model``
value before opening it. A path (anything that exists, contains a slash or ends in ``.onnx``)
is returned unchanged, so nothing that worked before changes meaning.
"""

from __future__ import annotations

import os

from edge.models.cache import Cache
from edge.models.errors import BadSource, ModelStoreError
from edge.models.registry import load_registry


class ModelNotFetched(BadSource, ValueError):
    """A registry name given as ``--model`` before ``slr-model fetch`` installed it (a usage error)."""


def resolve_model(value: str, cache: Cache | None = None) -> str:
    """The model file ``value`` names; :class:`ModelNotFetched` for a registry name not fetched yet."""
    if not value or os.path.exists(value) or "/" in value or os.sep in value or value.endswith(".onnx"):
        return value
    names = load_registry()
    base = value.removesuffix("-int8")
    if base not in names:
        return value
    try:
        path = (cache or Cache()).installed(value)
    except ModelStoreError as exc:  # an unreadable cache index: the user's to fix, one line
        raise ModelNotFetched(str(exc)) from None
    if path is None:
        flags = " --int8" if value != base else ""
        raise ModelNotFetched(
            f"model {value!r} is not fetched yet: run 'slr-model fetch {base}{flags}' first"
        )
    return str(path)
