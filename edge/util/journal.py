"""Logging under systemd's journal: no doubled timestamps, real priorities, no native log noise.

When stderr is connected to journald (``$JOURNAL_STREAM`` names the device and inode of the stream,
see systemd.exec(5)), the journal stamps every line itself, so our lines carry no time of their
own; instead each starts with a syslog priority prefix (``<3>`` = error), which journald turns into
the entry's priority (``journalctl -p warning`` then works).

MediaPipe's C++ graph (absl logging) and TFLite print to file descriptor 2 directly, bypassing
Python's logging: a dozen lines at start and one more when a person is first found. The journal is
for the operator, so :func:`filter_native_stderr` routes descriptor 2 through a pipe and drops
those lines, passing everything else (our log lines, Python warnings, fatal errors) through
unchanged and in order.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

#: Native info and warning lines dropped from the journal (errors stay): absl/glog
#: ("W0000 00:00:1795632001.139378  42 file.cc:186] ..."), absl's pre-initialisation banner,
#: TFLite's delegate message and ONNX Runtime's own ("... [W:onnxruntime:Default, file.cc:613 ...").
NATIVE_NOISE = re.compile(
    rb"^(?:[IW]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|INFO: Created TensorFlow Lite"
    rb"|[\d-]+ [\d:.]+ \[[IWV]:onnxruntime:)"
)

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def stderr_is_journal(environ: dict[str, str] | None = None) -> bool:
    """True if file descriptor 2 is the journal stream systemd set up for this service."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        stat = os.fstat(2)
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``: journald adds the time and parses the priority prefix."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        # One journal entry per record: a multi-line message would become several entries.
        return f"<{priority}>" + super().format(record).replace("\n", " | ")


def filter_native_stderr() -> None:
    """Route file descriptor 2 through a filter thread that drops :data:`NATIVE_NOISE` lines.

    Everything else reaches the original stderr unchanged. At exit the pipe is drained before the
    process ends, so a final error line is never lost.
    """
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not NATIVE_NOISE.match(line))
                if kept:
                    os.write(original, kept)
            if pending and not NATIVE_NOISE.match(pending):
                os.write(original, pending)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()

    def drain() -> None:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the pump reads EOF and ends
        thread.join(2.0)

    atexit.register(drain)


def setup_journal_logging(level: str) -> bool:
    """If stderr is the journal: journal-style log lines and native noise filtered; returns whether it is."""
    if not stderr_is_journal():
        return False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter())
    logging.basicConfig(level=logging.getLevelName(level), handlers=[handler], force=True)
    if level != "DEBUG":  # at DEBUG the native lines may help, so they stay
        filter_native_stderr()
    return True
