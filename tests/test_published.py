"""Loading the published SLR_SLOVO state dict: config inference, exact key/shape matching, refusals."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from model_src.config import preset
from model_src.model import build_model
from model_src.published import (
    CheckpointError,
    infer_config,
    is_published_state_dict,
    load_published_state_dict,
    to_published_state_dict,
)


@pytest.fixture(scope="module")
def tiny_state(tiny_checkpoint_path: Path) -> OrderedDict[str, torch.Tensor]:
    return torch.load(tiny_checkpoint_path, map_location="cpu", weights_only=True)


def _manifest(reference_dir: Path, name: str) -> list[tuple[str, tuple[int, ...]]]:
    lines = (reference_dir / name).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "key\tshape"
    rows = [line.split("\t") for line in lines[1:] if line]
    return [(key, tuple(int(n) for n in shape.split("x"))) for key, shape in rows]


def test_config_is_inferred_from_tiny_shapes(tiny_state: OrderedDict[str, torch.Tensor]) -> None:
    cfg = infer_config(tiny_state)
    assert (cfg.d_model, cfg.num_layers, cfg.num_classes) == (64, 2, 10)
    assert (cfg.num_heads, cfg.embedding_heads, cfg.pooling_heads) == (8, 4, 8)
    assert cfg.max_positions == 1000


def test_tiny_checkpoint_loads_in_eval_mode_with_its_weights(
    tiny_state: OrderedDict[str, torch.Tensor],
) -> None:
    model, cfg = load_published_state_dict(tiny_state, num_classes=10)
    assert not model.training and model.cfg == cfg
    exported = to_published_state_dict(model)
    assert list(exported) == list(tiny_state)
    for key, value in tiny_state.items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize(("classes", "manifest"), [(500, "manifest_500.tsv"), (1001, "manifest_1001.tsv")])
def test_full_size_keys_and_shapes_match_the_published_manifest(
    reference_dir: Path, classes: int, manifest: str
) -> None:
    model = build_model(preset("slr-slovo", num_classes=classes))
    ours = [(key, tuple(value.shape)) for key, value in to_published_state_dict(model).items()]
    assert ours == _manifest(reference_dir, manifest)


def test_state_dict_with_manifest_500_shapes_loads(reference_dir: Path) -> None:
    torch.manual_seed(0)
    source = build_model(preset("slr-slovo", num_classes=500))
    state = to_published_state_dict(source)
    assert [(k, tuple(v.shape)) for k, v in state.items()] == _manifest(reference_dir, "manifest_500.tsv")
    model, cfg = load_published_state_dict(state)
    assert cfg == preset("slr-slovo", num_classes=500)
    key = "transformer.global_blocks.3.mlp.w2.weight"
    torch.testing.assert_close(model.state_dict()[key], state[key], rtol=0, atol=0)


def test_renamed_key_is_refused_naming_it(tiny_state: OrderedDict[str, torch.Tensor]) -> None:
    state = OrderedDict(tiny_state)
    state["embedding.fusion_projection.weight"] = state.pop("embedding.fusion_proj.weight")
    with pytest.raises(CheckpointError, match=r"missing key 'embedding\.fusion_proj\.weight'"):
        load_published_state_dict(state)


def test_extra_key_is_refused_naming_it(tiny_state: OrderedDict[str, torch.Tensor]) -> None:
    state = OrderedDict(tiny_state)
    state["classifier.extra_head.weight"] = torch.zeros(3, 16)
    with pytest.raises(CheckpointError, match=r"unexpected key 'classifier\.extra_head\.weight'"):
        load_published_state_dict(state)


def test_reshaped_key_is_refused_with_both_shapes(tiny_state: OrderedDict[str, torch.Tensor]) -> None:
    state = OrderedDict(tiny_state)
    key = "embedding.lips_embedding.patch_embedding.pos_embed"
    state[key] = torch.zeros(1, 9, 64)
    with pytest.raises(CheckpointError) as info:
        load_published_state_dict(state)
    message = str(info.value)
    assert key in message and "(1, 10, 64)" in message and "(1, 9, 64)" in message


def test_wrong_class_count_is_refused(tiny_state: OrderedDict[str, torch.Tensor]) -> None:
    with pytest.raises(CheckpointError, match="1001"):
        load_published_state_dict(tiny_state, num_classes=1001)


def test_missing_transformer_block_is_refused(tiny_state: OrderedDict[str, torch.Tensor]) -> None:
    state = OrderedDict((k, v) for k, v in tiny_state.items() if ".global_blocks." not in k)
    with pytest.raises(CheckpointError, match="global"):
        load_published_state_dict(state)


def test_non_tensor_value_is_refused(tiny_state: OrderedDict[str, torch.Tensor]) -> None:
    state = OrderedDict(tiny_state)
    state["embedding.fusion_weights"] = [0.25, 0.25, 0.25, 0.25]
    with pytest.raises(CheckpointError, match="fusion_weights"):
        load_published_state_dict(state)


def test_is_published_state_dict(tiny_state: OrderedDict[str, torch.Tensor]) -> None:
    assert is_published_state_dict(tiny_state)
    assert not is_published_state_dict({"state_dict": tiny_state})
    assert not is_published_state_dict({})
    assert not is_published_state_dict([tiny_state])
    no_stats = OrderedDict((k, v) for k, v in tiny_state.items() if k != "LIPS_MEAN")
    assert not is_published_state_dict(no_stats)
