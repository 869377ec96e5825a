"""The SLR_SLOVO keypoint transformer (docs/MODEL.md §4) and its builder.

Input ``frames [B, T, 92, 3]`` (preprocessed, docs/MODEL.md §3) and ``frame_idx [B, T]`` (-1 = padding);
output logits ``[B, classes]``. Module and parameter names mirror the published checkpoint, so
:mod:`model_src.published` loads it with an identity key mapping.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edge.contract.layout import MODEL_LEFT_HAND, MODEL_LIPS, MODEL_POSE, MODEL_RIGHT_HAND
from edge.contract.preprocess import PAD_INDEX
from model_src.config import ModelConfig
from model_src.layers import (
    CrossModalAttention,
    MultiScaleTemporalConv,
    RMSNorm,
    RoPEAttention,
    TransformerBlock,
    split_qkv,
)

#: Landmarks per patch; each patch is flattened to ``PATCH_SIZE * 2`` values (x, y).
PATCH_SIZE = 4
PATCH_DIM = PATCH_SIZE * 2

#: (name of the embedding module, landmark slice of the 92 rows, prefix of the statistics buffers)
GROUPS: tuple[tuple[str, slice, str], ...] = (
    ("lips_embedding", MODEL_LIPS, "LIPS"),
    ("left_hand_embedding", MODEL_LEFT_HAND, "LEFT_HANDS"),
    ("right_hand_embedding", MODEL_RIGHT_HAND, "RIGHT_HANDS"),
    ("pose_embedding", MODEL_POSE, "POSE"),
)
#: Rows 0..86: the four groups, contiguous (rows 87..91 are carried but unused).
_USED_ROWS = slice(MODEL_LIPS.start, MODEL_POSE.stop)
#: Bin counts of the multi-scale average pooling.
POOL_SCALES = (1, 2, 4, 8)
NORM_CLAMP = 5.0
NORM_EPS = 1e-8


def _group_size(rows: slice) -> int:
    return rows.stop - rows.start


class PatchEmbedding(nn.Module):
    """Landmark patches ``[N, P, 8]`` → ``norm(proj(patch) + pos_embed)``."""

    def __init__(self, num_patches: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, dim))
        self.proj = nn.Linear(PATCH_DIM, dim)
        self.norm = RMSNorm(dim)

    def forward(self, patches: Tensor) -> Tensor:
        return self.norm(self.proj(patches) + self.pos_embed)


class GroupEmbedding(nn.Module):
    """One landmark group of every frame → one D vector per frame (docs/MODEL.md §4.2).

    Frames are folded into the batch (``[B*T, P, 8]``) so all patches of all frames go through
    one matmul and one attention call.
    """

    def __init__(self, num_landmarks: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.num_patches = math.ceil(num_landmarks / PATCH_SIZE)
        dim = cfg.d_model
        self.missing_embed = nn.Parameter(torch.zeros(dim))
        self.patch_embedding = PatchEmbedding(self.num_patches, dim)
        self.self_attention = RoPEAttention(dim, cfg.embedding_heads, self.num_patches, cfg.dropout)

    def forward(self, values: Tensor) -> Tensor:
        """``values [B, T, n, 2]`` normalised → ``[B, T, D]``."""
        pad = self.num_patches * PATCH_SIZE - self.num_landmarks
        flat = values.flatten(-2)  # [B, T, 2n]: x0, y0, x1, y1, ...
        if pad:
            flat = F.pad(flat, (0, 2 * pad))
        patches = flat.reshape(-1, self.num_patches, PATCH_DIM)  # [B*T, P, 8]
        attn = self.self_attention
        q, k, v = split_qkv(self._folded_qkv(patches), attn.heads)
        weights = attn.attn_drop(torch.softmax(attn.scores(q, k), dim=-1))
        # The mean over patches (queries) commutes with weights @ v and with the linear w_o:
        # average the attention rows first, then one [1, P] @ [P, d] per head.
        attended = torch.matmul(weights.mean(dim=-2, keepdim=True), v)  # [B*T, H, 1, d]
        pooled = attn.w_o(attended.flatten(1))  # heads concatenated → [B*T, D]
        pooled = pooled.reshape(values.shape[0], values.shape[1], -1)
        missing = (flat.sum(dim=-1) == 0).unsqueeze(-1)
        return torch.where(missing, self.missing_embed.to(pooled.dtype), pooled)

    def _folded_qkv(self, patches: Tensor) -> Tensor:
        """q | k | v ``[N, P, 3D]`` of the patch tokens without materialising D×D matmuls per patch.

        A token is ``RMSNorm(u)`` with ``u = proj(patch) + pos`` and norm weight ``g``, so
        ``W·token = (W·diag(g)·W_proj·patch + W·(g ⊙ (b + pos))) / (rms(u) + eps)``: an 8-wide
        matmul plus a per-position constant, scaled per token. Same values as the plain path
        (up to float rounding) at a fraction of the cost; the folded weights depend only on
        parameters, so ONNX export turns them into constants.
        """
        pe = self.patch_embedding
        w_in = self.self_attention.qkv_weight() * pe.norm.weight  # [3D, D], columns scaled by g
        u = pe.proj(patches) + pe.pos_embed  # [N, P, D]
        inv_rms = 1.0 / (u.pow(2).mean(dim=-1, keepdim=True).sqrt() + pe.norm.eps)
        folded = torch.matmul(w_in, pe.proj.weight)  # [3D, 8]
        offset = F.linear(pe.proj.bias + pe.pos_embed[0], w_in)  # [P, 3D]
        return (F.linear(patches, folded) + offset) * inv_rms

    def forward_reference(self, values: Tensor) -> Tensor:
        """docs/MODEL.md §4.2 written plainly (tokens → attention → mean → missing); tests check ``forward``
        against it on random weights."""
        pad = self.num_patches * PATCH_SIZE - self.num_landmarks
        flat = F.pad(values.flatten(-2), (0, 2 * pad))
        tokens = self.patch_embedding(flat.reshape(-1, self.num_patches, PATCH_DIM))
        pooled = self.self_attention(tokens).mean(dim=1).reshape(values.shape[0], values.shape[1], -1)
        missing = (flat.sum(dim=-1) == 0).unsqueeze(-1)
        return torch.where(missing, self.missing_embed, pooled)


class MultiModalEmbedding(nn.Module):
    """Group embeddings → cross-modal attention → fusion + temporal position embedding."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        dim = cfg.d_model
        self.lips_embedding = GroupEmbedding(_group_size(MODEL_LIPS), cfg)
        self.left_hand_embedding = GroupEmbedding(_group_size(MODEL_LEFT_HAND), cfg)
        self.right_hand_embedding = GroupEmbedding(_group_size(MODEL_RIGHT_HAND), cfg)
        self.pose_embedding = GroupEmbedding(_group_size(MODEL_POSE), cfg)
        self.cross_attention_hands = CrossModalAttention(dim, cfg.num_heads, cfg.dropout)
        self.cross_attention_face_pose = CrossModalAttention(dim, cfg.num_heads, cfg.dropout)
        self.fusion_weights = nn.Parameter(torch.ones(4))
        self.fusion_proj = nn.Linear(4 * dim, dim)
        self.temporal_embed = nn.Embedding(cfg.max_positions, dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, groups: list[Tensor]) -> Tensor:
        """``groups``: normalised lips, left, right, pose, each ``[B, T, n, 2]`` → ``[B, T, D]``."""
        lips = self.lips_embedding(groups[0])
        left = self.left_hand_embedding(groups[1])
        right = self.right_hand_embedding(groups[2])
        pose = self.pose_embedding(groups[3])
        # Each cross-attention runs in both directions; stacking the two along the batch makes
        # that one call (same result as two, half the graph nodes). Split with unflatten, not
        # chunk(2): chunk on a symbolic batch makes torch.export specialise the batch size.
        left, right = self.cross_attention_hands(
            torch.cat([left, right]), torch.cat([right, left])
        ).unflatten(0, (2, -1))
        lips, pose = self.cross_attention_face_pose(
            torch.cat([lips, pose]), torch.cat([pose, lips])
        ).unflatten(0, (2, -1))
        w = torch.softmax(self.fusion_weights, dim=0)
        fused = w[0] * lips + w[1] * left + w[2] * right + w[3] * pose
        projected = self.fusion_proj(torch.cat([lips, left, right, pose], dim=-1))
        positions = self.temporal_embed.weight[: lips.shape[1]]
        return self.drop(fused + projected + positions)


