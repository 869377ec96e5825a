"""Building blocks of the SLR_SLOVO model (docs/MODEL.md §4), written for ONNX Runtime.

Everything here is plain matmul / softmax / elementwise tensor algebra: no Python loops over
frames or patches, no data-dependent control flow, masks applied with ``where``. Parameter and
buffer names follow the published checkpoint so that loading it is an identity key mapping.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Score given to masked keys in the RoPE attention (docs/MODEL.md §4.3).
MASKED_SCORE = -1e4


class RMSNorm(nn.Module):
    """``v / (rms(v) + eps) * weight``: eps is added to the RMS, not under the root (docs/MODEL.md §4)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # ‖x‖·D^-½ rather than sqrt(mean(x²)): equal forward, but its gradient at x = 0 is 0
        # instead of NaN (padding frames embed to exactly zero before a norm).
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * x.shape[-1] ** -0.5
        return x / (rms + self.eps) * self.weight


class RotaryEmbedding(nn.Module):
    """Rotary position embedding with cos/sin tables precomputed for ``max_len`` positions.

    ``inv_freq`` is the checkpoint's (persistent) buffer; the tables are derived from it,
    non-persistent, and rebuilt whenever a state dict is loaded, so an exported graph holds them
    as constants instead of recomputing trigonometry on every call.
    """

    inv_freq: Tensor
    cos_table: Tensor
    sin_table: Tensor

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head size, got {head_dim}")
        self.max_len = max_len
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq)
        self.register_buffer("cos_table", torch.empty(max_len, head_dim), persistent=False)
        self.register_buffer("sin_table", torch.empty(max_len, head_dim), persistent=False)
        self.rebuild_tables()
        self.register_load_state_dict_post_hook(_rebuild_after_load)

    @torch.no_grad()
    def rebuild_tables(self) -> None:
        """Recompute cos/sin from ``inv_freq`` (θ(t, j) = t · inv_freq[j], duplicated per half)."""
        t = torch.arange(self.max_len, dtype=torch.float32, device=self.inv_freq.device)
        angles = torch.outer(t, self.inv_freq.float())
        angles = torch.cat([angles, angles], dim=-1)
        self.cos_table.copy_(angles.cos())
        self.sin_table.copy_(angles.sin())

    def forward(self, x: Tensor) -> Tensor:
        """Rotate ``x [..., T, head_dim]`` by positions 0..T-1: [x1 cos − x2 sin | x1 sin + x2 cos]."""
        length = x.shape[-2]
        half = x.shape[-1] // 2
        x1, x2 = x.split(half, dim=-1)
        rotated = torch.cat([-x2, x1], dim=-1)
        cos, sin = self.cos_table, self.sin_table
        if length != self.max_len:  # static at export time; the usual case needs no slice
            cos, sin = cos[:length], sin[:length]
        return x * cos + rotated * sin


def _rebuild_after_load(module: RotaryEmbedding, _incompatible_keys: object) -> None:
    """Load hook (module-level so models stay picklable): tables follow a loaded ``inv_freq``."""
    module.rebuild_tables()


