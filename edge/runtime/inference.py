"""Load an exported ``.onnx`` model, check it against the contract, and run it with ONNX Runtime.

The ``.onnx`` file is everything the device gets, so it is checked once, at load, before any
thread starts: a wrong or damaged file must be a one-line :class:`ModelError` (exit code 2), not
a failure an hour into the run. A warm-up inference on a zero window checks that the output size
matches the labels and takes the first-run cost out of the latency figures, and
:func:`check_finite_outputs` refuses a model whose outputs are NaN or infinite (damaged weights, a
diverged checkpoint): such a model would run forever without publishing anything meaningful.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import onnxruntime as ort

from edge.contract.layout import LAYOUT_NAME, NUM_MODEL_ROWS
from edge.contract.model_contract import (
    DEFAULT_FPS,
    INPUT_FRAME_IDX,
    INPUT_FRAMES,
    META_FPS,
    META_LABELS,
    META_LAYOUT,
    META_SOURCE_SHA256,
    META_WINDOW,
    OUTPUT_LOGITS,
    REQUIRED_METADATA,
    fps_problem,
)
from edge.runtime.settings import ConfigError
from edge.util.files import file_sha256
from edge.util.logs import error_line

#: Largest window a model may declare (the published models use 32-128): a bigger one is a damaged file.
MAX_WINDOW = 4096


class ModelError(RuntimeError):
    """The model file cannot be used; the message is one line naming the file and the problem."""


#: ONNX Runtime's own CPU engine: always installed, the default of every tool.
CPU_PROVIDER = "CPUExecutionProvider"
DEFAULT_PROVIDERS: tuple[str, ...] = (CPU_PROVIDER,)
#: Listed as available by every onnxruntime wheel but runs nothing on the device (it calls remote
#: endpoints; a model's nodes all fall back to CPU), so there is nothing to measure or choose.
REMOTE_PROVIDERS = frozenset({"AzureExecutionProvider"})
_PROVIDER_SUFFIX = "ExecutionProvider"


def available_providers() -> list[str]:
    """Execution providers the installed onnxruntime can run (``onnxruntime-gpu`` adds CUDA, TensorRT)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(requested: Sequence[str]) -> tuple[str, ...]:
    """ONNX Runtime's names for ``requested``, in order; :class:`ConfigError` (one line) if one is missing.

    Names are matched without regard to case, and the ``ExecutionProvider`` suffix may be left
    out (``cuda`` → ``CUDAExecutionProvider``). ONNX Runtime itself would only warn and silently
    run on the CPU, which on a Jetson looks like a working GPU setup that is 10x too slow.
    """
    if not requested:
        raise ConfigError(f"execution_providers must name at least one provider (e.g. {CPU_PROVIDER})")
    available = available_providers()
    by_key = {name.lower(): name for name in available}
    by_key.update({name.lower().removesuffix(_PROVIDER_SUFFIX.lower()): name for name in available})
    resolved = []
    for name in requested:
        match = by_key.get(name.strip().lower())
        if match is None:
            import onnxruntime as ort

            raise ConfigError(
                f"execution provider {name!r} is not available in onnxruntime {ort.__version__}; "
                f"available: {', '.join(available)} (CUDA/TensorRT need the onnxruntime-gpu package)"
            )
        if match not in resolved:
            resolved.append(match)
    return tuple(resolved)


@dataclass(frozen=True)
class EdgeModelInfo:
    """What the daemon reports about its model (status messages, ``slr-edge check-model``)."""

    name: str
    path: str
    sha256: str
    source_sha256: str
    labels: tuple[str, ...]
    window: int
    fps: float
    layout: str
    metadata: dict[str, str]
    #: Execution providers the session actually uses, in order of preference.
    providers: tuple[str, ...] = DEFAULT_PROVIDERS


class OrtSession(Protocol):
    """The part of ``onnxruntime.InferenceSession`` the edge uses (ONNX Runtime ships no type stubs)."""

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]) -> list[Any]: ...
    def get_modelmeta(self) -> Any: ...
    def get_inputs(self) -> Sequence[Any]: ...
    def get_outputs(self) -> Sequence[Any]: ...


