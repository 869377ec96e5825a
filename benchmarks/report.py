"""Write one benchmark's figures into its own section of ``docs/BENCHMARKS.md``.

Each benchmark script owns a section delimited by HTML comments, so scripts can be rerun
independently without clobbering each other's tables.
"""

from __future__ import annotations

import platform
import re
from datetime import datetime, timezone
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Figures written by the scripts in `benchmarks/` (each owns one section; rerun a script to refresh it).\n"
    "Comparisons are made side by side in one run on the same machine, reported as ratios.\n"
)


def machine_line() -> str:
    """A one-line description of where the figures were measured."""
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section ``name`` of the benchmarks file with ``markdown``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- begin:{name} -->\n{markdown.rstrip()}\n\n"
        f"_Measured {stamp} on {machine_line()}._\n<!-- end:{name} -->"
    )
    pattern = re.compile(rf"<!-- begin:{re.escape(name)} -->.*?<!-- end:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
