"""Training objective: focal loss on (smoothed, possibly MixUp-blended) soft targets, plus aux heads.

Soft targets let one loss serve label smoothing and MixUp alike; with ``gamma = 0`` it reduces
to PyTorch's label-smoothed cross-entropy, which the tests use as the reference.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def smooth_targets(labels: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """One-hot ``[B, C]`` targets with ``smoothing`` spread uniformly (PyTorch's convention)."""
    onehot = F.one_hot(labels, num_classes).float()
    return onehot * (1.0 - smoothing) + smoothing / num_classes


def focal_loss(logits: Tensor, targets: Tensor, gamma: float) -> Tensor:
    """Mean over the batch of ``-sum_c t_c (1 - p_c)^gamma log p_c`` for soft targets ``t``.

    The focusing term down-weights classes the model already predicts confidently, which helps
    with Slovo's many similar signs. Computed in float32 for stability under autocast.
    """
    log_p = F.log_softmax(logits.float(), dim=-1)
    if gamma > 0:
        log_p = (1.0 - log_p.exp()).pow(gamma) * log_p
    return -(targets * log_p).sum(dim=-1).mean()


def mixup(
    frames: Tensor, frame_idx: Tensor, targets: Tensor, alpha: float, rng: np.random.Generator
) -> tuple[Tensor, Tensor, Tensor, float]:
    """Blend each sample with a permuted partner: frames and targets by ``lam ~ Beta(alpha, alpha)``.

    ``frame_idx`` (which carries the padding mask) is taken from whichever sample dominates, so
    the mask stays a valid -1/position vector. Returns the mixed batch and ``lam``.
    """
    lam = float(rng.beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)  # the original sample dominates
    perm = torch.from_numpy(rng.permutation(frames.shape[0])).to(frames.device)
    mixed = lam * frames + (1.0 - lam) * frames[perm]
    return mixed, frame_idx, lam * targets + (1.0 - lam) * targets[perm], lam


def total_loss(
    logits: Tensor, aux_logits: list[Tensor], targets: Tensor, gamma: float, aux_weight: float
) -> Tensor:
    """Main focal loss plus ``aux_weight`` times each auxiliary classifier's focal loss."""
    loss = focal_loss(logits, targets, gamma)
    for aux in aux_logits:
        loss = loss + aux_weight * focal_loss(aux, targets, gamma)
    return loss