class TemporalEncoder(nn.Module):
    """⌊L/2⌋ local blocks, the multi-scale temporal conv, the remaining global blocks, norm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        n_local = cfg.num_layers // 2
        dim, heads, window, p = cfg.d_model, cfg.num_heads, cfg.window, cfg.dropout
        self.local_blocks = nn.ModuleList(TransformerBlock(dim, heads, window, p) for _ in range(n_local))
        self.temporal_conv = MultiScaleTemporalConv(dim)
        self.global_blocks = nn.ModuleList(
            TransformerBlock(dim, heads, window, p) for _ in range(cfg.num_layers - n_local)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        for block in self.local_blocks:
            x = block(x, key_mask)
        x = self.temporal_conv(x)
        for block in self.global_blocks:
            x = block(x, key_mask)
        return self.norm(x)


class ZeroQueryAttentionPooling(nn.Module):
    """``nn.MultiheadAttention`` with a single all-zero query, written out (docs/MODEL.md §5).

    Parameters keep MultiheadAttention's names. A zero query projects to ``in_proj_bias[:D]``, so
    only keys and values need a matmul; masked frames get ``-inf`` scores like a key padding mask.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        """``x [B, T, D]``, ``key_mask [B, T]`` bool (False = padding) → ``[B, D]``."""
        d = self.dim
        q = self.in_proj_bias[:d].reshape(self.heads, 1, self.head_dim)  # [H, 1, d]
        k = F.linear(x, self.in_proj_weight[d : 2 * d], self.in_proj_bias[d : 2 * d])
        v = F.linear(x, self.in_proj_weight[2 * d :], self.in_proj_bias[2 * d :])
        k = k.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)  # [B, H, T, d]
        v = v.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)
        scores = torch.matmul(q * (1.0 / math.sqrt(self.head_dim)), k.transpose(-1, -2))  # [B, H, 1, T]
        scores = torch.where(key_mask[:, None, None, :], scores, float("-inf"))
        weights = self.attn_drop(torch.softmax(scores, dim=-1))
        attended = torch.matmul(weights, v).flatten(1)  # [B, H*d]
        return self.out_proj(attended)


