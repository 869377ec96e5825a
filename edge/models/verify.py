"""What a downloaded file is, judged from its bytes, and the torch-free check of an ``.onnx``.

A server can answer a model URL with anything: a login page, an error page, half a file. The
first bytes say enough to refuse an HTML page at once and to tell a PyTorch checkpoint (a zip
archive or a bare pickle) from an ONNX protobuf when the URL does not. An ``.onnx`` is then
checked by the daemon's own loader (:func:`edge.recognition.inference.load_model`: the model
contract in its metadata, its inputs and outputs, a test window), so what ``slr-model`` installs
is exactly what ``slr-edge run`` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.contract.model_contract import META_UNTRAINED
from edge.models.errors import BadSource

#: Suffixes that decide the kind when the registry does not.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
ONNX_SUFFIXES = (".onnx",)


def head(path: Path, size: int = 1024) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def is_html(data: bytes) -> bool:
    """Whether ``data`` (a file's first bytes) starts like an HTML page."""
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<?xml")) or (
        text.startswith(b"<") and b"<html" in text
    )


def sniff_kind(path: Path) -> str:
    """``"checkpoint"`` (zip archive or pickle: what ``torch.save`` writes) or ``"onnx"``."""
    data = head(path, 16)
    if data.startswith(b"PK\x03\x04") or (len(data) > 1 and data[0] == 0x80 and data[1] <= 5):
        return "checkpoint"
    return "onnx"


def kind_from_name(name: str) -> str | None:
    lowered = name.lower()
    if lowered.endswith(ONNX_SUFFIXES):
        return "onnx"
    if lowered.endswith(CHECKPOINT_SUFFIXES):
        return "checkpoint"
    return None


def refuse_html(path: Path, shown: str) -> None:
    """:class:`BadSource` if the file at ``path`` (downloaded from ``shown``) is an HTML page."""
    if is_html(head(path)):
        raise BadSource(f"{shown} sent an HTML page, not a model (a login, quota or error page?)")


@dataclass(frozen=True)
class OnnxSummary:
    """What ``slr-model verify`` reports about a model."""

    path: str
    sha256: str
    source_sha256: str
    labels: int
    window: int
    fps: float
    untrained: bool
    first_labels: tuple[str, ...]


def verify_onnx(path: Path) -> OnnxSummary:
    """Load ``path`` as the daemon would; :class:`BadSource` with the loader's one line if it is unusable."""
    from edge.recognition.inference import ModelError, load_model

    try:
        model = load_model(path)
    except ModelError as exc:
        raise BadSource(str(exc)) from None
    info = model.info
    return OnnxSummary(
        path=str(path),
        sha256=info.sha256,
        source_sha256=info.source_sha256,
        labels=len(info.labels),
        window=info.window,
        fps=info.fps,
        untrained=info.metadata.get(META_UNTRAINED, "").lower() == "true",
        first_labels=tuple(info.labels[:5]),
    )
