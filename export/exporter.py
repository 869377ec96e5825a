"""Checkpoint → self-contained, verified ONNX file (the ``slr-export`` pipeline).

Steps, each of which can stop the export before anything is written at ``output``:
load the source (:mod:`export.sources`) → shape the graph (:mod:`export.graph`) → trace to ONNX
with the contract's names and a dynamic batch axis → attach all metadata the daemon needs →
``onnx.checker`` → ONNX Runtime vs PyTorch parity (:mod:`export.verify`) → optional int8
(:mod:`export.quantize`) with its top-1 agreement → the daemon's own loader
(:func:`edge.recognition.inference.load_model`) accepts the file → latency → atomic rename into place.
Work happens in a temporary directory beside ``output`` so the final rename never crosses file
systems and an interrupted or failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import onnx
import torch

from edge.contract.layout import LAYOUT_NAME, NUM_MODEL_ROWS
from edge.contract.model_contract import (
    DEFAULT_FPS,
    INPUT_FRAME_IDX,
    INPUT_FRAMES,
    META_CONFIG,
    META_EXPORTER_VERSION,
    META_FPS,
    META_LABELS,
    META_LAYOUT,
    META_SOURCE_SHA256,
    META_UNTRAINED,
    META_WINDOW,
    OUTPUT_LOGITS,
    fps_problem,
)
from edge.recognition.inference import ModelError, create_session, load_model
from export.graph import prepare_for_export
from export.quantize import quantize_int8
from export.sources import ExportError, Source, load_checkpoint_source, random_init_source
from export.verify import (
    FP32_TOLERANCE,
    INT8_MIN_AGREEMENT,
    ParityResult,
    Windows,
    check_parity,
    measure_latency,
    run_onnx,
    synthetic_windows,
    top1_agreement,
)
from model_src.model import SLRTransformer

log = logging.getLogger(__name__)

#: Where the weights came from: "native", "published" or "random-init".
META_SOURCE_FORMAT = "slr.source_format"
#: Exporter format version, bumped when the graph or metadata layout changes.
EXPORT_FORMAT_VERSION = 1
#: opset 17 runs on every ONNX Runtime the device side accepts (>= 1.17) and has all ops we use.
DEFAULT_OPSET = 17
#: Opsets the exporter is tested with (torch's TorchScript exporter and ONNX Runtime >= 1.17 both
#: handle them); outside this range the export would fail deep inside torch.
MIN_OPSET, MAX_OPSET = 13, 20
#: Windows checked for fp32 parity (edge cases first, see ``synthetic_windows``).
PARITY_WINDOWS = 16
#: Windows compared for int8 top-1 agreement (>= 200 with a prediction; the all-padding one has none).
AGREEMENT_WINDOWS = 256


class ParityError(ExportError):
    """The exported graph does not reproduce the PyTorch model (a bug, not a user error)."""


@dataclass
class Int8Report:
    """What quantisation did and cost."""

    agreement: float
    windows: int
    quantized_nodes: int
    max_abs_diff: float
    fp32_size_bytes: int


@dataclass
class ExportReport:
    """Everything ``slr-export`` prints, for callers that want it as data."""

    output: Path
    source_format: str
    untrained: bool
    num_parameters: int
    num_classes: int
    size_bytes: int
    parity: ParityResult
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    int8: Int8Report | None
    metadata: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def exporter_version(opset: int) -> str:
    """Human-readable provenance of the exporter (``slr.exporter_version``)."""
    try:
        package = importlib_metadata.version("slovo-edge")
    except importlib_metadata.PackageNotFoundError:
        package = "unknown"
    return (
        f"slovo-edge-export/{EXPORT_FORMAT_VERSION} "
        f"(slovo-edge {package}, torch {torch.__version__}, opset {opset})"
    )


def build_metadata(source: Source, *, fps: float, opset: int) -> dict[str, str]:
    """The ``metadata_props`` the daemon reads (keys from :mod:`edge.contract.model_contract`)."""
    meta = {
        META_LABELS: json.dumps(source.labels, ensure_ascii=False),
        META_WINDOW: str(source.config.window),
        META_LAYOUT: LAYOUT_NAME,
        META_CONFIG: json.dumps(source.config.to_dict(), sort_keys=True),
        META_SOURCE_SHA256: source.sha256,
        META_EXPORTER_VERSION: exporter_version(opset),
        META_FPS: str(float(fps)),
        META_SOURCE_FORMAT: source.kind,
        META_UNTRAINED: "true" if source.untrained else "false",
    }
    return meta


def set_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> None:
    """Replace the model's ``metadata_props`` with ``meta``."""
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)


