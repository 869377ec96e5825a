"""Which model files have already passed the finiteness probe, so a second start skips it.

:func:`edge.recognition.inference.check_finite_outputs` runs a model on seven test windows: for a
full-size model that is most of :func:`~edge.recognition.inference.load_model`'s time (about
1 of 1.5 s here), paid again at every cold start of ``slr-predict`` and every upload worker,
although the answer depends only on the file's bytes and on ONNX Runtime. So a passed probe
leaves a marker named by the file's sha256, the ORT version and the providers, in the user's
cache (``$XDG_CACHE_HOME/slovo-edge/probed``); a file with other bytes, another ORT or other
providers is probed afresh. A marker can only skip the probe: the output of every window is
still checked at run time (:func:`edge.recognition.classify.classify_window` rejects non-finite
output), so a forged marker costs an early error message, nothing more. Where the cache cannot
be written (a read-only home under systemd) every start probes, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

#: Set to ``0`` to never read or write markers (every load probes).
ENV_SWITCH = "SLOVO_PROBE_CACHE"


def _directory() -> Path | None:
    """``$XDG_CACHE_HOME`` or ``$HOME/.cache``, from the environment only.

    Never :meth:`pathlib.Path.home`: under systemd's ``DynamicUser=`` there is no ``$HOME`` and no
    passwd entry to fall back on, and it raises (the daemon crash-looped on that in a booted unit).
    """
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.environ.get("HOME")
        if not home or home == "/":
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "slovo-edge" / "probed"


def _marker(sha256: str, providers: Sequence[str]) -> Path | None:
    import onnxruntime as ort

    folder = _directory()
    if folder is None:
        return None
    key = hashlib.sha256(f"{sha256}\0{ort.__version__}\0{','.join(providers)}".encode()).hexdigest()
    return folder / key


def passed(sha256: str, providers: Sequence[str]) -> bool:
    """Whether this file (by checksum) passed the probe under this ORT and these providers."""
    marker = _marker(sha256, providers)
    try:
        return marker is not None and marker.is_file() and not marker.is_symlink()
    except OSError:  # a cache we may not look into (a sandboxed home): probe
        return False


def record(sha256: str, providers: Sequence[str]) -> None:
    """Remember a passed probe; any failure to write is ignored (the next start probes again)."""
    marker = _marker(sha256, providers)
    if marker is None:
        return
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker.touch(exist_ok=True)
