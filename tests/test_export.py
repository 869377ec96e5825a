"""slr-export's Python API: the exported graph reproduces the model and carries its metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import TINY_LABELS  # noqa: E402

from edge.contract.layout import LAYOUT_NAME  # noqa: E402
from edge.contract.model_contract import (  # noqa: E402
    INPUT_FRAME_IDX,
    INPUT_FRAMES,
    META_CONFIG,
    META_EXPORTER_VERSION,
    META_FPS,
    META_LABELS,
    META_LAYOUT,
    META_SOURCE_SHA256,
    META_WINDOW,
    OUTPUT_LOGITS,
    REQUIRED_METADATA,
)
from export import exporter as exporter_module  # noqa: E402
from export.exporter import META_UNTRAINED, ParityError, export_checkpoint  # noqa: E402
from export.graph import FoldedAttentionPooling, FoldedGroupEmbedding  # noqa: E402
from export.sources import random_init_source  # noqa: E402
from export.verify import Windows  # noqa: E402
from model_src.config import ModelConfig, preset  # noqa: E402
from model_src.model import build_model  # noqa: E402

CASES = (0, 1, 2)
TOLERANCE = 1e-4


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _run(session: ort.InferenceSession, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return session.run([OUTPUT_LOGITS], {INPUT_FRAMES: frames, INPUT_FRAME_IDX: idx})[0]


def _case_windows(vectors: dict[str, np.ndarray]) -> Windows:
    return Windows(
        np.stack([vectors[f"case{c}_frames"] for c in CASES]),
        np.stack([vectors[f"case{c}_idx"] for c in CASES]),
    )


@pytest.mark.parametrize("case", CASES)
def test_tiny_checkpoint_reproduces_reference_logits(
    tiny_onnx_path: Path, tiny_vectors: dict[str, np.ndarray], case: int
) -> None:
    got = _run(
        _session(tiny_onnx_path),
        tiny_vectors[f"case{case}_frames"][None],
        tiny_vectors[f"case{case}_idx"][None],
    )
    np.testing.assert_allclose(got, tiny_vectors[f"case{case}_logits"], rtol=0, atol=TOLERANCE)


def test_metadata_says_everything_the_daemon_needs(tiny_onnx_path: Path, tiny_checkpoint_path: Path) -> None:
    meta = _metadata(tiny_onnx_path)
    assert set(REQUIRED_METADATA) <= set(meta)
    assert json.loads(meta[META_LABELS]) == list(TINY_LABELS)
    assert int(meta[META_WINDOW]) == 128
    assert meta[META_LAYOUT] == LAYOUT_NAME
    cfg = ModelConfig.from_dict(json.loads(meta[META_CONFIG]))
    assert (cfg.d_model, cfg.num_layers, cfg.num_classes) == (64, 2, 10)
    assert meta[META_SOURCE_SHA256] == hashlib.sha256(tiny_checkpoint_path.read_bytes()).hexdigest()
    assert float(meta[META_FPS]) == 30.0
    assert meta[META_EXPORTER_VERSION].startswith("slovo-edge-export/")
    assert meta[META_UNTRAINED] == "false"


def test_graph_contract_names_types_and_dynamic_batch(tiny_onnx_path: Path) -> None:
    session = _session(tiny_onnx_path)
    inputs = {i.name: i for i in session.get_inputs()}
    assert list(inputs) == [INPUT_FRAMES, INPUT_FRAME_IDX]
    assert inputs[INPUT_FRAMES].type == inputs[INPUT_FRAME_IDX].type == "tensor(float)"
    assert inputs[INPUT_FRAMES].shape[1:] == [128, 92, 3] and isinstance(inputs[INPUT_FRAMES].shape[0], str)
    assert inputs[INPUT_FRAME_IDX].shape[1:] == [128]
    (output,) = session.get_outputs()
    assert output.name == OUTPUT_LOGITS and output.shape[1:] == [10] and isinstance(output.shape[0], str)


def test_batch_of_three_equals_three_singles(
    tiny_onnx_path: Path, tiny_vectors: dict[str, np.ndarray]
) -> None:
    session, windows = _session(tiny_onnx_path), _case_windows(tiny_vectors)
    batched = _run(session, windows.frames, windows.idx)
    singles = np.concatenate(
        [_run(session, windows.frames[i : i + 1], windows.idx[i : i + 1]) for i in CASES]
    )
    assert batched.shape == (3, 10)
    np.testing.assert_allclose(batched, singles, rtol=0, atol=1e-5)


def test_folded_group_embedding_equals_the_model_s(tiny_vectors: dict[str, np.ndarray]) -> None:
    """The export-time folding is exact for any weights, including missing groups and norms != 1."""
    torch.manual_seed(3)
    model = build_model(preset("tiny")).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    for name in ("lips_embedding", "right_hand_embedding", "pose_embedding"):
        group = getattr(model.embedding, name)
        values = torch.randn(2, 5, group.num_landmarks, 2) * 2
        values[1, 2] = 0  # group missing in one frame → missing_embed
        with torch.no_grad():
            expected, got = group(values), FoldedGroupEmbedding(group)(values)
        torch.testing.assert_close(got, expected, rtol=0, atol=2e-5)
        torch.testing.assert_close(got[1, 2], group.missing_embed.detach())


def test_folded_attention_pooling_equals_the_model_s() -> None:
    torch.manual_seed(4)
    model = build_model(preset("tiny")).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    source = model.pooling.attention_pooling
    x = torch.randn(3, 128, 64)
    mask = torch.ones(3, 128, dtype=torch.bool)
    mask[1, 30:] = False  # padded clip
    with torch.no_grad():
        expected, got = source(x, mask), FoldedAttentionPooling(source)(x, mask)
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-5)


def test_native_training_checkpoint_round_trips(tmp_path: Path) -> None:
    """A checkpoint fresh from model_src.train: labels come from it, ORT matches PyTorch."""
    from model_src.checkpoint import load_model_from_checkpoint
    from model_src.data import load_train_data
    from model_src.synthetic import make_synthetic_dataset
    from model_src.train import model_config_for, train
    from model_src.train_config import TrainConfig

    data_dir = make_synthetic_dataset(tmp_path / "data", num_classes=3, clips_per_class=3, seed=5).root
    data = load_train_data(data_dir)
    cfg = TrainConfig(
        model_overrides={"d_model": 16, "num_layers": 2, "num_heads": 4, "embedding_heads": 2},
        epochs=1,
        batch_size=4,
        warmup_steps=1,
        out=str(tmp_path / "run"),
        device="cpu",
    )
    result = train(cfg, model_config_for(cfg, len(data.labels)), data, progress=False)
    checkpoint = tmp_path / "run" / "last.pt"
    assert checkpoint.is_file(), result

    out = tmp_path / "native.onnx"
    report = export_checkpoint(checkpoint, out, latency_runs=0)
    assert report.source_format == "native" and report.parity.passed
    meta = _metadata(out)
    assert json.loads(meta[META_LABELS]) == list(data.labels)
    assert meta[META_SOURCE_SHA256] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()

    model, _, _ = load_model_from_checkpoint(checkpoint)
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 1, size=(2, 128, 92, 3)).astype(np.float32)
    idx = np.tile(np.arange(128, dtype=np.float32), (2, 1))
    idx[1, 40:] = -1
    frames[1, 40:] = 0
    with torch.inference_mode():
        expected = model(torch.from_numpy(frames), torch.from_numpy(idx)).numpy()
    np.testing.assert_allclose(_run(_session(out), frames, idx), expected, rtol=0, atol=TOLERANCE)


def test_int8_export_reports_agreement_and_keeps_metadata(
    tmp_path: Path, tiny_checkpoint_path: Path, tiny_labels_file: Path, tiny_vectors: dict[str, np.ndarray]
) -> None:
    out = tmp_path / "tiny_int8.onnx"
    report = export_checkpoint(
        tiny_checkpoint_path,
        out,
        labels=tiny_labels_file,
        int8=True,
        latency_runs=0,
        extra_windows=_case_windows(tiny_vectors),
    )
    assert report.int8 is not None
    assert report.int8.windows >= 200 and 0.9 <= report.int8.agreement <= 1.0
    assert report.int8.quantized_nodes > 0 and report.size_bytes < report.int8.fp32_size_bytes
    assert {n.op_type for n in onnx.load(str(out)).graph.node} & {"DynamicQuantizeMatMul", "MatMulInteger"}
    assert json.loads(_metadata(out)[META_LABELS]) == list(TINY_LABELS)
    got = _run(_session(out), tiny_vectors["case0_frames"][None], tiny_vectors["case0_idx"][None])
    assert got.shape == (1, 10) and np.isfinite(got).all()
    # The int8 graph computes what exact integer arithmetic gives, on this CPU too (no int16
    # saturation in ONNX Runtime's U8S8 kernels on x86 without VNNI, see export.quantize).
    windows = _case_windows(tiny_vectors)
    exact = _run(_session(_exact_integer_matmuls(out, tmp_path / "exact.onnx")), windows.frames, windows.idx)
    np.testing.assert_allclose(_run(_session(out), windows.frames, windows.idx), exact, rtol=0, atol=1e-3)


def _exact_integer_matmuls(path: Path, out: Path) -> Path:
    """A copy of the int8 model whose MatMulInteger nodes compute in float32: exact for int8
    operands (|sums| << 2**24), so it is what any CPU without a saturating kernel returns."""
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    nodes = []
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            nodes.append(node)
            continue
        a, b, a_zero, b_zero = node.input
        p = f"{node.name}_exact"
        for name, value, zero in (("a", a, a_zero), ("b", b, b_zero)):
            nodes += [
                helper.make_node("Cast", [value], [f"{p}_{name}"], to=TensorProto.FLOAT),
                helper.make_node("Cast", [zero], [f"{p}_{name}_zero"], to=TensorProto.FLOAT),
                helper.make_node("Sub", [f"{p}_{name}", f"{p}_{name}_zero"], [f"{p}_{name}_centred"]),
            ]
        nodes += [
            helper.make_node("MatMul", [f"{p}_a_centred", f"{p}_b_centred"], [f"{p}_product"]),
            helper.make_node("Cast", [f"{p}_product"], [node.output[0]], to=TensorProto.INT32),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(out))
    return out


def test_random_init_edge_is_marked_untrained_and_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "demo.onnx"
    report = export_checkpoint(None, out, random_init="edge", num_classes=7, latency_runs=3)
    meta = _metadata(out)
    assert meta[META_UNTRAINED] == "true" and report.untrained
    assert json.loads(meta[META_LABELS]) == [f"class_{i}" for i in range(7)]
    assert ModelConfig.from_dict(json.loads(meta[META_CONFIG])) == preset("edge", num_classes=7)
    # Same seed, same weights: the provenance hash names the initial state.
    assert meta[META_SOURCE_SHA256] == random_init_source("edge", num_classes=7).sha256
    assert report.latency_p50_ms is not None and report.latency_p50_ms > 0
    frames = np.zeros((2, 128, 92, 3), np.float32)
    idx = np.tile(np.arange(128, dtype=np.float32), (2, 1))
    assert _run(_session(out), frames, idx).shape == (2, 7)


def test_failed_parity_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the exported graph does not reproduce PyTorch, export stops and leaves no file behind."""
    real_prepare = exporter_module.prepare_for_export

    def broken(model: torch.nn.Module) -> torch.nn.Module:
        shaped = real_prepare(model)
        with torch.no_grad():
            shaped.classifier.final_classifier.bias.add_(1e-2)
        return shaped

    monkeypatch.setattr(exporter_module, "prepare_for_export", broken)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ParityError, match="differs from PyTorch"):
        export_checkpoint(None, out, random_init="tiny", latency_runs=0)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_directory_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The permission check itself (the CLI case of it cannot run as root)."""
    from export.sources import ExportError

    monkeypatch.setattr(exporter_module.os, "access", lambda *_args, **_kw: False)
    with pytest.raises(ExportError, match="no permission to write"):
        export_checkpoint(None, tmp_path / "m.onnx", random_init="tiny", latency_runs=0)
    assert list(tmp_path.iterdir()) == []