def to_onnx(
    model: SLRTransformer, path: Path, *, window: int, opset: int = DEFAULT_OPSET, dynamo: bool = False
) -> None:
    """Trace the export-shaped copy of ``model`` into ``path`` with the contract's I/O names.

    The TorchScript exporter (``dynamo=False``) is the default: on this model its graph runs
    ~2-3× faster in ONNX Runtime than the dynamo exporter's (benchmarks/bench_export.py), and it
    constant-folds everything derived from parameters (RoPE tables, folded embeddings).
    """
    shaped = prepare_for_export(model)
    # Batch 2 in the example so no size-1 batch dimension gets specialised into the trace.
    frames = torch.zeros(2, window, NUM_MODEL_ROWS, 3)
    idx = torch.arange(window, dtype=torch.float32).repeat(2, 1)
    input_names, output_names = [INPUT_FRAMES, INPUT_FRAME_IDX], [OUTPUT_LOGITS]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer/deprecation chatter is not actionable for users
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.onnx.export(
                shaped,
                (frames, idx),
                dynamic_shapes=({0: batch}, {0: batch}),
                opset_version=max(opset, 18),
                dynamo=True,
                verbose=False,
                input_names=input_names,
                output_names=output_names,
            )
            assert program is not None  # dynamo=True always returns the program
            program.save(str(path))
        else:
            torch.onnx.export(
                shaped,
                (frames, idx),
                str(path),
                opset_version=opset,
                dynamic_axes={
                    INPUT_FRAMES: {0: "batch"},
                    INPUT_FRAME_IDX: {0: "batch"},
                    OUTPUT_LOGITS: {0: "batch"},
                },
                do_constant_folding=True,
                dynamo=False,
                input_names=input_names,
                output_names=output_names,
            )


