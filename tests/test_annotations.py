"""Slovo annotations.csv reading: one reader for extraction, training and synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.contract.annotations import ANNOTATION_COLUMNS, AnnotationsError, read_annotations, read_table


def test_reads_slovo_tab_separated_file(tmp_path: Path) -> None:
    path = tmp_path / "annotations.csv"
    row = ["a1", "u1", "1280", "720", "40", "привет", "True", "0", "40"]
    path.write_text("\t".join(ANNOTATION_COLUMNS) + "\n" + "\t".join(row) + "\n", encoding="utf-8")
    rows = read_annotations(path)
    assert rows == [dict(zip(ANNOTATION_COLUMNS, row, strict=True))]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "annotations.csv"
    path.write_text("attachment_id\ttext\na1\tпривет\n", encoding="utf-8")
    with pytest.raises(AnnotationsError, match=r"missing column.*user_id.*train"):
        read_annotations(path)


def test_comma_separated_tables_and_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("path,label\nx.npz,один\n", encoding="utf-8")
    assert read_table(path) == [{"path": "x.npz", "label": "один"}]
    with pytest.raises(AnnotationsError, match="cannot read"):
        read_table(tmp_path / "missing.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x9c" * 10)
    with pytest.raises(AnnotationsError):
        read_table(binary)
