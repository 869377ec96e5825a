"""Logging under journald: detection by $JOURNAL_STREAM, priority prefixes, native noise filtered.

The real thing (the daemon under systemd, its journal) is tests/test_deploy_systemd.py; these run
the same code in a child process whose stderr is a file posing as the journal stream.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from edge.util.journal import JournalFormatter, stderr_is_journal

CHILD = r"""
import logging, os, sys
from edge.commands.edge_cli import setup_logging
setup_logging(sys.argv[1])
os.write(2, b"W0000 00:00:1795632001.139378      42 landmark_projection_calculator.cc:186] Using NORM_RECT\n")
os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
os.write(2, b"2026-11-25 18:39:57.156051584 [W:onnxruntime:Default, telemetry_1ds.cc:613 operator()] x\n")
os.write(2, b"E0000 00:00:1795632001.139378      42 graph.cc:1] a native error stays\n")
logging.getLogger("edge.daemon.daemon").info("ready: publishing")
logging.getLogger("edge.daemon.daemon").error("two\nlines")
print("slr-edge: error: the last line before exit", file=sys.stderr)
"""


def run_child(tmp_path: Path, level: str, as_journal: bool) -> str:
    log = tmp_path / f"stderr-{level}-{as_journal}.txt"
    with log.open("wb") as handle:
        stat = os.fstat(handle.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}" if as_journal else "0:0"}
        subprocess.run([sys.executable, "-c", CHILD, level], stderr=handle, env=env, check=True, timeout=60)
    return log.read_text()


def test_under_the_journal_lines_carry_priorities_and_no_native_noise(tmp_path: Path) -> None:
    text = run_child(tmp_path, "INFO", as_journal=True)
    assert text.splitlines() == [
        "E0000 00:00:1795632001.139378      42 graph.cc:1] a native error stays",
        "<6>edge.daemon.daemon: ready: publishing",
        "<3>edge.daemon.daemon: two | lines",
        "slr-edge: error: the last line before exit",
    ]


def test_at_debug_the_native_lines_stay(tmp_path: Path) -> None:
    text = run_child(tmp_path, "DEBUG", as_journal=True)
    assert "landmark_projection_calculator" in text and "<6>edge.daemon.daemon: ready" in text


def test_outside_the_journal_lines_keep_their_timestamps(tmp_path: Path) -> None:
    text = run_child(tmp_path, "INFO", as_journal=False)
    assert " INFO edge.daemon.daemon: ready: publishing" in text
    assert not text.startswith("<")
    assert "landmark_projection_calculator" in text  # a terminal shows everything


def test_stderr_is_journal_compares_device_and_inode() -> None:
    stat = os.fstat(2)
    assert stderr_is_journal({"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"})
    assert not stderr_is_journal({"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino + 1}"})
    assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"})
    assert not stderr_is_journal({})


def test_formatter_maps_levels_to_syslog_priorities() -> None:
    formatter = JournalFormatter()
    record = logging.LogRecord("edge.x", logging.WARNING, __file__, 1, "careful %s", ("now",), None)
    assert formatter.format(record) == "<4>edge.x: careful now"
