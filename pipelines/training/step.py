"""One optimizer step of the training loop, free of Ray: forward, loss, the finite check, backward, clipping.

:class:`StepRunner` is what every rank runs for every batch; :mod:`pipelines.training.trainer`
drives it and its hooks do the rest (logging, validation, checkpoints). It works on one process
(``world_size`` 1) as on many, so the NaN policy, the statistics and the clipping are unit-tested
without a cluster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.distributed as dist

from pare_model.contracts import LossTargets, PareOutput
from pare_model.image_input import to_model_input
from pare_model.loss_config import LOSS_TERMS
from pipelines.config.train import TrainConfig
from pipelines.data.batch import TrainingBatch
from pipelines.training.lr_schedule import learning_rate_at, set_learning_rate

BATCH_TENSORS = ("segm_mask", "keypoints", "joints_3d", "pose", "betas", "has_smpl", "has_joints_3d", "has_segm")
"""The batch's supervision tensors that go to the device with the images: the keys of
:class:`~pare_model.contracts.LossTargets`, the loss's targets."""


class NonFiniteStop(Exception):
    """The run must stop: a non-finite loss or gradients under ``nan_policy: stop``, or too many in a row."""


def clip_gradients(network: torch.nn.Module, max_norm: float) -> float:
    """The gradients' global norm before clipping; clipped to ``max_norm`` when it is > 0 (DDP's gradients are
    already averaged over ranks, so every rank computes the same norm and clips the same way)."""
    limit = max_norm if max_norm > 0 else float("inf")
    return float(torch.nn.utils.clip_grad_norm_(network.parameters(), limit))


def agree_finite(value: torch.Tensor, world_size: int) -> bool:
    """Whether ``value`` is finite on every rank (all skip or stop together, or DDP would hang)."""
    flag = torch.isfinite(value).all().float().reshape(1)
    if world_size > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() == 1.0)