class EdgeModel:
    """An ONNX Runtime session plus the metadata the daemon needs to feed and read it."""

    def __init__(self, session: OrtSession, info: EdgeModelInfo) -> None:
        self._session = session
        self.info = info

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    @property
    def window(self) -> int:
        return self.info.window

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def sha256(self) -> str:
        """sha256 of the ``.onnx`` file itself (what status messages report)."""
        return self.info.sha256

    @property
    def source_sha256(self) -> str:
        """sha256 of the checkpoint the model was exported from (``slr.source_sha256``)."""
        return self.info.source_sha256

    def predict_batch(self, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Logits ``[B, C]`` for ``frames [B, window, 92, 3]`` and ``idx [B, window]``."""
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        idx = np.ascontiguousarray(idx, dtype=np.float32)
        expected = (self.window, NUM_MODEL_ROWS, 3)
        if frames.ndim != 4 or frames.shape[1:] != expected or idx.shape != frames.shape[:2]:
            raise ValueError(
                f"expected frames [B, {self.window}, 92, 3] and idx [B, {self.window}], "
                f"got {frames.shape} and {idx.shape}"
            )
        (logits,) = self._session.run([OUTPUT_LOGITS], {INPUT_FRAMES: frames, INPUT_FRAME_IDX: idx})
        return np.asarray(logits)

    def predict(self, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Logits ``[C]`` for one preprocessed window ``frames [window, 92, 3]``, ``idx [window]``."""
        return self.predict_batch(frames[None], idx[None])[0]


def probe_windows(window: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Test inputs ``(frames [1, window, 92, 3], idx [1, window])``: all zeros, and a fixed pseudo-random
    window in [-1, 1] (seeded, so every tool probes the same inputs)."""
    idx = np.arange(window, dtype=np.float32)[None]
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1.0, 1.0, (1, window, NUM_MODEL_ROWS, 3)).astype(np.float32)
    return [(np.zeros((1, window, NUM_MODEL_ROWS, 3), np.float32), idx), (noise, idx)]


def check_finite_outputs(
    predict_batch: Callable[[np.ndarray, np.ndarray], np.ndarray], window: int, origin: str | Path
) -> None:
    """Raise :class:`ModelError` unless ``predict_batch`` gives finite logits on :func:`probe_windows`.

    The one finiteness check of a model's outputs: the daemon's start and ``check-model`` run it
    through :func:`load_model`; export's verification calls it with its own session
    (``lambda f, i: session.run(["logits"], {"frames": f, "frame_idx": i})[0]``). ``origin``
    names the model in the message.
    """
    for frames, idx in probe_windows(window):
        logits = np.asarray(predict_batch(frames, idx))
        if not np.isfinite(logits).all():
            bad = int((~np.isfinite(logits)).sum())
            raise ModelError(
                f"model {origin} outputs non-finite values (NaN or infinity; {bad} of {logits.size} logits) "
                "on a test window: its weights are damaged or it was exported from a diverged checkpoint"
            )


def _dims_ok(shape: list[Any], expected: tuple[int, ...]) -> bool:
    """Shape of an ORT input ``[batch?, ...]``: the first dim may be symbolic, the rest must match."""
    if len(shape) != len(expected) + 1:
        return False
    return all(not isinstance(got, int) or got == want for got, want in zip(shape[1:], expected, strict=True))


def _parse_metadata(path: Path, meta: dict[str, str]) -> tuple[tuple[str, ...], int, float, str]:
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise ModelError(
            f"model {path} lacks metadata {', '.join(missing)} (was it exported with slr-export?)"
        )
    try:
        labels = json.loads(meta[META_LABELS])
    except ValueError:
        raise ModelError(f"model {path}: {META_LABELS} is not valid JSON") from None
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"model {path}: {META_LABELS} must be a non-empty JSON list of strings")
    try:
        window = int(meta[META_WINDOW])
        fps = float(meta.get(META_FPS) or DEFAULT_FPS)
    except ValueError:
        raise ModelError(
            f"model {path}: {META_WINDOW}/{META_FPS} must be numbers, got "
            f"{meta[META_WINDOW]!r}/{meta.get(META_FPS)!r}"
        ) from None
    if not 1 <= window <= MAX_WINDOW or fps_problem(fps):
        raise ModelError(
            f"model {path}: invalid {META_WINDOW}={window} or {META_FPS}={fps} "
            f"(the window must be 1..{MAX_WINDOW}, the rate {fps_problem(fps) or 'is fine'})"
        )
    if meta[META_LAYOUT] != LAYOUT_NAME:
        raise ModelError(
            f"model {path} was exported for layout {meta[META_LAYOUT]!r}, this runtime has {LAYOUT_NAME!r}"
        )
    return tuple(labels), window, fps, meta[META_LAYOUT]


def create_session(
    path: str | Path, threads: int = 1, providers: Sequence[str] = DEFAULT_PROVIDERS
) -> ort.InferenceSession:
    """The session every tool uses (daemon, export verification, benchmarks); CPU unless told otherwise.

    ``providers`` are ONNX Runtime's names in order of preference (see :func:`resolve_providers`);
    nodes a provider cannot run fall back to the CPU.

    Full graph optimisation; thread spinning off, because idle ORT workers that busy-wait after
    each run steal the cores MediaPipe needs (measured on the 2-core box, full-size model:
    p50 74 ms without spinning vs 127 ms with it while another process computes).
    """
    import onnxruntime as ort  # deferred: `slr-edge --help` should not pay for it

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # ORT's own warnings would bypass our logging
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))


def load_model(path: str | Path, threads: int = 1, providers: Sequence[str] = DEFAULT_PROVIDERS) -> EdgeModel:
    """Open and validate ``path``; raise :class:`ModelError` with a one-line reason if it is unusable.

    ``providers`` must already be valid names (:func:`resolve_providers`; the daemon's config does it).
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file")
    try:
        sha256 = file_sha256(path)
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc.strerror or exc}") from None

    try:
        session = create_session(path, threads, providers)
    except Exception as exc:  # ORT raises several types (Fail, InvalidProtobuf, ...) for bad files
        raise ModelError(
            f"model file {path} is not a usable ONNX model (truncated or corrupt?): {error_line(exc)}"
        ) from None

    meta = dict(session.get_modelmeta().custom_metadata_map)
    labels, window, fps, layout = _parse_metadata(path, meta)

    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if set(inputs) != {INPUT_FRAMES, INPUT_FRAME_IDX}:
        raise ModelError(
            f"model {path} has inputs {sorted(inputs)}, expected {[INPUT_FRAMES, INPUT_FRAME_IDX]}"
        )
    if not _dims_ok(inputs[INPUT_FRAMES], (window, NUM_MODEL_ROWS, 3)):
        raise ModelError(
            f"model {path}: input {INPUT_FRAMES} has shape {inputs[INPUT_FRAMES]}, "
            f"expected [batch, {window}, {NUM_MODEL_ROWS}, 3]"
        )
    if not _dims_ok(inputs[INPUT_FRAME_IDX], (window,)):
        raise ModelError(
            f"model {path}: input {INPUT_FRAME_IDX} has shape {inputs[INPUT_FRAME_IDX]}, "
            f"expected [batch, {window}]"
        )
    if OUTPUT_LOGITS not in outputs:
        raise ModelError(f"model {path} has outputs {sorted(outputs)}, expected {OUTPUT_LOGITS!r}")

    info = EdgeModelInfo(
        name=path.stem,
        path=str(path),
        sha256=sha256,
        source_sha256=meta[META_SOURCE_SHA256],
        labels=labels,
        window=window,
        fps=fps,
        layout=layout,
        metadata=meta,
        providers=tuple(session.get_providers()),
    )
    model = EdgeModel(session, info)
    try:
        logits = model.predict(
            np.zeros((window, NUM_MODEL_ROWS, 3), np.float32), np.arange(window, dtype=np.float32)
        )
    except Exception as exc:
        raise ModelError(f"model {path} fails on a test window: {error_line(exc)}") from None
    if logits.shape != (len(labels),):
        raise ModelError(
            f"model {path} outputs {logits.shape[-1] if logits.ndim else 0} classes "
            f"but {META_LABELS} lists {len(labels)} labels"
        )
    check_finite_outputs(model.predict_batch, window, path)
    return model
