"""Class-name lists: the label sources a model's class ids can come from (docs/MODEL.md §6).

Accepted, detected from the content:

- JSON mapping with ``class_names`` (the published ``labels_500.json``; its ``num_classes`` and
  ``sign2ord``, when present, must agree), or with only ``ord2sign`` / ``sign2ord``;
- a JSON list of names;
- a table with a header (TAB-separated, or comma-separated ``.csv``): a Slovo ``annotations.csv``
  (``text`` column → the sorted distinct values in code-point order, the order the 1001-class
  weights were trained with), or a ``gloss`` column (``slovo_classes.tsv``; ordered by ``index``
  when that column exists);
- plain text, one name per line.

Anything else raises :class:`LabelError`: a wrong label file silently renames every prediction.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TABLE_SUFFIXES = (".csv", ".tsv")


class LabelError(ValueError):
    """A label source that is not one of the accepted formats, or is internally inconsistent."""


def load_labels(path: Path) -> list[str]:
    """Class names of ``path``, index = class id."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path}: not UTF-8 text ({exc})") from exc
    if not text.strip():
        raise LabelError(f"{path}: empty label file")
    stripped = text.lstrip()
    first_line = text.splitlines()[0]
    if path.suffix.lower() == ".json" or stripped[0] in "[{":
        labels = _from_json(text, path)
    elif "\t" in first_line or path.suffix.lower() in TABLE_SUFFIXES:
        labels = _from_table(text, path)
    else:
        labels = _from_lines(text, path)
    return _validated(labels, path)


def _from_json(text: str, path: Path) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelError(f"{path}: invalid JSON ({exc})") from exc
    if isinstance(data, list):
        return _strings(data, path, "JSON list")
    if not isinstance(data, Mapping):
        raise LabelError(f"{path}: JSON must be a list of names or a mapping, got {type(data).__name__}")
    if "class_names" in data:
        labels = _strings(data["class_names"], path, "class_names")
    elif "ord2sign" in data:
        labels = _ordered(_id_map(data["ord2sign"], path, "ord2sign"), path, "ord2sign")
    elif "sign2ord" in data:
        inverted = {_class_id(v, path, "sign2ord"): k for k, v in _mapping(data["sign2ord"], path).items()}
        labels = _ordered(inverted, path, "sign2ord")
    else:
        raise LabelError(
            f"{path}: JSON mapping has none of class_names / ord2sign / sign2ord (keys: {sorted(data)[:10]})"
        )
    _check_consistent(data, labels, path)
    return labels


def _check_consistent(data: Mapping[str, Any], labels: list[str], path: Path) -> None:
    """The redundant fields of a labels JSON must agree with the list used."""
    if "num_classes" in data and data["num_classes"] != len(labels):
        raise LabelError(f"{path}: num_classes is {data['num_classes']} but there are {len(labels)} names")
    if "sign2ord" in data:
        for name, class_id in _mapping(data["sign2ord"], path).items():
            index = _class_id(class_id, path, "sign2ord")
            if index >= len(labels) or labels[index] != name:
                raise LabelError(f"{path}: sign2ord[{name!r}] = {class_id} disagrees with the class list")


def _mapping(value: object, path: Path) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise LabelError(f"{path}: expected a JSON mapping, got {type(value).__name__}")
    return value


def _class_id(value: object, path: Path, field: str) -> int:
    try:
        # JSON gives str/int/float/None/...: int() of the wrong kinds raises, which is the check.
        index = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise LabelError(f"{path}: {field} has non-integer class id {value!r}") from None
    if index < 0 or str(index) != str(value).strip():
        raise LabelError(f"{path}: {field} has invalid class id {value!r}")
    return index


def _id_map(value: object, path: Path, field: str) -> dict[int, str]:
    return {_class_id(k, path, field): v for k, v in _mapping(value, path).items()}


def _ordered(by_id: Mapping[int, object], path: Path, field: str) -> list[str]:
    """Names of ids 0..N-1; a gap or an extra id is an error."""
    expected = set(range(len(by_id)))
    if set(by_id) != expected:
        missing = sorted(expected - set(by_id))[:5]
        raise LabelError(f"{path}: {field} class ids are not 0..{len(by_id) - 1} (missing e.g. {missing})")
    return _strings([by_id[i] for i in range(len(by_id))], path, field)


def _from_table(text: str, path: Path) -> list[str]:
    header = text.splitlines()[0]
    delimiter = "\t" if "\t" in header else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    rows = list(reader)
    if "text" in columns:  # Slovo annotations.csv: one row per clip
        values = _strings([row["text"] for row in rows], path, "text column")
        return sorted(set(values))
    if "gloss" in columns:  # a class table, one row per class
        if "index" in columns:
            return _ordered({_class_id(r["index"], path, "index"): r["gloss"] for r in rows}, path, "index")
        return _strings([row["gloss"] for row in rows], path, "gloss column")
    raise LabelError(f"{path}: table has neither a 'text' nor a 'gloss' column (columns: {columns})")


def _from_lines(text: str, path: Path) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line:
            raise LabelError(f"{path}: line {number} is empty (one class name per line, no gaps)")
    return lines


def _strings(values: object, path: Path, what: str) -> list[str]:
    if not isinstance(values, list):
        raise LabelError(f"{path}: {what} must be a list, got {type(values).__name__}")
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise LabelError(f"{path}: {what} entry {i} is not a non-empty string: {value!r}")
    return list(values)


def _validated(labels: list[str], path: Path) -> list[str]:
    if not labels:
        raise LabelError(f"{path}: no class names found")
    seen: set[str] = set()
    for name in labels:
        if name in seen:
            raise LabelError(f"{path}: duplicate class name {name!r}")
        seen.add(name)
    return labels