class _RopeCore(nn.Module):
    """Holds the rotary embedding; exists so the key reads ``...attention.rope.inv_freq``."""

    def __init__(self, head_dim: int, max_len: int) -> None:
        super().__init__()
        self.rope = RotaryEmbedding(head_dim, max_len)


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """``[N, T, D] -> [N, heads, T, D/heads]`` (shape-agnostic in N and T for export)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    """``[N, heads, T, d] -> [N, T, heads*d]``."""
    return x.transpose(1, 2).flatten(-2)


def split_qkv(qkv: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """``[N, T, 3D]`` (q | k | v) → three ``[N, heads, T, d]`` with one transpose, not three."""
    q, k, v = qkv.unflatten(-1, (3, heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
    return q, k, v


def masked_softmax(scores: Tensor, key_mask: Tensor | None) -> Tensor:
    """Softmax over keys; keys where ``key_mask [N, T]`` is False score ``MASKED_SCORE`` first."""
    if key_mask is not None:
        scores = torch.where(key_mask[:, None, None, :], scores, MASKED_SCORE)
    return torch.softmax(scores, dim=-1)


class RoPEAttention(nn.Module):
    """Multi-head self-attention with RoPE on q and k, optional key mask (docs/MODEL.md §4.3)."""

    def __init__(self, dim: int, heads: int, max_len: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.w_q = nn.Linear(dim, dim, bias=False)
        self.w_k = nn.Linear(dim, dim, bias=False)
        self.w_v = nn.Linear(dim, dim, bias=False)
        self.w_o = nn.Linear(dim, dim, bias=False)
        self.attention = _RopeCore(self.head_dim, max_len)
        self.attn_drop = nn.Dropout(dropout)

    def qkv_weight(self) -> Tensor:
        """``[3D, D]``: w_q | w_k | w_v stacked, so q, k and v come from one matmul.

        Derived from parameters on every call (cheap; constant-folded by ONNX export), so the
        checkpoint keeps the published separate ``w_q``/``w_k``/``w_v`` tensors.
        """
        return torch.cat([self.w_q.weight, self.w_k.weight, self.w_v.weight], dim=0)

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        """RoPE-rotated, scaled dot products ``[N, heads, Tq, Tk]``."""
        rope = self.attention.rope
        return torch.matmul(rope(q), rope(k).transpose(-1, -2)) * self.scale

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """``x [N, T, D]``; ``key_mask [N, T]`` bool, False = masked key."""
        q, k, v = split_qkv(F.linear(x, self.qkv_weight()), self.heads)
        weights = self.attn_drop(masked_softmax(self.scores(q, k), key_mask))
        return self.w_o(_merge_heads(torch.matmul(weights, v)))


class CrossModalAttention(nn.Module):
    """Q from one modality, K/V from another, no RoPE or mask; output ``norm(query + attended)``."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.w_q = nn.Linear(dim, dim, bias=False)
        self.w_k = nn.Linear(dim, dim, bias=False)
        self.w_v = nn.Linear(dim, dim, bias=False)
        self.w_o = nn.Linear(dim, dim, bias=False)
        self.norm = RMSNorm(dim)
        self.attn_drop = nn.Dropout(dropout)
        self.out_drop = nn.Dropout(dropout)

    def forward(self, query: Tensor, context: Tensor) -> Tensor:
        q = _split_heads(self.w_q(query), self.heads)
        kv = F.linear(context, torch.cat([self.w_k.weight, self.w_v.weight], dim=0))
        k, v = kv.unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        weights = self.attn_drop(torch.softmax(scores, dim=-1))
        attended = self.w_o(_merge_heads(torch.matmul(weights, v)))
        return self.norm(query + self.out_drop(attended))


class SwiGLU(nn.Module):
    """``w2(silu(a) * b)`` with ``[a | b] = w1(x)`` (both without bias)."""

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, 2 * dim, bias=False)
        self.w2 = nn.Linear(dim, dim, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.w1(x).chunk(2, dim=-1)
        return self.w2(self.drop(F.silu(a) * b))


class TransformerBlock(nn.Module):
    """Pre-norm block with learned residual scales ``alpha_attn`` / ``alpha_mlp``."""

    def __init__(self, dim: int, heads: int, max_len: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.alpha_attn = nn.Parameter(torch.ones(1))
        self.alpha_mlp = nn.Parameter(torch.ones(1))
        self.attention = RoPEAttention(dim, heads, max_len, dropout)
        self.norm1 = RMSNorm(dim)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        x = x + self.alpha_attn * self.drop(self.attention(self.norm1(x), key_mask))
        return x + self.alpha_mlp * self.drop(self.mlp(self.norm2(x)))


def conv_split(dim: int) -> tuple[int, int, int]:
    """Output channels of the kernel-3/5/7 convolutions: ⌊D/3⌋, ⌊(D−⌊D/3⌋)/2⌋, rest."""
    first = dim // 3
    second = (dim - first) // 2
    return first, second, dim - first - second


class MultiScaleTemporalConv(nn.Module):
    """Three same-padded Conv1d over time (kernels 3, 5, 7), concatenated; ``norm(conv + x)``."""

    KERNELS = (3, 5, 7)

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, out, k, padding=k // 2)
            for out, k in zip(conv_split(dim), self.KERNELS, strict=True)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        channels_first = x.transpose(1, 2)
        conv = torch.cat([c(channels_first) for c in self.convs], dim=1).transpose(1, 2)
        return self.norm(conv + x)
