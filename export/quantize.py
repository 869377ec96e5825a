"""Dynamic int8 quantisation of an exported fp32 graph (ONNX Runtime's ``quantize_dynamic``).

Only weight matmuls are quantised: MatMul/Gemm whose second input is a 2-D initializer with
both dimensions >= ``min_weight_dim``. That selects the D×D projections of the transformer,
cross-attention, fusion and pooling, where int8 pays off, and leaves alone

- activation × activation matmuls (attention scores and weighted sums): quantising both sides
  dynamically costs accuracy for little speed;
- the folded embedding matrices (:mod:`export.graph`): tiny, and their inputs mix patch
  coordinates (up to ±5) with attention weights (< 1) in one tensor, which one per-tensor
  activation scale cannot represent (measured: this alone cost 1.5 % top-1 on the tiny model);
- the final classifier (the node that writes the graph output) and any layer narrower than
  ``min_weight_dim``: too small to gain anything, and the former drives top-1 directly;
- convolutions: quantising the temporal convs too (``ConvInteger``) measured slower and lost
  top-1 agreement in our runs.

Weights are quantised per output channel to **unsigned** 8 bit (QUInt8), activations (always
uint8 in dynamic quantisation) per tensor at run time. Signed weights (QInt8, "U8S8") are not
portable: on x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) ONNX Runtime computes U8S8
products with ``vpmaddubsw``, which adds pairs of u8·s8 products in int16 and *saturates*
(255·127·2 > 32767). The same file then gives different logits on different machines: on an
AVX2-only host the tiny reference model's int8 top-1 agreement with fp32 fell from 99 % (VNNI
host, or exact integer arithmetic) to 85 %, because several matmuls clipped. U8U8 has no such
path on any CPU (x86 widens both sides to int16 first; ARM uses the same u8 kernel for both),
so it agrees with exact integer arithmetic everywhere. ``reduce_range`` (7-bit signed weights)
also avoids the overflow but halves the weight resolution (measured 96 % agreement).
The result keeps the fp32 model's metadata.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import onnx

from export.graph import FOLDED_PREFIX

#: Smallest weight dimension worth quantising (both K and N must reach it).
DEFAULT_MIN_WEIGHT_DIM = 64


def quantizable_nodes(model: onnx.ModelProto, min_weight_dim: int = DEFAULT_MIN_WEIGHT_DIM) -> list[str]:
    """Names of MatMul/Gemm nodes with a 2-D initializer weight of at least ``min_weight_dim``²."""
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    outputs = {out.name for out in model.graph.output}
    chosen = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        if outputs.intersection(node.output):  # the final classifier: its error is top-1 error
            continue
        dims = shapes.get(node.input[1])
        if FOLDED_PREFIX in node.input[1].rsplit(".", 1)[-1]:
            continue
        if dims is not None and len(dims) == 2 and min(dims) >= min_weight_dim:
            chosen.append(node.name)
    return chosen


def _ensure_node_names(model: onnx.ModelProto) -> None:
    """quantize_dynamic selects nodes by name; give anonymous nodes stable ones."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def quantize_int8(
    fp32_path: Path,
    output_path: Path,
    *,
    min_weight_dim: int = DEFAULT_MIN_WEIGHT_DIM,
    per_channel: bool = True,
    preprocess: bool = True,
) -> int:
    """Write the int8 model of ``fp32_path`` to ``output_path``; returns the number of quantised nodes.

    ``preprocess`` runs ``quant_pre_process`` (ONNX shape inference and ORT's basic, portable
    graph optimisation: constant folding, redundant node elimination) first, which gives the
    quantiser a cleaner graph. Symbolic shape inference is skipped: it cannot follow the
    dynamic-batch reshapes of this model and is not needed for dynamic quantisation.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    metadata = {p.key: p.value for p in onnx.load(str(fp32_path), load_external_data=False).metadata_props}
    with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".slr-quant-") as tmp:
        source = Path(tmp) / "pre.onnx"
        if preprocess:
            quant_pre_process(str(fp32_path), str(source), skip_symbolic_shape=True)
        else:
            source.write_bytes(fp32_path.read_bytes())
        model = onnx.load(str(source))
        _ensure_node_names(model)
        nodes = quantizable_nodes(model, min_weight_dim)
        named = Path(tmp) / "named.onnx"
        onnx.save(model, str(named))
        quant_logger = logging.getLogger("onnxruntime.quantization")
        previous = quant_logger.level
        quant_logger.setLevel(logging.ERROR)  # it logs an INFO/WARNING line per skipped node
        try:
            quantize_dynamic(
                str(named),
                str(output_path),
                op_types_to_quantize=["MatMul", "Gemm"],
                nodes_to_quantize=nodes,
                per_channel=per_channel,
                weight_type=QuantType.QUInt8,  # not QInt8: saturates on non-VNNI x86 (docstring)
            )
        finally:
            quant_logger.setLevel(previous)
    quantized = onnx.load(str(output_path))
    del quantized.metadata_props[:]
    for key, value in metadata.items():
        quantized.metadata_props.add(key=key, value=value)
    onnx.save(quantized, str(output_path))
    return len(nodes)
