"""``slr-predict --srt/--vtt`` output paths (issue 28): checked before any work, refused in one line.

A symlink (to a file, or dangling) was replaced by a regular file; ``out/x`` and ``out/alias/x``
(``alias -> out``) were written as two files onto one; a name too long for the file system (or one
that fits but not with the temporary file's extra characters) was exit 1 after the whole video.
Now :func:`edge.util.files.output_file_problem` and :func:`~edge.util.files.same_output_problem`
refuse them first, as ``slr-export`` and ``slr-eval`` refuse symlinks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.util.files import TEMP_NAME_EXTRA, output_file_problem, replaced_on_success, same_output_problem
from tests.helpers_onnx import build_tiny_onnx

REPO = Path(__file__).resolve().parents[1]


def predict(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.commands.predict", *args],
        capture_output=True, text=True, cwd=REPO, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_onnx(tmp_path_factory.mktemp("model") / "m.onnx")


def name_max(directory: Path) -> int:
    return os.pathconf(directory, "PC_NAME_MAX")


def layouts(tmp: Path) -> dict[str, tuple[list[str], list[Path]]]:
    """Case -> (subtitle flags, paths that must be unchanged afterwards)."""
    out = tmp / "out"
    out.mkdir()
    target = tmp / "precious.txt"
    target.write_text("keep me\n")
    (out / "link.srt").symlink_to(target)
    (out / "dangling.vtt").symlink_to(tmp / "nowhere.vtt")
    (out / "alias").symlink_to(out)
    (out / "rel.srt").symlink_to("../precious.txt")
    limit = name_max(out)
    return {
        "symlink-to-file": (["--srt", str(out / "link.srt")], [target]),
        "symlink-relative": (["--vtt", str(out / "rel.srt")], [target]),
        "symlink-dangling": (["--vtt", str(out / "dangling.vtt")], []),
        "alias-directory": (["--srt", str(out / "x.txt"), "--vtt", str(out / "alias" / "x.txt")], []),
        "alias-dot-dot": (
            ["--srt", str(out / "x.txt"), "--vtt", str(out / "alias" / ".." / "out" / "x.txt")],
            [],
        ),
        "name-300": (["--srt", str(out / ("n" * 300 + ".srt"))], []),
        "name-fits-but-not-its-temp": (["--srt", str(out / ("t" * (limit - 4) + ".srt"))], []),
        "dir-component-300": (["--vtt", str(out / ("d" * 300) / "x.vtt")], []),
        "cyrillic-too-long": (["--srt", str(out / ("я" * 130 + ".srt"))], []),
    }


def test_output_paths_are_refused_in_one_line_before_any_work(
    model: Path, sample_video: Path, tmp_path: Path
) -> None:
    cases = layouts(tmp_path)
    before = {p: p.read_bytes() for _, keep in cases.values() for p in keep}
    listing = sorted(os.listdir(tmp_path / "out"))
    report = []
    for name, (flags, _) in cases.items():
        done = predict(str(sample_video), "--model", str(model), *flags)
        one_line = done.stderr.startswith("slr-predict: error:") and done.stderr.strip().count("\n") == 0
        if done.returncode != 2 or not one_line or "Traceback" in done.stderr:
            report.append(f"{name}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    assert not report, "\n".join(report)
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(os.listdir(tmp_path / "out")) == listing  # nothing written, links still links
    assert all((tmp_path / "out" / n).is_symlink() for n in ("link.srt", "dangling.vtt", "rel.srt"))


def test_output_file_problem(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    assert output_file_problem(tmp_path / "new.srt") is None
    assert output_file_problem(tmp_path / "file") is None  # replaced atomically, as before
    assert "symbolic link" in (output_file_problem(tmp_path / "link") or "")
    assert "directory" in (output_file_problem(tmp_path) or "")
    assert "not a regular file" in (output_file_problem(tmp_path / "fifo") or "")
    assert "missing" in (output_file_problem(tmp_path / "nodir" / "x") or "")
    longest = "a" * (name_max(tmp_path) - TEMP_NAME_EXTRA)
    assert output_file_problem(tmp_path / longest) is None
    with replaced_on_success(tmp_path / longest) as tmp:  # the check's arithmetic is the writer's
        tmp.write_text("ok")
    assert "too long" in (output_file_problem(tmp_path / (longest + "a")) or "")
    assert output_file_problem(tmp_path / ("d" * 300) / "x") is not None


def test_same_output_problem(tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(tmp_path)
    assert same_output_problem({"a": tmp_path / "x", "b": tmp_path / "y"}) is None
    assert "same file" in (same_output_problem({"a": tmp_path / "x", "b": tmp_path / "alias" / "x"}) or "")
    assert "same file" in (same_output_problem({"a": "x", "b": os.path.abspath("x")}) or "")
