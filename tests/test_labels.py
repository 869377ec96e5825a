"""Label sources (docs/MODEL.md §6): published JSON, JSON/plain lists, Slovo annotations.csv, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_src.labels import LabelError, load_labels

ANNOTATIONS = (
    "attachment_id\tuser_id\twidth\theight\tlength\ttext\ttrain\tbegin\tend\n"
    "a1\tu1\t720\t1280\t100\tмама\tTrue\t10\t50\n"
    "a2\tu2\t720\t1280\t100\t---\tTrue\t0\t100\n"
    "a3\tu1\t720\t1280\t100\tЁ\tFalse\t5\t40\n"
    "a4\tu3\t720\t1280\t100\tмама\tTrue\t3\t70\n"
    "a5\tu3\t720\t1280\t100\tА\tFalse\t3\t70\n"
    "a6\tu4\t720\t1280\t100\tвремя 11 часов\tTrue\t3\t70\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_published_labels_500_json(reference_dir: Path) -> None:
    path = reference_dir / "labels_500.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    labels = load_labels(path)
    assert len(labels) == 500
    assert labels == data["class_names"]
    assert all(labels[index] == name for name, index in data["sign2ord"].items())


def test_json_list(tmp_path: Path) -> None:
    assert load_labels(write(tmp_path, "l.json", '["б", "а", "---"]')) == ["б", "а", "---"]


def test_json_ord2sign_only(tmp_path: Path) -> None:
    path = write(tmp_path, "l.json", json.dumps({"ord2sign": {"1": "б", "0": "а"}}))
    assert load_labels(path) == ["а", "б"]


def test_plain_text_list_keeps_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "labels.txt", "привет\nвремя 11 часов\n---\n\n")
    assert load_labels(path) == ["привет", "время 11 часов", "---"]


def test_annotations_csv_gives_sorted_distinct_texts(tmp_path: Path) -> None:
    labels = load_labels(write(tmp_path, "annotations.csv", ANNOTATIONS))
    assert labels == ["---", "Ё", "А", "время 11 часов", "мама"]  # Ё is U+0401, before А U+0410
    assert labels == sorted(labels, key=lambda s: [ord(c) for c in s])


def test_class_table_with_gloss_column(reference_dir: Path) -> None:
    labels = load_labels(reference_dir.parent / "slovo_classes.tsv")
    assert len(labels) == 1001 and labels[1000] == "---"


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("empty.txt", "\n\n", "empty"),
        ("bad.json", '{"class_names": ["a", "b"', "invalid JSON"),
        ("obj.json", '{"classes": ["a"]}', "class_names"),
        ("nums.json", "[1, 2, 3]", "not a non-empty string"),
        ("count.json", '{"class_names": ["a", "b"], "num_classes": 3}', "num_classes"),
        ("sign2ord.json", '{"class_names": ["a", "b"], "sign2ord": {"a": 1, "b": 0}}', "sign2ord"),
        ("dup.txt", "a\nb\na\n", "duplicate"),
        ("gap.txt", "a\n\nb\n", "line 2"),
        ("table.csv", "id\tname\n0\ta\n", "'text'"),
    ],
)
def test_bad_label_files_raise_label_error(tmp_path: Path, name: str, text: str, match: str) -> None:
    with pytest.raises(LabelError, match=match):
        load_labels(write(tmp_path, name, text))


def test_binary_file_raises_label_error(tmp_path: Path) -> None:
    path = tmp_path / "labels.bin"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(LabelError):
        load_labels(path)