class TemporalPooling(nn.Module):
    """Mean, max, attention and multi-scale average pooling over frames → ``combiner`` → ``[B, D]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        dim = cfg.d_model
        self.attention_pooling = ZeroQueryAttentionPooling(dim, cfg.pooling_heads, cfg.dropout)
        n_features = 3 + len(POOL_SCALES)
        self.combiner = nn.Sequential(
            nn.Linear(n_features * dim, 2 * dim),
            RMSNorm(2 * dim),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(2 * dim, dim),
        )

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        m = key_mask.unsqueeze(-1).to(x.dtype)  # [B, T, 1]
        xm = x * m
        mean = xm.sum(dim=1) / m.sum(dim=1).clamp_min(1e-9)
        maxed = torch.where(key_mask.unsqueeze(-1), x, float("-inf")).amax(dim=1)
        maxed = torch.where(torch.isinf(maxed), 0.0, maxed)  # all frames masked → 0
        # A window with no frame at all (every index -1) would mask every key and give NaN, as
        # the published code does; attend over all frames instead so the output stays finite.
        attended = self.attention_pooling(x, key_mask | ~key_mask.any(dim=1, keepdim=True))
        scales = [_multi_scale_mean(xm, bins) for bins in POOL_SCALES]
        return self.combiner(torch.cat([mean, maxed, attended, *scales], dim=-1))


def _multi_scale_mean(xm: Tensor, bins: int) -> Tensor:
    """Adaptive average pool of ``xm [B, T, D]`` over time to ``bins``, then mean over bins."""
    length = xm.shape[1]
    if length % bins == 0:  # static shape: equal bins, a reshape-mean (exports as ReduceMean)
        return xm.unflatten(1, (bins, length // bins)).mean(dim=2).mean(dim=1)
    return F.adaptive_avg_pool1d(xm.transpose(1, 2), bins).mean(dim=-1)


def _dense_block(dim_in: int, dim_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out), RMSNorm(dim_out), nn.GELU(), nn.Dropout(dropout))


class ClassifierHead(nn.Module):
    """D → D/2 → D/4 → classes, plus the training-only auxiliary and confidence heads."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, c = cfg.d_model, cfg.num_classes
        self.layer1 = _dense_block(d, d // 2, cfg.dropout)
        self.layer2 = _dense_block(d // 2, d // 4, cfg.dropout)
        self.final_classifier = nn.Linear(d // 4, c)
        self.aux_classifiers = nn.ModuleList([nn.Linear(d, c), nn.Linear(d // 2, c), nn.Linear(d // 4, c)])
        # Kept so published checkpoints load key-for-key; unused by inference.
        self.confidence_head = nn.Linear(d // 4, 1)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.final_classifier(self.layer2(self.layer1(pooled)))

    def forward_with_aux(self, pooled: Tensor) -> tuple[Tensor, list[Tensor]]:
        h1 = self.layer1(pooled)
        h2 = self.layer2(h1)
        aux = [head(h) for head, h in zip(self.aux_classifiers, (pooled, h1, h2), strict=True)]
        return self.final_classifier(h2), aux


class SLRTransformer(nn.Module):
    """SLR_SLOVO keypoint model: normalise → embed → transformer → pool → classify."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        for _, rows, prefix in GROUPS:  # normalisation statistics (checkpoint buffers)
            n = _group_size(rows)
            self.register_buffer(f"{prefix}_MEAN", torch.zeros(n, 2))
            self.register_buffer(f"{prefix}_STD", torch.ones(n, 2))
        self.embedding = MultiModalEmbedding(cfg)
        self.transformer = TemporalEncoder(cfg)
        self.pooling = TemporalPooling(cfg)
        self.classifier = ClassifierHead(cfg)
        self.apply(_init_weights)

    def _normalised_groups(self, frames: Tensor) -> list[Tensor]:
        """x, y of the 87 used rows, normalised in one op, split into the four groups."""
        xy = frames[:, :, _USED_ROWS, :2]
        mean = torch.cat([getattr(self, f"{p}_MEAN") for _, _, p in GROUPS])
        std = torch.cat([getattr(self, f"{p}_STD") for _, _, p in GROUPS])
        normed = ((xy - mean) / (std + NORM_EPS)).clamp(-NORM_CLAMP, NORM_CLAMP)
        normed = torch.where(xy == 0, torch.zeros_like(normed), normed)
        return [normed[:, :, rows] for _, rows, _ in GROUPS]

    def features(self, frames: Tensor, frame_idx: Tensor) -> Tensor:
        """Pooled ``[B, D]`` representation (input of the classifier head)."""
        key_mask = frame_idx != PAD_INDEX
        x = self.embedding(self._normalised_groups(frames))
        x = self.transformer(x, key_mask)
        return self.pooling(x, key_mask)

    def forward(self, frames: Tensor, frame_idx: Tensor) -> Tensor:
        """``frames [B, T, 92, 3]``, ``frame_idx [B, T]`` → logits ``[B, num_classes]``."""
        return self.classifier(self.features(frames, frame_idx))

    def forward_with_aux(self, frames: Tensor, frame_idx: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the three auxiliary logits (on the D, D/2 and D/4 features), for training."""
        return self.classifier.forward_with_aux(self.features(frames, frame_idx))


def _init_weights(module: nn.Module) -> None:
    """Transformer-style init (timm/GPT): small truncated-normal weights, zero biases.

    PyTorch's defaults (N(0, 1) embeddings, fan-in uniform linears) let the 1000-row position
    table swamp the landmark features at the start and train markedly slower from scratch.
    Published checkpoints overwrite all of this on load.
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.trunc_normal_(module.weight, std=0.02)
    elif isinstance(module, PatchEmbedding):
        nn.init.trunc_normal_(module.pos_embed, std=0.02)
    elif isinstance(module, ZeroQueryAttentionPooling):
        nn.init.xavier_uniform_(module.in_proj_weight)  # as nn.MultiheadAttention
        nn.init.zeros_(module.in_proj_bias)


def build_model(cfg: ModelConfig) -> SLRTransformer:
    """The one way to build a model from a config (training, export and loaders all use it)."""
    return SLRTransformer(cfg)
