"""Slovo's ``annotations.csv``: the one description of its columns and of how to read it.

Used by ``slr-extract`` (which videos), training (labels and the train/val split) and the
synthetic dataset writer, so the three can never disagree about the format.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

#: Slovo's columns, in its order (the file is TAB-separated with this header).
ANNOTATION_COLUMNS = (
    "attachment_id",
    "user_id",
    "width",
    "height",
    "length",
    "text",
    "train",
    "begin",
    "end",
)


class AnnotationsError(ValueError):
    """An annotations file that cannot be read or lacks required columns (one-line message)."""


def read_table(path: Path, required: Sequence[str] = ()) -> list[dict[str, str]]:
    """Rows of a TAB- or comma-separated file with a header (Slovo uses TABs).

    Raises :class:`AnnotationsError` naming the file and the missing columns, if any.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = handle.readline()
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter="\t" if "\t" in header else ",")
            missing = [column for column in required if column not in (reader.fieldnames or ())]
            if missing:
                raise AnnotationsError(
                    f"{path}: missing column(s) {', '.join(missing)} "
                    f"(expected a TAB-separated header with {', '.join(required)})"
                )
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AnnotationsError(f"cannot read {path}: {exc}") from None


def read_annotations(path: Path) -> list[dict[str, str]]:
    """Rows of a Slovo ``annotations.csv``, checked to have all of Slovo's columns."""
    return read_table(path, ANNOTATION_COLUMNS)
