"""Learning-rate schedule: linear warm-up, then cosine cycles whose peak decays per cycle.

Implemented as a picklable callable for :class:`torch.optim.lr_scheduler.LambdaLR`, so the
scheduler's ``state_dict`` (and with it a resumed run) carries the whole schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from model_src.train_config import TrainConfig


@dataclass
class WarmupCosineCycles:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""

    warmup_steps: int
    cycle_steps: int
    cycle_decay: float = 0.5
    min_ratio: float = 0.01
    warmup_start: float = 0.01

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_start + (1.0 - self.warmup_start) * step / self.warmup_steps
        pos = step - self.warmup_steps
        cycle, within = divmod(pos, max(1, self.cycle_steps))
        t = within / max(1, self.cycle_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * t))
        return self.cycle_decay**cycle * (self.min_ratio + (1.0 - self.min_ratio) * cosine)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of ``cfg`` for a run of ``total_steps`` optimiser steps."""
    warmup = min(cfg.warmup_steps, max(0, total_steps - 1))
    cycle = cfg.cycle_steps or max(1, total_steps - warmup)
    fn = WarmupCosineCycles(warmup, cycle, cfg.cycle_decay, cfg.min_lr_ratio, cfg.warmup_start)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
