"""One optimizer step of the training loop, free of Ray: forward, loss, the finite check, backward, clipping.

:class:`StepRunner` is what every rank runs for every batch; :mod:`pipelines.training.trainer`
drives it and its hooks do the rest (logging, validation, checkpoints). It works on one process
(``world_size`` 1) as on many, so the NaN policy, the statistics and the clipping are unit-tested
without a cluster.

The step never reads a value back from the device, so a GPU is never left waiting for the host
(``tests/test_train_step.py`` counts such reads structurally): the uint8 images go to the device
as they are and are normalised there; the loss terms, the gradient norm and whether the batch was
finite are summed on the device and read once per logging window (:meth:`StepRunner.settle`,
called by the trainer whenever it logs, validates or checkpoints). A non-finite batch still
leaves the weights untouched without the host knowing at once: a non-finite loss makes every
gradient NaN (on every rank, through DDP's average), and the fused Adam skips its whole update,
step counter included, when told ``found_inf``. Only then does the NaN policy act (stop, or count
the skip); the step counter counts every batch, skipped ones too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
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
from pipelines.training.precision import Precision

BATCH_TENSORS = ("segm_mask", "keypoints", "joints_3d", "pose", "betas", "has_smpl", "has_joints_3d", "has_segm")
"""The batch's supervision tensors that go to the device with the images: the keys of
:class:`~pare_model.contracts.LossTargets`, the loss's targets."""

FINITE, LOSS_NOT_FINITE, GRADIENTS_NOT_FINITE = 0, 1, 2
"""Each step's outcome, as kept on the device until the next read."""

FP32 = Precision("fp32", channels_last=False, why="train.precision=fp32")


class NonFiniteStop(Exception):
    """The run must stop: a non-finite loss or gradients under ``nan_policy: stop``, or too many in a row."""


def clip_gradients(network: torch.nn.Module, max_norm: float) -> torch.Tensor:
    """The gradients' global norm before clipping, on their device; clipped to ``max_norm`` when it is > 0 (DDP's
    gradients are already averaged over ranks, so every rank computes the same norm and clips the same way)."""
    gradients = [p.grad for p in network.parameters() if p.grad is not None]
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(network.parameters(), max_norm)
    return torch.nn.utils.get_total_norm(gradients)


def agree_finite(value: torch.Tensor, world_size: int) -> torch.Tensor:
    """Whether ``value`` is finite on every rank, as a bool on its device (reduced there: nothing waits)."""
    flag = torch.isfinite(value).all().to(torch.float32).reshape(1)
    if world_size > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return flag[0] > 0


