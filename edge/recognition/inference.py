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
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import onnxruntime as ort

from edge.contract.layout import LAYOUT_NAME, NUM_COORDS, NUM_LANDMARKS, NUM_MODEL_ROWS
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
from edge.contract.preprocess import preprocess
from edge.util.files import file_sha256
from edge.util.logs import error_line
from edge.util.settings import ConfigError

#: Largest window a model may declare (the published models use 32-128): a bigger one is a damaged file.
MAX_WINDOW = 4096
#: Most ONNX Runtime intra-op threads any tool asks for (the ``threads`` setting's bound): ORT takes a
#: C int and would fail on 2**31 with an error about the model, not the setting.
MAX_THREADS = 256
#: Output element types a model's logits may have (ORT's names); a string tensor has no probabilities.
FLOAT_OUTPUTS = ("tensor(float)", "tensor(double)", "tensor(float16)")


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


def synthetic_keypoints(frames: int, seed: int = 0) -> np.ndarray:
    """Raw keypoints ``[frames, 543, 3]`` with every landmark present (uniform in [0.2, 0.8], seeded):
    what a probe or a timing run feeds the real preprocessing path."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.8, (frames, NUM_LANDMARKS, NUM_COORDS)).astype(np.float32)


def probe_windows(window: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Test inputs ``(frames [1, window, 92, 3], idx [1, window])`` every model must answer finitely.

    All zeros and a fixed pseudo-random window in [-1, 1] (seeded, so every tool probes the same
    inputs), then what the preprocessing makes of real clips: short ones padded with ``idx = -1``
    (1, 5 and window/2 frames: every upload and segment shorter than the window looks like this,
    and a model can fail on padding alone), one of exactly ``window`` frames (the window
    :func:`edge.recognition.classify.window_latencies_ms` times) and a longer one, pooled.
    """
    idx = np.arange(window, dtype=np.float32)[None]
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1.0, 1.0, (1, window, NUM_MODEL_ROWS, 3)).astype(np.float32)
    probes = [(np.zeros((1, window, NUM_MODEL_ROWS, 3), np.float32), idx), (noise, idx)]
    for frames in sorted({1, min(5, window), max(1, window // 2), window, 2 * window}):
        clip_frames, clip_idx = preprocess(synthetic_keypoints(frames), window)
        probes.append((clip_frames[None], clip_idx[None]))
    return probes


def check_finite_outputs(
    predict_batch: Callable[[np.ndarray, np.ndarray], np.ndarray], window: int, origin: str | Path
) -> None:
    """Raise :class:`ModelError` unless ``predict_batch`` gives finite logits, and finite probabilities,
    on every :func:`probe_windows` window.

    The one finiteness check of a model's outputs: the daemon's start and ``check-model`` run it
    through :func:`load_model`; export's verification calls it with its own session
    (``lambda f, i: session.run(["logits"], {"frames": f, "frame_idx": i})[0]``). ``origin``
    names the model in the message. Finite logits can still overflow the softmax (logits near
    float32's limit): the probabilities are what gets published, so they are checked too.
    """
    from edge.recognition.decisions import softmax

    for number, (frames, idx) in enumerate(probe_windows(window)):
        logits = np.asarray(predict_batch(frames, idx))
        if not np.issubdtype(logits.dtype, np.floating):
            raise ModelError(f"model {origin} outputs {logits.dtype} logits, expected floating point numbers")
        padded = bool((idx < 0).any())
        what = "a padded test window (a clip shorter than the window)" if padded else "a test window"
        if not np.isfinite(logits).all():
            bad = int((~np.isfinite(logits)).sum())
            raise ModelError(
                f"model {origin} outputs non-finite values (NaN or infinity; {bad} of {logits.size} logits) "
                f"on {what} (probe {number}): it could never publish a result; its weights are damaged "
                "or it was exported from a diverged checkpoint"
            )
        with np.errstate(all="ignore"):
            probs = softmax(logits)
        if not np.isfinite(probs).all():
            raise ModelError(
                f"model {origin} outputs logits too large for probabilities (softmax overflows) on {what} "
                f"(probe {number}): it could never publish a result"
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
    except RecursionError:  # json recurses per level: [[[[... 100,000 deep
        raise ModelError(f"model {path}: {META_LABELS} is nested too deep to be a list of strings") from None
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"model {path}: {META_LABELS} must be a non-empty JSON list of strings")
    for number, label in enumerate(labels):
        if not _valid_utf8(label):
            raise ModelError(
                f"model {path}: label {number} of {META_LABELS} is not valid UTF-8 text (a lone surrogate "
                "escape): it can be neither published nor printed"
            )
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


def _valid_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (JSON's ``"\\ud800"`` escapes decode to lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_threads(threads: int) -> None:
    """Refuse a thread count ONNX Runtime cannot take (:class:`ConfigError`, blaming the setting)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"threads must be in [1, {MAX_THREADS}], got {threads!r}")


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

    check_threads(threads)
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
    check_threads(threads)  # before any file work: a bad setting must not look like a bad model
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

    try:
        meta = dict(session.get_modelmeta().custom_metadata_map)
    except UnicodeDecodeError:  # pybind11 decodes each value as UTF-8
        raise ModelError(f"model {path}: its metadata is not valid UTF-8 text") from None
    labels, window, fps, layout = _parse_metadata(path, meta)

    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    output_types = {o.name: o.type for o in session.get_outputs()}
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
    if output_types[OUTPUT_LOGITS] not in FLOAT_OUTPUTS:
        raise ModelError(
            f"model {path}: output {OUTPUT_LOGITS} is {output_types[OUTPUT_LOGITS]}, expected tensor(float)"
        )

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


class BackgroundLoad:
    """:func:`load_model` in a thread, while the caller opens its source and starts MediaPipe.

    Building the ONNX Runtime session of a full-size model takes about a second, and so does
    MediaPipe's start; on two cores they need not follow each other on the path a person waits
    on (``slr-predict`` on a short clip). A failure is kept and raised by :meth:`check` (cheap,
    called per frame, so a bad model still stops the work within a frame of being found out) and
    by :meth:`result`. The thread is a daemon thread: Ctrl-C never waits for it.
    """

    def __init__(
        self, path: str | Path, threads: int = 1, providers: Sequence[str] = DEFAULT_PROVIDERS
    ) -> None:
        check_threads(threads)  # a bad setting is the caller's error, at once
        self._model: EdgeModel | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._load, args=(path, threads, providers), name="slovo-model-load", daemon=True
        )
        self._thread.start()

    def _load(self, path: str | Path, threads: int, providers: Sequence[str]) -> None:
        try:
            self._model = load_model(path, threads, providers)
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc

    def check(self) -> None:
        """Raise the load's error now if it already failed; otherwise return at once."""
        if self._error is not None:
            raise self._error

    def result(self) -> EdgeModel:
        """The loaded model (waits for it), or the load's error."""
        self._thread.join()
        self.check()
        assert self._model is not None
        return self._model
