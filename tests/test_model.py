"""SLR_SLOVO model (docs/MODEL.md §4): golden logits, batching, determinism, folding, config and presets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edge.contract.preprocess import preprocess
from model_src.config import PRESETS, ConfigError, ModelConfig, preset
from model_src.model import SLRTransformer, build_model
from model_src.published import load_published_state_dict

CASES = (0, 1, 2)
ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint_path: Path) -> SLRTransformer:
    state_dict = torch.load(tiny_checkpoint_path, map_location="cpu", weights_only=True)
    model, _ = load_published_state_dict(state_dict)
    return model


def _inputs(frames: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(frames).float()[None], torch.from_numpy(idx).float()[None]


def _run(model: SLRTransformer, frames: torch.Tensor, idx: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(frames, idx).numpy()


@pytest.mark.parametrize("case", CASES)
def test_tiny_checkpoint_reproduces_reference_logits(
    tiny_model: SLRTransformer, tiny_vectors: dict[str, np.ndarray], case: int
) -> None:
    logits = _run(tiny_model, *_inputs(tiny_vectors[f"case{case}_frames"], tiny_vectors[f"case{case}_idx"]))
    expected = tiny_vectors[f"case{case}_logits"]
    assert logits.shape == expected.shape == (1, 10)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("case", CASES)
def test_raw_keypoints_through_preprocess_reproduce_reference_logits(
    tiny_model: SLRTransformer, tiny_vectors: dict[str, np.ndarray], case: int
) -> None:
    frames, idx = preprocess(tiny_vectors[f"case{case}_raw"])
    logits = _run(tiny_model, *_inputs(frames, idx))
    np.testing.assert_allclose(logits, tiny_vectors[f"case{case}_logits"], rtol=0, atol=ATOL)


def test_batch_of_three_equals_three_singles(
    tiny_model: SLRTransformer, tiny_vectors: dict[str, np.ndarray]
) -> None:
    frames = torch.stack([torch.from_numpy(tiny_vectors[f"case{c}_frames"]) for c in CASES])
    idx = torch.stack([torch.from_numpy(tiny_vectors[f"case{c}_idx"]) for c in CASES])
    batched = _run(tiny_model, frames, idx)
    singles = np.concatenate([_run(tiny_model, frames[i : i + 1], idx[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(batched, singles, rtol=0, atol=1e-5)
    assert not np.allclose(batched[0], batched[1]), "different clips must give different logits"


def test_eval_is_deterministic_and_dropout_acts_only_in_training(tiny_vectors: dict[str, np.ndarray]) -> None:
    torch.manual_seed(0)
    model = build_model(preset("tiny", dropout=0.5))
    inputs = _inputs(tiny_vectors["case0_frames"], tiny_vectors["case0_idx"])
    model.eval()
    first, second = _run(model, *inputs), _run(model, *inputs)
    np.testing.assert_array_equal(first, second)
    model.train()
    with torch.no_grad():
        train_a, train_b = model(*inputs).numpy(), model(*inputs).numpy()
    assert not np.allclose(train_a, train_b), "dropout 0.5 must make training passes differ"
    assert not np.allclose(train_a, first)


def test_forward_with_aux_returns_logits_and_three_aux_heads(
    tiny_model: SLRTransformer, tiny_vectors: dict[str, np.ndarray]
) -> None:
    inputs = _inputs(tiny_vectors["case2_frames"], tiny_vectors["case2_idx"])
    with torch.no_grad():
        logits, aux = tiny_model.forward_with_aux(*inputs)
        features = tiny_model.features(*inputs)
        expected_aux0 = tiny_model.classifier.aux_classifiers[0](features)
    np.testing.assert_allclose(logits.numpy(), tiny_vectors["case2_logits"], rtol=0, atol=ATOL)
    assert [a.shape for a in aux] == [torch.Size([1, 10])] * 3
    torch.testing.assert_close(aux[0], expected_aux0)
    assert not torch.allclose(aux[1], aux[2])


def test_every_trained_parameter_gets_a_gradient(tiny_vectors: dict[str, np.ndarray]) -> None:
    """The folded group-embedding path must still train w_q/w_k/w_v, pos_embed, norm, proj."""
    torch.manual_seed(0)
    model = build_model(preset("tiny")).train()
    frames = torch.from_numpy(np.stack([tiny_vectors["case0_frames"], tiny_vectors["case2_frames"]]))
    idx = torch.from_numpy(np.stack([tiny_vectors["case0_idx"], tiny_vectors["case2_idx"]]))
    logits, aux = model.forward_with_aux(frames, idx)
    (logits.sum() + sum(a.sum() for a in aux)).backward()
    without = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not torch.any(p.grad != 0)
        if not name.startswith("classifier.confidence_head")
    ]
    assert without == []


def test_folded_group_embedding_equals_the_plain_spec_path() -> None:
    torch.manual_seed(1)
    model = build_model(preset("tiny"))
    with torch.no_grad():
        for p in model.parameters():  # randomise norms/biases too, so every folded term matters
            p.add_(torch.randn_like(p) * 0.1)
    for name in ("lips_embedding", "left_hand_embedding", "pose_embedding"):
        group = getattr(model.embedding, name)
        values = torch.randn(2, 7, group.num_landmarks, 2)
        values[0, 3] = 0  # a frame where the group is missing
        with torch.no_grad():
            folded, plain = group(values), group.forward_reference(values)
        torch.testing.assert_close(folded, plain, rtol=0, atol=1e-5)
        torch.testing.assert_close(folded[0, 3], group.missing_embed.detach())


def test_rope_tables_follow_a_loaded_inv_freq() -> None:
    model = build_model(preset("tiny"))
    key = "transformer.local_blocks.0.attention.attention.rope.inv_freq"
    state = model.state_dict()
    state[key] = state[key] * 0.5
    model.load_state_dict(state)
    rope = model.transformer.local_blocks[0].attention.attention.rope
    angles = torch.outer(torch.arange(rope.max_len, dtype=torch.float32), state[key])
    torch.testing.assert_close(rope.cos_table[:, : angles.shape[1]], angles.cos())
    torch.testing.assert_close(rope.sin_table[:, angles.shape[1] :], angles.sin())
    assert "cos_table" not in " ".join(state), "derived tables must not be checkpoint keys"


def test_full_size_parameter_count_matches_spec() -> None:
    model = build_model(preset("slr-slovo", num_classes=500))
    count = sum(p.numel() for p in model.parameters())
    assert round(count / 1e6, 1) == 29.8


def test_onnx_export_runs_in_onnxruntime_with_dynamic_batch(
    tiny_model: SLRTransformer, tiny_vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    ort = pytest.importorskip("onnxruntime")
    frames = torch.stack([torch.from_numpy(tiny_vectors[f"case{c}_frames"]) for c in CASES])
    idx = torch.stack([torch.from_numpy(tiny_vectors[f"case{c}_idx"]) for c in CASES])
    path = tmp_path / "tiny.onnx"
    axes = {"frames": {0: "batch"}, "frame_idx": {0: "batch"}, "logits": {0: "batch"}}
    torch.onnx.export(
        tiny_model,
        (frames[:1], idx[:1]),
        str(path),
        input_names=["frames", "frame_idx"],
        output_names=["logits"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"frames": frames.numpy(), "frame_idx": idx.numpy()})
    expected = np.concatenate([tiny_vectors[f"case{c}_logits"] for c in CASES])
    np.testing.assert_allclose(logits, expected, rtol=0, atol=ATOL)


# --- config and presets ---------------------------------------------------------------------------


def test_config_round_trips_through_dict() -> None:
    cfg = preset("edge", num_classes=500, dropout=0.1)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_config_key_is_named() -> None:
    with pytest.raises(ConfigError, match="num_layer"):
        ModelConfig.from_dict({"num_layer": 4})


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="slr-slovo") as info:
        preset("huge")
    assert "edge" in str(info.value)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="heads"):
        preset("edge", heads=2)


@pytest.mark.parametrize(
    "bad", [{"d_model": 100, "num_heads": 8}, {"d_model": 64, "embedding_heads": 64}, {"window": 2000}]
)
def test_invalid_configs_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        ModelConfig(**bad)


def test_presets() -> None:
    assert PRESETS["slr-slovo"] == ModelConfig(d_model=512, num_layers=8, num_heads=8)
    edge = PRESETS["edge"]
    assert edge.d_model < 512 and edge.window == 128
    model = build_model(edge)
    out = model(torch.zeros(2, 128, 92, 3), torch.full((2, 128), -1.0).index_fill_(1, torch.tensor([0]), 0))
    assert out.shape == (2, edge.num_classes) and torch.isfinite(out).all()


def test_fresh_model_starts_with_small_position_embeddings() -> None:
    """N(0, 1) position rows would swamp the landmark features at the start of training."""
    model = build_model(preset("edge"))
    assert float(model.embedding.temporal_embed.weight.std()) < 0.05
    assert float(model.embedding.lips_embedding.patch_embedding.pos_embed.std()) < 0.05


def test_rmsnorm_has_finite_gradient_at_zero() -> None:
    """Padding frames embed to exactly zero before a norm; training must not produce NaN there."""
    from model_src.layers import RMSNorm

    norm = RMSNorm(8)
    x = torch.zeros(2, 8, requires_grad=True)
    norm(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_all_padding_window_gives_finite_logits() -> None:
    """A window without any frame (every index -1) must not turn into NaN logits."""
    from model_src.config import preset
    from model_src.model import build_model

    model = build_model(preset("tiny", num_classes=5)).eval()
    with torch.no_grad():
        logits = model(torch.zeros(2, 128, 92, 3), torch.full((2, 128), -1.0))
    assert torch.isfinite(logits).all()