def fused_skip(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` can skip its update on the device's word (torch's fused Adam, AdamW and SGD read a
    ``found_inf`` tensor and leave the weights, moments and step counter alone where it is 1)."""
    return bool(optimizer.defaults.get("fused")) and all(group.get("fused") for group in optimizer.param_groups)


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
    """Sums over the steps since the last log: the device's (loss terms and gradient norm of the finite steps, and
    their count) kept on the device, the host's (samples, waiting, time, skipped samples, occluders) as numbers;
    :meth:`reduced` reads them, all-reduced over ranks, once per logging window."""

    DEVICE_NAMES = ("loss", *LOSS_TERMS, "grad_norm", "finite_steps")
    HOST_NAMES = ("samples", "wait_s", "step_s", "skipped", "occluders", "steps")

    device_sums: torch.Tensor | None
    host: dict[str, float]

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.device_sums = None
        self.host = dict.fromkeys(self.HOST_NAMES, 0.0)

    @property
    def steps(self) -> int:
        """Steps since the last log."""
        return int(self.host["steps"])

    def add_device(self, finite: torch.Tensor, values: list[torch.Tensor]) -> None:
        """One step's loss, terms and gradient norm (in ``DEVICE_NAMES`` order), counted only when ``finite``."""
        row = torch.stack([value.detach().to(torch.float64).reshape(()) for value in values])
        row = torch.cat([torch.where(finite, row, 0.0), finite.to(torch.float64).reshape(1)])
        self.device_sums = row if self.device_sums is None else self.device_sums + row

    def add_host(self, **values: float) -> None:
        for name, value in values.items():
            self.host[name] += float(value)

    def totals(self, world_size: int, device: torch.device) -> dict[str, float]:
        """Every sum over all ranks (on ``device``: NCCL reduces GPU tensors only); one read from the device."""
        host = torch.tensor([self.host[n] for n in self.HOST_NAMES], dtype=torch.float64)
        sums = self.device_sums if self.device_sums is not None else torch.zeros(len(self.DEVICE_NAMES), device=device)
        tensor = torch.cat([sums.to(device, torch.float64), host.to(device, non_blocking=True)])
        if world_size > 1:
            dist.all_reduce(tensor)
        return dict(zip(self.DEVICE_NAMES + self.HOST_NAMES, tensor.cpu().tolist(), strict=True))

    def reduced(self, world_size: int, device: torch.device) -> dict[str, float]:
        """The window's per-step means and rates over all ranks; the window starts over."""
        totals = self.totals(world_size, device)
        finite = max(totals["finite_steps"], 1)
        out = {f"train/{name}": totals[name] / finite for name in ("loss", *LOSS_TERMS, "grad_norm")}
        wall = totals["step_s"] / world_size
        out["train/samples_per_s"] = totals["samples"] / wall if wall > 0 else 0.0
        out["train/loader_wait_fraction"] = totals["wait_s"] / totals["step_s"] if totals["step_s"] > 0 else 0.0
        out["train/occluders_per_sample"] = totals["occluders"] / max(totals["samples"], 1)
        out["_skipped"] = totals["skipped"]
        self._reset()
        return out


@dataclass
class StepOutput:
    """What one step produced, for the hooks (``pred`` holds NaNs for a batch whose update was skipped)."""

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
    precision: Precision = FP32
    outcomes: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    """(step, outcome on the device) of the steps since the last :meth:`settle`."""

    def __call__(self, batch: TrainingBatch, step: int, waited: float) -> StepOutput:
        """Forward, loss, backward, clipping and the optimizer step for the batch of ``step``, without waiting for
        the device; a non-finite batch leaves the weights alone and is dealt with at the next :meth:`settle`."""
        started = time.perf_counter() - waited
        epoch = step // self.train.steps_per_epoch
        images = to_model_input(batch["image"], self.device, self.precision.memory_format)
        tensors = cast(Mapping[str, torch.Tensor], batch)  # the keys of BATCH_TENSORS hold tensors
        targets = cast(LossTargets, {k: tensors[k].to(self.device, non_blocking=True) for k in BATCH_TENSORS})
        with self.precision.autocast(self.device):
            pred: PareOutput = self.network(images)
            loss, terms = self.loss_fn(pred, targets, step=step, epoch=epoch)
        loss_finite = agree_finite(loss.detach(), self.world_size)
        set_learning_rate(self.optimizer, learning_rate_at(self.train, step))
        grad_norm = self._optimize(loss, loss_finite)
        finite = loss_finite & torch.isfinite(grad_norm)
        outcome = torch.where(finite, FINITE, torch.where(loss_finite, GRADIENTS_NOT_FINITE, LOSS_NOT_FINITE))
        self.outcomes.append((step, outcome))
        self.stats.add_device(finite, [loss, *(terms[n] for n in LOSS_TERMS), grad_norm])
        self.stats.add_host(
            samples=len(batch["image"]),
            wait_s=waited,
            step_s=time.perf_counter() - started,
            skipped=int(batch["skipped"].sum()),  # the loader's CPU tensors: no device involved
            occluders=int(batch["occluders"].sum()),
            steps=1,
        )
        return StepOutput(batch, pred, terms)

    def settle(self) -> list[int]:
        """Read the outcomes of the steps since the last call (one wait for the device) and apply the NaN policy:
        returns the steps whose batch was skipped, or raises :class:`NonFiniteStop`."""
        if not self.outcomes:
            return []
        steps = [step for step, _ in self.outcomes]
        outcomes = torch.stack([outcome for _, outcome in self.outcomes]).tolist()
        self.outcomes.clear()
        skipped = []
        for step, outcome in zip(steps, outcomes, strict=True):
            if outcome == FINITE:
                self.nan.finite()
                continue
            skipped.append(step)
            self.nan.non_finite("loss" if outcome == LOSS_NOT_FINITE else "gradients", step)
        return skipped

    def _optimize(self, loss: torch.Tensor, loss_finite: torch.Tensor) -> torch.Tensor:
        """Backward, clipping and the optimizer step, unless the loss or the gradients are not finite; the
        gradients' norm before clipping (non-finite for a skipped batch).

        A non-finite loss is turned into NaN gradients everywhere (``loss * NaN``), so that one test on the
        gradients' norm covers both, the same on every rank. The fp16 variant goes through the gradient scaler,
        which tells the fused optimizer itself.
        """
        self.optimizer.zero_grad(set_to_none=False)  # in place: the gradients are DDP's bucket views
        loss = loss * torch.where(loss_finite, 1.0, math.nan)
        clip = self.train.grad_clip_norm
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = clip_gradients(self.network, clip)
            self.scaler.step(self.optimizer)  # the scaler skips non-finite steps and lowers its scale
            self.scaler.update()
            return grad_norm
        loss.backward()
        grad_norm = clip_gradients(self.network, clip)
        skip = ~torch.isfinite(grad_norm)
        if fused_skip(self.optimizer):
            self.optimizer.found_inf = skip.to(torch.float32)  # type: ignore[attr-defined]
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.found_inf  # type: ignore[attr-defined]
        elif not bool(skip):  # another optimizer: the host must look (a wait on a GPU)
            self.optimizer.step()
        return grad_norm
