"""Build tiny ONNX models that honour (or deliberately break) the export contract, for unit tests.

Until ``slr-export`` exists the daemon's tests need *some* model with the right inputs, outputs and
metadata; this one computes ``logits = mean_over_time(frames) @ W + mean(frame_idx) * b`` so its
output depends on the input and different windows give different classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.contract.layout import LAYOUT_NAME, NUM_MODEL_ROWS
from edge.contract.model_contract import (
    INPUT_FRAME_IDX,
    INPUT_FRAMES,
    META_CONFIG,
    META_EXPORTER_VERSION,
    META_FPS,
    META_LABELS,
    META_LAYOUT,
    META_SOURCE_SHA256,
    META_WINDOW,
    NO_SIGN_LABEL,
    OUTPUT_LOGITS,
)

DEFAULT_LABELS = ("привет", "спасибо", "да", "нет", "мама", "папа", "дом", "вода", "хлеб", NO_SIGN_LABEL)


def default_metadata(
    labels: tuple[str, ...] | list[str], window: int = 128, fps: float = 30.0
) -> dict[str, str]:
    """Metadata props as ``slr-export`` writes them."""
    return {
        META_LABELS: json.dumps(list(labels), ensure_ascii=False),
        META_WINDOW: str(window),
        META_LAYOUT: LAYOUT_NAME,
        META_CONFIG: json.dumps({"d_model": 4, "test": True}),
        META_SOURCE_SHA256: "0" * 64,
        META_EXPORTER_VERSION: "test",
        META_FPS: str(fps),
    }


def build_tiny_onnx(
    path: Path,
    labels: tuple[str, ...] | list[str] = DEFAULT_LABELS,
    *,
    classes: int | None = None,
    window: int = 128,
    metadata: dict[str, str] | None = None,
    drop_keys: tuple[str, ...] = (),
    input_names: tuple[str, str] = (INPUT_FRAMES, INPUT_FRAME_IDX),
    seed: int = 0,
) -> Path:
    """Write a tiny contract-shaped model to ``path`` and return it.

    ``classes`` (default ``len(labels)``) lets a test build a labels/output mismatch; ``drop_keys``
    removes metadata keys; ``input_names`` renames the inputs.
    """
    classes = len(labels) if classes is None else classes
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 3.0, size=(NUM_MODEL_ROWS * 3, classes)).astype(np.float32)
    bias = rng.normal(0, 0.01, size=(classes,)).astype(np.float32)
    frames_name, idx_name = input_names
    nodes = [
        helper.make_node("ReduceMean", [frames_name], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("Reshape", ["pooled", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["scores"]),
        helper.make_node("ReduceMean", [idx_name], ["idx_mean"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["idx_mean", "b"], ["idx_term"]),
        helper.make_node("Add", ["scores", "idx_term"], [OUTPUT_LOGITS]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_slr",
        [
            helper.make_tensor_value_info(
                frames_name, TensorProto.FLOAT, ["batch", window, NUM_MODEL_ROWS, 3]
            ),
            helper.make_tensor_value_info(idx_name, TensorProto.FLOAT, ["batch", window]),
        ],
        [helper.make_tensor_value_info(OUTPUT_LOGITS, TensorProto.FLOAT, ["batch", classes])],
        initializer=[
            numpy_helper.from_array(weight, "W"),
            numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(np.array([-1, NUM_MODEL_ROWS * 3], np.int64), "flat_shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tests")
    model.ir_version = 8
    meta = default_metadata(labels, window) if metadata is None else dict(metadata)
    for key in drop_keys:
        meta.pop(key, None)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