def _check_output_path(output: Path) -> None:
    """Fail early, with one line, on outputs that cannot be written or must not be replaced.

    The result is renamed over ``output`` at the end, so ``output`` must be absent or a regular
    file: a symlink (the rename would replace the link, not its target), a FIFO, a device or a
    socket is refused rather than destroyed.
    """
    if output.is_symlink():
        raise ExportError(f"output {output} is a symbolic link; give the real path (nothing was written)")
    if output.exists() and output.is_dir():
        raise ExportError(f"output {output} is a directory; give a file name such as model.onnx")
    if output.exists() and not output.is_file():
        raise ExportError(f"output {output} exists and is not a regular file (a device, FIFO or socket?)")
    parent = output.parent
    if not parent.exists():
        raise ExportError(f"output directory does not exist: {parent}")
    if not parent.is_dir():
        raise ExportError(f"output directory is not a directory: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"no permission to write in output directory {parent}")


def _check_options(opset: int, fps: float) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset must be between {MIN_OPSET} and {MAX_OPSET}, got {opset}")
    problem = fps_problem(fps)
    if problem:
        raise ExportError(f"--fps {problem}")


def _check_finite_weights(source: Source) -> None:
    """A checkpoint with NaN/inf weights (a diverged run, a damaged file) exports a useless model."""
    for name, tensor in source.model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ExportError(f"the checkpoint's weights are not finite (NaN or infinity in {name!r})")


def _load_source(
    checkpoint: Path | None,
    *,
    labels: Path | None,
    fmt: str,
    random_init: str | None,
    num_classes: int | None,
) -> Source:
    if random_init is not None:
        if checkpoint is not None:
            raise ExportError("give either a CHECKPOINT or --random-init PRESET, not both")
        return random_init_source(random_init, num_classes=num_classes, labels_path=labels)
    if checkpoint is None:
        raise ExportError("no CHECKPOINT given (or use --random-init PRESET for an untrained demo model)")
    source = load_checkpoint_source(checkpoint, fmt=fmt, labels_path=labels)
    if num_classes is not None and num_classes != source.config.num_classes:
        raise ExportError(
            f"--num-classes {num_classes} does not match the checkpoint's {source.config.num_classes} classes"
        )
    return source


def export_checkpoint(
    checkpoint: Path | None,
    output: Path,
    *,
    labels: Path | None = None,
    int8: bool = False,
    opset: int | None = None,
    fps: float = DEFAULT_FPS,
    fmt: str = "auto",
    random_init: str | None = None,
    num_classes: int | None = None,
    extra_windows: Windows | None = None,
    latency_runs: int = 50,
    threads: int = 2,
    dynamo: bool = False,
) -> ExportReport:
    """Export ``checkpoint`` (or a ``random_init`` preset) to a verified ONNX file at ``output``.

    ``extra_windows`` are checked for parity (and int8 agreement) in addition to the synthetic
    ones, e.g. a model's reference vectors. Raises :class:`ExportError` for bad input and
    :class:`ParityError` when the graph does not reproduce PyTorch; ``output`` is then untouched.
    """
    opset = DEFAULT_OPSET if opset is None else opset
    _check_options(opset, fps)
    output = Path(output)
    _check_output_path(output)
    source = _load_source(
        None if checkpoint is None else Path(checkpoint),
        labels=None if labels is None else Path(labels),
        fmt=fmt,
        random_init=random_init,
        num_classes=num_classes,
    )
    _check_finite_weights(source)
    meta = build_metadata(source, fps=fps, opset=opset)
    report_warnings: list[str] = []
    if source.untrained:
        report_warnings.append(
            "random-init model: UNTRAINED weights, predictions are meaningless (demo only)"
        )

    try:
        tmp_ctx = tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.")
    except OSError as exc:
        raise ExportError(f"cannot write in output directory {output.parent}: {exc.strerror or exc}") from exc
    try:
        with tmp_ctx as tmp:
            fp32_path = Path(tmp) / "fp32.onnx"
            to_onnx(source.model, fp32_path, window=source.config.window, opset=opset, dynamo=dynamo)
            model_proto = onnx.load(str(fp32_path))
            set_metadata(model_proto, meta)
            model_proto.producer_name = "slovo-edge slr-export"
            model_proto.doc_string = (
                f"SLR_SLOVO keypoint transformer ({source.kind}"
                f"{', UNTRAINED' if source.untrained else ''}), {source.config.num_classes} classes"
            )
            onnx.save(model_proto, str(fp32_path))
            onnx.checker.check_model(str(fp32_path), full_check=True)

            windows = synthetic_windows(PARITY_WINDOWS, seed=0, window=source.config.window)
            if extra_windows is not None:
                windows = extra_windows + windows
            fp32_session = create_session(fp32_path, threads)
            parity = check_parity(fp32_session, source.model, windows, tolerance=FP32_TOLERANCE)
            if not parity.passed:
                raise ParityError(
                    f"ONNX Runtime output differs from PyTorch by {parity.max_abs_diff:.3g} "
                    f"(> {parity.tolerance:g}) on {parity.windows} windows; nothing written"
                )
            if parity.nonfinite_windows:
                report_warnings.append(
                    f"the model outputs NaN/inf logits for {parity.nonfinite_windows} verification window(s) "
                    "(e.g. the all-padding window), identically in PyTorch and ONNX Runtime"
                )

            final_path, int8_report = fp32_path, None
            if int8:
                int8_path = Path(tmp) / "int8.onnx"
                nodes = quantize_int8(fp32_path, int8_path)
                onnx.checker.check_model(str(int8_path))
                agree_windows = synthetic_windows(AGREEMENT_WINDOWS, seed=1, window=source.config.window)
                if extra_windows is not None:
                    agree_windows = extra_windows + agree_windows
                reference = run_onnx(fp32_session, agree_windows, batch=8)
                int8_session = create_session(int8_path, threads)
                candidate = run_onnx(int8_session, agree_windows, batch=8)
                finite = np.isfinite(reference).all(axis=1)
                agreement = top1_agreement(reference[finite], candidate[finite])
                int8_report = Int8Report(
                    agreement=agreement,
                    windows=int(finite.sum()),
                    quantized_nodes=nodes,
                    max_abs_diff=float(np.abs(reference[finite] - candidate[finite]).max()),
                    fp32_size_bytes=fp32_path.stat().st_size,
                )
                if agreement < INT8_MIN_AGREEMENT:
                    report_warnings.append(
                        f"int8 top-1 agreement with fp32 is only {agreement:.1%} "
                        f"(< {INT8_MIN_AGREEMENT:.0%}) on {int8_report.windows} windows: "
                        "prefer the fp32 model"
                    )
                final_path = int8_path

            try:  # the file must load exactly as the daemon will load it (metadata, shapes, test window)
                load_model(final_path, threads)
            except ModelError as exc:
                raise ParityError(f"the daemon's loader rejects the exported model: {exc}") from exc
            p50 = p95 = None
            if latency_runs > 0:
                p50, p95 = measure_latency(create_session(final_path, threads), windows, runs=latency_runs)
            _check_output_path(output)  # again: it may have changed during the minutes of export
            os.replace(final_path, output)
    except OSError as exc:  # a full disk, a vanished directory: the temp directory is gone, output untouched
        raise ExportError(f"cannot write {output}: {exc.strerror or exc}") from exc

    for message in report_warnings:
        log.warning(message)
    return ExportReport(
        output=output,
        source_format=source.kind,
        untrained=source.untrained,
        num_parameters=sum(p.numel() for p in source.model.parameters()),
        num_classes=source.config.num_classes,
        size_bytes=output.stat().st_size,
        parity=parity,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        int8=int8_report,
        metadata=meta,
        warnings=report_warnings,
    )


def format_report(report: ExportReport, threads: int = 2) -> str:
    """The short plain-text summary ``slr-export`` prints."""
    lines = [
        f"wrote       {report.output} ({report.size_bytes / 1e6:.2f} MB, "
        f"{'int8' if report.int8 else 'fp32'})",
        f"source      {report.source_format}{' (UNTRAINED)' if report.untrained else ''}, "
        f"{report.num_parameters / 1e6:.2f} M parameters, {report.num_classes} classes",
        f"parity      max |ORT fp32 - PyTorch| = {report.parity.max_abs_diff:.2e} "
        f"(tolerance {report.parity.tolerance:g}, {report.parity.windows} windows, batch 1 and 3)",
    ]
    if report.int8 is not None:
        q = report.int8
        lines.append(
            f"int8        top-1 agreement with fp32 {q.agreement:.1%} on {q.windows} windows, "
            f"{q.quantized_nodes} matmuls quantised, max |diff| {q.max_abs_diff:.3f}, "
            f"{q.fp32_size_bytes / 1e6:.2f} MB -> {report.size_bytes / 1e6:.2f} MB"
        )
    if report.latency_p50_ms is not None:
        lines.append(
            f"latency     p50 {report.latency_p50_ms:.2f} ms, p95 {report.latency_p95_ms:.2f} ms "
            f"(ONNX Runtime, batch 1, {threads} threads)"
        )
    lines.extend(f"WARNING     {message}" for message in report.warnings)
    return "\n".join(lines)
