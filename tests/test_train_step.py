"""The training step and the trainer's hooks on one process, without Ray: NaN policy, step statistics,
clipping, the learning-rate schedule, hook order and the stop on non-finite values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pare_model.loss_config import LOSS_TERMS
from pipelines.config.schema import PareConfig
from pipelines.config.train import TrainConfig
from pipelines.training.step import BATCH_TENSORS, NanPolicy, NonFiniteStop, StepRunner
from pipelines.training.trainer import Hook, Rank, Trainer


class TinyNet(torch.nn.Module):
    """A linear map of the mean pixel: small enough that the expected update is computed by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([1.0]))

    def forward(self, images: torch.Tensor) -> dict:
        return {"value": self.weight * images.mean(dim=(1, 2, 3))}


def _loss(make_nan_gradient: bool = False):
    def loss_fn(pred, targets, step, epoch):
        value = pred["value"]
        loss = (value**2).mean()
        if make_nan_gradient:  # a finite loss (sqrt(0) = 0) whose gradient is not (d sqrt(x)/dx at 0 is inf)
            loss = loss + torch.sqrt(value - value.detach()).sum()
        terms = {name: torch.tensor(0.5) for name in LOSS_TERMS} | {"segm_weight": torch.tensor(1.0)}
        return loss, terms

    return loss_fn


def _batch(size: int = 4, value: int = 200) -> dict:
    batch = {k: torch.zeros(size, 1) for k in BATCH_TENSORS}
    batch["image"] = torch.from_numpy(np.full((size, 8, 8, 3), value, dtype=np.uint8))
    batch["skipped"] = torch.tensor([1, 0, 0, 0][:size])
    batch["occluders"] = torch.tensor([2, 0, 1, 0][:size])
    return batch


def _runner(train: TrainConfig, loss_fn=None, policy: str = "stop", max_in_a_row: int = 10) -> StepRunner:
    network = TinyNet()
    optimizer = torch.optim.SGD(network.parameters(), lr=train.learning_rate)
    return StepRunner(
        network, optimizer, loss_fn or _loss(), train, torch.device("cpu"), nan=NanPolicy(policy, max_in_a_row)
    )