def autocast(precision: str, device: torch.device):
    """The forward pass's mixed-precision context (none for fp32)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class NanPolicy:
    """``train.nan_policy``: skip a non-finite batch (up to ``max_in_a_row`` in a row) or stop the run."""

    policy: str = "stop"
    max_in_a_row: int = 10
    in_a_row: int = 0

    def finite(self) -> None:
        self.in_a_row = 0

    def non_finite(self, what: str, step: int) -> None:
        """Count a non-finite batch; raise :class:`NonFiniteStop` when the run must stop."""
        self.in_a_row += 1
        verb = "is" if what == "loss" else "are"
        if self.policy == "stop":
            raise NonFiniteStop(
                f"the {what} {verb} not finite at step {step}; lower train.learning_rate, check the data with "
                "`pare shards validate`, or set train.nan_policy=skip to drop such batches"
            )
        if self.in_a_row > self.max_in_a_row:
            raise NonFiniteStop(
                f"the {what} {verb} not finite at step {step} for {self.in_a_row} batches in a row (more than "
                f"train.max_nan_skips={self.max_in_a_row}): the run has diverged; lower train.learning_rate or "
                "raise train.lr_warmup_steps, and check the data with `pare shards validate`"
            )


class StepStats:
    """Sums over the steps since the last log, all-reduced before logging."""

    NAMES = ("loss", *LOSS_TERMS, "grad_norm", "samples", "wait_s", "step_s", "skipped", "occluders")

    values: dict[str, float]
    steps: int

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.values = dict.fromkeys(self.NAMES, 0.0)
        self.steps = 0

    def add(self, **values: float) -> None:
        for name, value in values.items():
            self.values[name] += float(value)

    def reduced(self, world_size: int, device: torch.device) -> dict[str, float]:
        """Sums over all ranks (on ``device``: NCCL reduces GPU tensors only), as per-step means and rates."""
        tensor = torch.tensor([self.values[n] for n in self.NAMES] + [self.steps], dtype=torch.float64, device=device)
        if world_size > 1:
            dist.all_reduce(tensor)
        tensor = tensor.cpu()
        totals = dict(zip(self.NAMES, tensor[:-1].tolist(), strict=True))
        steps = max(tensor[-1].item(), 1)
        out = {f"train/{name}": totals[name] / steps for name in ("loss", *LOSS_TERMS, "grad_norm")}
        wall = totals["step_s"] / world_size
        out["train/samples_per_s"] = totals["samples"] / wall if wall > 0 else 0.0
        out["train/loader_wait_fraction"] = totals["wait_s"] / totals["step_s"] if totals["step_s"] > 0 else 0.0
        out["train/occluders_per_sample"] = totals["occluders"] / max(totals["samples"], 1)
        out["_skipped"] = totals["skipped"]
        self._reset()
        return out


@dataclass
class StepOutput:
    """What one step produced, for the hooks; ``taken`` is False for a skipped non-finite batch (then
    ``pred`` is None and ``terms`` empty; the trainer calls no hook for it)."""

    taken: bool
    batch: TrainingBatch
    pred: PareOutput | None = None
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class StepRunner:
    """The per-batch work of one rank. ``loss_fn(pred, targets, step=, epoch=)`` returns (loss, terms)."""

    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
    train: TrainConfig
    device: torch.device
    world_size: int = 1
    scaler: torch.amp.GradScaler | None = None  # the fp16 step variant
    nan: NanPolicy = field(default_factory=NanPolicy)
    stats: StepStats = field(default_factory=StepStats)

    def __call__(self, batch: TrainingBatch, step: int, waited: float) -> StepOutput:
        """Forward, loss, finite check, backward, clipping and the optimizer step for the batch of ``step``."""
        started = time.perf_counter() - waited
        epoch = step // self.train.steps_per_epoch
        images = to_model_input(batch["image"]).to(self.device, non_blocking=True)
        tensors = cast(Mapping[str, torch.Tensor], batch)  # the keys of BATCH_TENSORS hold tensors
        targets = cast(LossTargets, {k: tensors[k].to(self.device, non_blocking=True) for k in BATCH_TENSORS})
        with autocast(self.train.precision, self.device):
            pred: PareOutput = self.network(images)
            loss, terms = self.loss_fn(pred, targets, step=step, epoch=epoch)
        if not agree_finite(loss.detach(), self.world_size):
            return self._skip("loss", step, batch)
        set_learning_rate(self.optimizer, learning_rate_at(self.train, step))
        grad_norm = self._optimize(loss)
        if not math.isfinite(grad_norm):
            return self._skip("gradients", step, batch)
        self.nan.finite()
        self.stats.steps += 1
        self.stats.add(
            loss=loss.item(),
            **{n: terms[n].item() for n in LOSS_TERMS},
            grad_norm=grad_norm,
            samples=len(images),
            wait_s=waited,
            step_s=time.perf_counter() - started,
            skipped=batch["skipped"].sum().item(),
            occluders=batch["occluders"].sum().item(),
        )
        return StepOutput(True, batch, pred, terms)

    def _skip(self, what: str, step: int, batch: TrainingBatch) -> StepOutput:
        self.optimizer.zero_grad(set_to_none=False)
        self.nan.non_finite(what, step)
        return StepOutput(False, batch)

    def _optimize(self, loss: torch.Tensor) -> float:
        """Backward, clipping and the optimizer step; the gradients' norm before clipping.

        A finite loss can still have non-finite gradients: then the step is not taken (one NaN step would
        make every weight NaN). The fp16 variant goes through the gradient scaler, which skips such steps
        itself and lowers its scale, so its norm is reported as finite.
        """
        self.optimizer.zero_grad(set_to_none=False)  # in place: the gradients are DDP's bucket views
        clip = self.train.grad_clip_norm
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = clip_gradients(self.network, clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            return grad_norm if math.isfinite(grad_norm) else 0.0
        loss.backward()
        grad_norm = clip_gradients(self.network, clip)
        if math.isfinite(grad_norm):  # DDP averaged the gradients: every rank sees the same norm
            self.optimizer.step()
        return grad_norm
