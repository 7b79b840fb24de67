"""The learning rate as a function of the step (``train.lr_schedule``).

Stateless on purpose: a run resumed from a checkpoint at step N sets the rate for step N and continues
on the same curve, with nothing extra to save.
"""

from __future__ import annotations

import bisect
import math

from pipelines.config.train import TrainConfig


def learning_rate_at(train: TrainConfig, step: int) -> float:
    """The rate for the optimizer step taken at ``step`` (0-based: steps done so far)."""
    warmup = min((step + 1) / train.lr_warmup_steps, 1.0) if train.lr_warmup_steps else 1.0
    return warmup * _scheduled(train, step)


def _scheduled(train: TrainConfig, step: int) -> float:
    if train.lr_schedule == "step":
        return train.learning_rate * train.lr_decay_factor ** bisect.bisect_right(train.lr_decay_steps, step)
    if train.lr_schedule == "cosine":
        progress = min(step / train.max_steps, 1.0)
        final = train.lr_decay_factor
        return train.learning_rate * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))
    return train.learning_rate


def set_learning_rate(optimizer, rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate
