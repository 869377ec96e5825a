"""Export-time graph shaping: an inference-only copy of the model that ONNX Runtime runs fast.

The group embeddings see ~3000 patch tokens per window (128 frames × 24 patches) against 128
tokens in the transformer. Written plainly (docs/MODEL.md §4.2) each token goes through D×D ``w_q``,
``w_k``, ``w_v``: profiling that export (ORT, 2 threads) put two thirds of the time there.
``model_src`` already computes q/k/v with an 8-wide matmul, but still materialises
``[3000, 3D]`` activations and per-frame attention with d_k = D/4. Yet a patch token is only
an 8-value vector pushed through ``proj`` (8→D), ``pos_embed`` and an RMSNorm, i.e. a per-token
*scalar* times an affine map, so exactly (up to float rounding):

- ``q_p = s_p · [u_p, 1] · Mq_p`` with ``Mq_p = [projᵀ; bias + pos_p] · diag(norm.weight) · w_qᵀ``
  rotated by RoPE at position ``p`` (RoPE is linear per position, so it folds into ``Mq_p`` too),
  and the same for ``k``; ``s_p = 1 / (rms(h_p) + eps)`` where ``‖h_p‖² = [u_p, 1] G_p [u_p, 1]ᵀ``
  with the 9×9 Gram matrix ``G_p`` of the affine map;
- the model averages the attention output over patches (docs/MODEL.md §4.2), so only the averaged
  attention weights ``ā`` matter, and ``mean_p(attn · V) · w_oᵀ`` collapses to
  ``[ā·s·u, ā·s] · F`` with one precomputed ``[H·(8+P), D]`` matrix ``F``.

All matrices are folded once, in float64, from the loaded parameters; the graph then does
K=9 matmuls instead of K=D ones and never holds a D-wide tensor per patch except q|k. Effect on
the full-size model (benchmarks/bench_export.py): ORT fp32 ~15 % faster than the plain export
of ``model_src``, eager torch ~20 % faster with the same copy. The copy is for export only:
parity against the unmodified source model is what :mod:`export.verify` checks (1e-4 on logits).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_src.layers import RMSNorm, RoPEAttention
from model_src.model import (
    GROUPS,
    PATCH_DIM,
    PATCH_SIZE,
    GroupEmbedding,
    SLRTransformer,
    ZeroQueryAttentionPooling,
)

#: Prefix of the folded buffers; they keep their names as ONNX initializers, which is how
#: :mod:`export.quantize` recognises (and leaves in fp32) these small, mixed-scale matmuls.
FOLDED_PREFIX = "folded_"

#: Columns of the augmented patch vector ``[u, 1]`` (8 values plus the constant for the bias).
AUGMENTED_DIM = PATCH_DIM + 1


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def _rope_rows(matrix: Tensor, attention: RoPEAttention, positions: int) -> Tensor:
    """Apply RoPE of position ``p`` to ``matrix [P, rows, D]`` (per head, last dim), as the model does."""
    rope = attention.attention.rope
    heads, head_dim = attention.heads, attention.head_dim
    cos = rope.cos_table[:positions].to(matrix.dtype)[:, None, None, :]  # [P, 1, 1, dk]
    sin = rope.sin_table[:positions].to(matrix.dtype)[:, None, None, :]
    split = matrix.unflatten(-1, (heads, head_dim))  # [P, rows, H, dk]
    return (split * cos + _rotate_half(split) * sin).flatten(-2)


class FoldedGroupEmbedding(nn.Module):
    """Drop-in, inference-only replacement for :class:`GroupEmbedding` with folded weights."""

    folded_gram: Tensor
    folded_qk: Tensor
    folded_out: Tensor

    def __init__(self, source: GroupEmbedding) -> None:
        super().__init__()
        patch = source.patch_embedding
        norm: RMSNorm = patch.norm
        attention: RoPEAttention = source.self_attention
        self.num_landmarks = source.num_landmarks
        self.num_patches = num_patches = source.num_patches
        self.heads = heads = attention.heads
        self.dim = patch.proj.weight.shape[0]
        self.eps = float(norm.eps)
        head_dim = attention.head_dim

        with torch.no_grad():
            f64 = torch.float64
            weight = patch.proj.weight.to(f64).T  # [8, D]
            offset = patch.proj.bias.to(f64) + patch.pos_embed[0, :num_patches].to(f64)  # [P, D]
            affine = torch.cat([weight.expand(num_patches, -1, -1), offset[:, None, :]], dim=1)  # [P, 9, D]
            gram = affine @ affine.transpose(1, 2)  # [P, 9, 9]
            scaled = affine * norm.weight.to(f64)  # h · diag(g)
            m_q = _rope_rows(scaled @ attention.w_q.weight.to(f64).T, attention, num_patches)
            m_k = _rope_rows(scaled @ attention.w_k.weight.to(f64).T, attention, num_patches)
            m_qk = torch.cat([m_q / math.sqrt(head_dim), m_k], dim=-1)  # [P, 9, 2D]
            # Value path: [Σ_j w_j u_j (8) | w_j (P)] · E_h, then w_o, folded per head.
            value = torch.cat([weight, offset], dim=0) * norm.weight.to(f64)  # [8+P, D]
            value = value @ attention.w_v.weight.to(f64).T  # [8+P, D]
            value = value.unflatten(-1, (heads, head_dim)).transpose(0, 1)  # [H, 8+P, dk]
            w_o = attention.w_o.weight.to(f64).T.unflatten(0, (heads, head_dim))  # [H, dk, D]
            out = (value @ w_o).flatten(0, 1)  # [H*(8+P), D]

        self.register_buffer(f"{FOLDED_PREFIX}gram", gram.float())
        self.register_buffer(f"{FOLDED_PREFIX}qk", m_qk.float())
        self.register_buffer(f"{FOLDED_PREFIX}out", out.float())
        self.missing_embed = nn.Parameter(source.missing_embed.detach().clone(), requires_grad=False)

    def forward(self, values: Tensor) -> Tensor:
        """``values [B, T, n, 2]`` normalised → ``[B, T, D]`` (same contract as GroupEmbedding)."""
        pad = self.num_patches * PATCH_SIZE - self.num_landmarks
        flat = values.flatten(-2)
        if pad:
            flat = F.pad(flat, (0, 2 * pad))
        patches = flat.reshape(-1, self.num_patches, PATCH_DIM)  # [N, P, 8]
        augmented = F.pad(patches, (0, 1), value=1.0).transpose(0, 1)  # [P, N, 9]
        # ‖h‖² of every token from its 9 inputs and the 9×9 Gram matrix: [P, N, 1]
        sq_norm = (torch.matmul(augmented, self.folded_gram) * augmented).sum(dim=-1, keepdim=True)
        inv_rms = 1.0 / ((sq_norm.clamp_min(0.0) / self.dim).sqrt() + self.eps)  # [P, N, 1]
        qk = torch.matmul(augmented, self.folded_qk) * inv_rms  # [P, N, 2D]
        qk = qk.unflatten(-1, (2, self.heads, -1)).permute(2, 1, 3, 0, 4)  # [2, N, H, P, dk]
        scores = torch.matmul(qk[0], qk[1].transpose(-1, -2))  # [N, H, P, P]
        mean_weights = torch.softmax(scores, dim=-1).mean(dim=-2)  # [N, H, P]
        weights = mean_weights * inv_rms.permute(1, 2, 0)  # [N, H, P]
        mixed = torch.cat([torch.matmul(weights, patches), weights], dim=-1)  # [N, H, 8+P]
        pooled = torch.matmul(mixed.flatten(1), self.folded_out)  # [N, D]
        pooled = pooled.reshape(values.shape[0], values.shape[1], -1)
        missing = (flat.sum(dim=-1) == 0).unsqueeze(-1)
        return torch.where(missing, self.missing_embed.to(pooled.dtype), pooled)


class FoldedAttentionPooling(nn.Module):
    """Inference-only :class:`ZeroQueryAttentionPooling` with its single query folded in.

    The query is the constant ``in_proj_bias[:D]``, so a head's scores ``q·(x W_kᵀ + b_k)`` are
    ``x · (W_kᵀ q) + q·b_k``: an ``[D, H]`` matmul instead of ``[D, D]``. The softmax weights sum
    to 1, so ``Σ_t a_t (x_t W_vᵀ + b_v) = (Σ_t a_t x_t) W_vᵀ + b_v``: the value projection runs on
    H pooled rows instead of every frame. Masked frames score ``-inf`` as in the model.
    """

    folded_score_weight: Tensor
    folded_score_bias: Tensor
    folded_value: Tensor
    folded_value_bias: Tensor

    def __init__(self, source: ZeroQueryAttentionPooling) -> None:
        super().__init__()
        dim, heads, head_dim = source.dim, source.heads, source.head_dim
        self.heads = heads
        with torch.no_grad():
            f64 = torch.float64
            weight, bias = source.in_proj_weight.to(f64), source.in_proj_bias.to(f64)
            query = bias[:dim].reshape(heads, head_dim) / math.sqrt(head_dim)  # [H, d]
            w_k = weight[dim : 2 * dim].reshape(heads, head_dim, dim)  # [H, d, D]
            score_weight = torch.einsum("hk,hkd->dh", query, w_k)  # [D, H]
            score_bias = (query * bias[dim : 2 * dim].reshape(heads, head_dim)).sum(-1)  # [H]
            w_v = weight[2 * dim :].reshape(heads, head_dim, dim).transpose(1, 2)  # [H, D, d]
        self.register_buffer(f"{FOLDED_PREFIX}score_weight", score_weight.float())
        self.register_buffer(f"{FOLDED_PREFIX}score_bias", score_bias.float())
        self.register_buffer(f"{FOLDED_PREFIX}value", w_v.float())
        self.register_buffer(f"{FOLDED_PREFIX}value_bias", bias[2 * dim :].float())
        self.out_proj = source.out_proj

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        """``x [B, T, D]``, ``key_mask [B, T]`` bool (False = padding) → ``[B, D]``."""
        scores = (torch.matmul(x, self.folded_score_weight) + self.folded_score_bias).transpose(1, 2)
        scores = torch.where(key_mask[:, None, :], scores, float("-inf"))  # [B, H, T]
        pooled = torch.matmul(torch.softmax(scores, dim=-1), x)  # [B, H, D]
        attended = torch.matmul(pooled.unsqueeze(2), self.folded_value).squeeze(2)  # [B, H, d]
        return self.out_proj(attended.flatten(1) + self.folded_value_bias)


def prepare_for_export(model: SLRTransformer) -> SLRTransformer:
    """An eval-mode deep copy of ``model`` with its group embeddings and attention pooling folded
    (:class:`FoldedGroupEmbedding`, :class:`FoldedAttentionPooling`); ``model`` is untouched.

    Also tried, measured no gain in ONNX Runtime (so not done): RMSNorm as one ``ReduceL2``,
    and the kernel-3/5/7 temporal convolutions merged into one kernel-7 Conv. What remains is
    matmul-bound: the transformer, cross-attention and fusion projections.
    """
    shaped = copy.deepcopy(model).eval()
    for name, _, _ in GROUPS:
        source = getattr(shaped.embedding, name)
        setattr(shaped.embedding, name, FoldedGroupEmbedding(source))
    shaped.pooling.add_module("attention_pooling", FoldedAttentionPooling(shaped.pooling.attention_pooling))
    for param in shaped.parameters():
        param.requires_grad_(False)
    return shaped
