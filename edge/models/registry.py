"""The registry of published models: ``registry.toml`` (data, shipped in the package) as objects.

A name stands for a model file and, for a checkpoint, the labels it was trained with. The
registry says where each file lives; ``SLOVO_MODEL_MIRROR`` says where to get it instead (an
offline site, a company server, the tests), under the same file name.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

from edge.models.errors import BadSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport, a dependency there
    import tomli as tomllib

#: Environment variable: base URL serving every registry file as ``<base>/<file>``.
MIRROR_ENV = "SLOVO_MODEL_MIRROR"
KINDS = ("checkpoint", "onnx")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Asset:
    """One published file: where it lives and what is known about its bytes."""

    url: str
    file: str
    kind: str = "labels"
    sha256: str | None = None
    size: int | None = None

    def location(self) -> str:
        """The URL to download from: the mirror's copy when ``SLOVO_MODEL_MIRROR`` is set."""
        mirror = os.environ.get(MIRROR_ENV, "").strip()
        if mirror:
            return f"{mirror.rstrip('/')}/{self.file}"
        return self.url


@dataclass(frozen=True)
class Entry:
    """A registry name: its model file and (for a checkpoint) its labels."""

    name: str
    description: str
    model: Asset
    labels: Asset | None


def _asset(name: str, part: str, data: Any, *, kind: str | None) -> Asset:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("url"), str)
        or not isinstance(data.get("file"), str)
    ):
        raise ValueError(f"registry entry {name}.{part} needs url and file")
    sha = data.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _HEX64.match(sha)):
        raise ValueError(f"registry entry {name}.{part}: sha256 must be 64 lowercase hex digits")
    size = data.get("size")
    if size is not None and not (isinstance(size, int) and size > 0):
        raise ValueError(f"registry entry {name}.{part}: size must be a positive integer")
    asset_kind = data.get("kind", kind or "labels")
    if kind is None and asset_kind not in KINDS:
        raise ValueError(f"registry entry {name}.{part}: kind must be one of {KINDS}")
    if "/" in data["file"] or data["file"].startswith("."):
        raise ValueError(f"registry entry {name}.{part}: file must be a plain file name")
    return Asset(url=data["url"], file=data["file"], kind=asset_kind, sha256=sha, size=size)


def parse_registry(text: str) -> dict[str, Entry]:
    """The entries of a registry file's text (``ValueError`` for a malformed one: a bug in the package)."""
    entries: dict[str, Entry] = {}
    for name, data in tomllib.loads(text).items():
        model = _asset(name, "model", data.get("model"), kind=None)
        labels = _asset(name, "labels", data["labels"], kind="labels") if "labels" in data else None
        entries[name] = Entry(
            name=name, description=str(data.get("description", "")), model=model, labels=labels
        )
    return entries


def load_registry() -> dict[str, Entry]:
    """The registry shipped with this package."""
    return parse_registry(
        resources.files("edge.models").joinpath("registry.toml").read_text(encoding="utf-8")
    )


def lookup(name: str) -> Entry:
    """The entry called ``name``, or :class:`BadSource` listing the names there are."""
    entries = load_registry()
    if name not in entries:
        raise BadSource(f"{name!r} is not a registry name (known: {', '.join(sorted(entries))})")
    return entries[name]


def is_registry_name(text: str) -> bool:
    """Whether ``text`` names a registry entry (rather than a path or URL)."""
    return text in load_registry()