def test_a_step_applies_the_scheduled_rate_and_counts_its_statistics():
    train = TrainConfig(learning_rate=0.1, max_steps=10, lr_schedule="step", lr_decay_steps=[1], lr_decay_factor=0.5)
    runner = _runner(train)
    batch = _batch()
    x = (torch.full((3,), 200.0) / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    mean = x.mean().item()  # the normalised image's mean pixel
    out = runner(batch, step=1, waited=0.0)
    assert out.taken and runner.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    gradient = 2 * 1.0 * mean**2  # d/dw of (w * mean)^2 at w = 1
    assert runner.network.weight.item() == pytest.approx(1.0 - 0.05 * gradient, rel=1e-5)
    assert runner.stats.steps == 1
    assert runner.stats.values["samples"] == 4 and runner.stats.values["skipped"] == 1
    assert runner.stats.values["occluders"] == 3 and runner.stats.values["grad_norm"] == pytest.approx(gradient)
    reduced = runner.stats.reduced(1, torch.device("cpu"))
    assert reduced["train/keypoints_2d"] == pytest.approx(0.5) and reduced["train/occluders_per_sample"] == 0.75
    assert runner.stats.steps == 0  # the window starts over after each reduction


def test_clipping_limits_the_update_and_reports_the_norm_before():
    train = TrainConfig(learning_rate=0.1, max_steps=10, grad_clip_norm=1e-3)
    runner = _runner(train)
    out = runner(_batch(), step=0, waited=0.0)
    assert out.taken and runner.stats.values["grad_norm"] > 1e-2
    assert runner.network.weight.item() == pytest.approx(1.0 - 0.1 * 1e-3, rel=1e-4)


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_the_fix():
    runner = _runner(TrainConfig(max_steps=10), loss_fn=lambda p, t, step, epoch: (p["value"].sum() * math.nan, {}))
    with pytest.raises(NonFiniteStop, match=r"loss is not finite at step 3.*nan_policy=skip"):
        runner(_batch(), step=3, waited=0.0)
    assert runner.network.weight.item() == 1.0


def test_non_finite_gradients_are_skipped_without_touching_the_weights():
    runner = _runner(TrainConfig(max_steps=10), loss_fn=_loss(make_nan_gradient=True), policy="skip")
    out = runner(_batch(), step=0, waited=0.0)
    assert not out.taken and runner.nan.in_a_row == 1
    assert runner.network.weight.item() == 1.0 and runner.stats.steps == 0


def test_skip_policy_stops_after_too_many_in_a_row_and_a_good_batch_resets_the_count():
    nan_loss = lambda p, t, step, epoch: (p["value"].sum() * math.nan, {})  # noqa: E731
    runner = _runner(TrainConfig(max_steps=10), loss_fn=nan_loss, policy="skip", max_in_a_row=2)
    assert not runner(_batch(), 0, 0.0).taken and not runner(_batch(), 0, 0.0).taken
    runner.loss_fn = _loss()
    assert runner(_batch(), 0, 0.0).taken and runner.nan.in_a_row == 0
    runner.loss_fn = nan_loss
    runner(_batch(), 1, 0.0)
    runner(_batch(), 1, 0.0)
    with pytest.raises(NonFiniteStop, match=r"3 batches in a row .*max_nan_skips=2.*diverged"):
        runner(_batch(), 1, 0.0)


class Recorder(Hook):
    def __init__(self, name: str, calls: list) -> None:
        self.name, self.calls = name, calls

    def before_train(self, trainer):
        self.calls.append((self.name, "before_train", trainer.state.step))

    def after_step(self, trainer, out):
        trainer.metrics[self.name] = trainer.state.step
        self.calls.append((self.name, "after_step", trainer.state.step, sorted(trainer.metrics)))

    def after_train(self, trainer):
        self.calls.append((self.name, "after_train", trainer.state.step))

    def on_stop(self, trainer, reason, message):
        self.calls.append((self.name, "on_stop", reason, message))


def _trainer(runner: StepRunner, max_steps: int) -> Trainer:
    config = PareConfig()
    config.train = runner.train
    return Trainer(config, Rank(), runner.network, runner, lambda step: _batch())


def test_hooks_run_in_order_every_step_and_see_the_metrics_of_those_before():
    runner = _runner(TrainConfig(max_steps=3, steps_per_epoch=2))
    trainer, calls = _trainer(runner, 3), []
    trainer.register([Recorder("a", calls), Recorder("b", calls)])
    assert trainer.run() is True
    assert calls[:2] == [("a", "before_train", 0), ("b", "before_train", 0)]
    assert calls[2] == ("a", "after_step", 1, ["a"]) and calls[3] == ("b", "after_step", 1, ["a", "b"])
    assert calls[-2:] == [("a", "after_train", 3), ("b", "after_train", 3)]
    assert trainer.state.step == 3 and trainer.state.epoch == 1


def test_due_is_every_n_steps_and_always_at_the_end():
    trainer = _trainer(_runner(TrainConfig(max_steps=7)), 7)
    due = []
    for step in range(1, 8):
        trainer.state.step = step
        due.append((trainer.due(3), trainer.due(0)))
    assert due == [
        (False, False),
        (False, False),
        (True, False),
        (False, False),
        (False, False),
        (True, False),
        (True, True),
    ]


def test_a_non_finite_stop_tells_the_hooks_why_and_skips_after_train():
    runner = _runner(TrainConfig(max_steps=5), loss_fn=lambda p, t, step, epoch: (p["value"].sum() * math.nan, {}))
    trainer, calls = _trainer(runner, 5), []
    trainer.register([Recorder("a", calls)])
    assert trainer.run() is False
    assert calls[-1][:3] == ("a", "on_stop", "non_finite_loss") and "not finite at step 0" in calls[-1][3]
    assert not any(call[1] == "after_train" for call in calls)
