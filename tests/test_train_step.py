"""The training step and the trainer's hooks on one process, without Ray: NaN policy, step statistics,
clipping, the learning-rate schedule, hook order, the stop on non-finite values, and the step never
reading a value back from its device between two logs (counted structurally, tests/host_reads.py)."""

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


def _runner(
    train: TrainConfig, loss_fn=None, policy: str = "stop", max_in_a_row: int = 10, fused: bool = True
) -> StepRunner:
    """The step with SGD: fused (it skips a non-finite update itself, as the training's fused Adam), or not (then
    the host looks at the flag)."""
    network = TinyNet()
    optimizer = torch.optim.SGD(network.parameters(), lr=train.learning_rate, fused=fused)
    return StepRunner(
        network, optimizer, loss_fn or _loss(), train, torch.device("cpu"), nan=NanPolicy(policy, max_in_a_row)
    )


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_a_step_applies_the_scheduled_rate_and_counts_its_statistics(fused):
    train = TrainConfig(learning_rate=0.1, max_steps=10, lr_schedule="step", lr_decay_steps=[1], lr_decay_factor=0.5)
    runner = _runner(train, fused=fused)
    batch = _batch()
    x = (torch.full((3,), 200.0) / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    mean = x.mean().item()  # the normalised image's mean pixel
    runner(batch, step=1, waited=0.0)
    assert runner.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    gradient = 2 * 1.0 * mean**2  # d/dw of (w * mean)^2 at w = 1
    assert runner.network.weight.item() == pytest.approx(1.0 - 0.05 * gradient, rel=1e-5)
    totals = runner.stats.totals(1, torch.device("cpu"))
    assert runner.stats.steps == 1 and totals["finite_steps"] == 1
    assert totals["samples"] == 4 and totals["skipped"] == 1
    assert totals["occluders"] == 3 and totals["grad_norm"] == pytest.approx(gradient)
    reduced = runner.stats.reduced(1, torch.device("cpu"))
    assert reduced["train/keypoints_2d"] == pytest.approx(0.5) and reduced["train/occluders_per_sample"] == 0.75
    assert runner.stats.steps == 0  # the window starts over after each reduction
    assert runner.settle() == [] and runner.outcomes == []


def test_clipping_limits_the_update_and_reports_the_norm_before():
    train = TrainConfig(learning_rate=0.1, max_steps=10, grad_clip_norm=1e-3)
    runner = _runner(train)
    runner(_batch(), step=0, waited=0.0)
    assert runner.stats.totals(1, torch.device("cpu"))["grad_norm"] > 1e-2
    assert runner.network.weight.item() == pytest.approx(1.0 - 0.1 * 1e-3, rel=1e-4)


def _nan_loss(p, t, step, epoch):
    return p["value"].sum() * math.nan, {name: torch.tensor(math.nan) for name in LOSS_TERMS}


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_a_non_finite_loss_stops_the_run_at_the_next_read_naming_the_step_and_the_fix(fused):
    runner = _runner(TrainConfig(max_steps=10), loss_fn=_nan_loss, fused=fused)
    runner(_batch(), step=3, waited=0.0)  # the step itself does not look
    assert runner.network.weight.item() == 1.0
    with pytest.raises(NonFiniteStop, match=r"loss is not finite at step 3.*nan_policy=skip"):
        runner.settle()


def test_non_finite_gradients_are_skipped_without_touching_the_weights_or_the_statistics():
    runner = _runner(TrainConfig(max_steps=10), loss_fn=_loss(make_nan_gradient=True), policy="skip")
    runner(_batch(), step=0, waited=0.0)
    runner.loss_fn = _loss()
    runner(_batch(), step=1, waited=0.0)
    assert runner.settle() == [0] and runner.nan.in_a_row == 0
    totals = runner.stats.totals(1, torch.device("cpu"))
    assert totals["finite_steps"] == 1 and math.isfinite(totals["loss"]) and math.isfinite(totals["grad_norm"])
    assert totals["keypoints_2d"] == pytest.approx(0.5)  # the skipped batch's terms are not in the sums


def test_a_skipped_batch_leaves_adam_untouched_moments_and_step_count_included():
    from pipelines.training.loop import build_optimizer

    runner = _runner(TrainConfig(max_steps=10), policy="skip")
    runner.optimizer = build_optimizer(runner.network, runner.train)
    runner(_batch(), step=0, waited=0.0)
    state = {k: v.clone() for k, v in runner.optimizer.state[runner.network.weight].items()}
    weight = runner.network.weight.detach().clone()
    runner.loss_fn = _nan_loss
    runner(_batch(), step=1, waited=0.0)
    assert runner.settle() == [1]
    assert torch.equal(runner.network.weight.detach(), weight)
    after = runner.optimizer.state[runner.network.weight]
    assert all(torch.equal(after[k], v) for k, v in state.items()), (state, after)
    assert int(after["step"]) == 1


def test_skip_policy_stops_after_too_many_in_a_row_and_a_good_batch_resets_the_count():
    runner = _runner(TrainConfig(max_steps=10), loss_fn=_nan_loss, policy="skip", max_in_a_row=2)
    runner(_batch(), 0, 0.0)
    runner(_batch(), 1, 0.0)
    assert runner.settle() == [0, 1] and runner.nan.in_a_row == 2
    runner.loss_fn = _loss()
    runner(_batch(), 2, 0.0)
    assert runner.settle() == [] and runner.nan.in_a_row == 0
    runner.loss_fn = _nan_loss
    for step in (3, 4, 5):
        runner(_batch(), step, 0.0)
    with pytest.raises(NonFiniteStop, match=r"at step 5 for 3 batches in a row .*max_nan_skips=2.*diverged"):
        runner.settle()


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
    runner = _runner(TrainConfig(max_steps=5, log_every=2), loss_fn=_nan_loss)
    trainer, calls = _trainer(runner, 5), []
    trainer.register([Recorder("a", calls)])
    assert trainer.run() is False
    assert calls[-1][:3] == ("a", "on_stop", "non_finite_loss") and "not finite at step 0" in calls[-1][3]
    assert [call[2] for call in calls if call[1] == "after_step"] == [1]  # stopped at the first read, step 2
    assert not any(call[1] == "after_train" for call in calls)


def test_skipped_batches_are_counted_and_said_when_the_trainer_reads():
    runner = _runner(TrainConfig(max_steps=6, log_every=3, nan_policy="skip"), loss_fn=_loss(), policy="skip")
    trainer = _trainer(runner, 6)
    trainer.register([PoisonAt({1, 4})])
    assert trainer.run() is True
    assert trainer.state.step == 6 and trainer.state.nan_skips == 2
    assert trainer.messages == [
        "step 1: non-finite values, batch skipped (1 so far)",
        "step 4: non-finite values, batch skipped (2 so far)",
    ]


class PoisonAt(Hook):
    """Makes the loss of the given steps NaN (as the fault-injection hook does)."""

    def __init__(self, steps: set[int]) -> None:
        self.steps = steps

    def before_train(self, trainer):
        loss_fn = trainer.runner.loss_fn

        def poisoned(pred, targets, step, epoch):
            loss, terms = loss_fn(pred, targets, step=step, epoch=epoch)
            return (loss * math.nan if step in self.steps else loss), terms

        trainer.runner.loss_fn = poisoned


def _loader_batch(size: int, image_size: int, label_size: int) -> dict:
    """A batch as the loader makes it (CPU tensors, uint8 images), from bench/device_step.py, which measures the
    same step on a GPU."""
    from bench.device_step import loader_batch  # the repository root is on the tests' path

    return loader_batch(size, image_size, label_size, pin=False)


@pytest.mark.parametrize("setting", ["auto", "fp32"])
def test_the_step_never_reads_its_device_between_logs(procedural_dir, setting):
    """Every value the host reads from a device tensor, and every copy to the device that waits, counted in the real
    step (PARE model and loss, fused Adam, the trainer with its logging hook) by a torch function mode.

    On a GPU each of these would be a synchronisation, leaving the GPU idle while the host catches up; here the
    tensors are on the CPU, so the mode follows which tensors the host holds (the loader's batch) and counts what
    the host does with the others. Logging steps may read (once per window); the others must not."""
    from pare_model.losses import PareLoss
    from pare_model.model import build_model_from_assets
    from pipelines.config.loader import load_config
    from pipelines.training.hooks import WindowMetrics
    from pipelines.training.loop import build_optimizer
    from pipelines.training.precision import resolve_precision
    from tests.host_reads import HostReads

    config = load_config(
        None,
        [
            f"body_model.asset_dir={procedural_dir}",
            "model.backbone=resnet_small",
            "model.image_size=32",
            "model.num_branch_filters=8",
            "model.num_features_smpl=8",
            "train.log_every=3",
            "train.max_steps=3",
            f"train.precision={setting}",
        ],
    )
    device = torch.device("cpu")
    precision = resolve_precision(config.train.precision, config.train.channels_last, device)
    model = build_model_from_assets(config.model, procedural_dir).to(device, memory_format=precision.memory_format)
    runner = StepRunner(
        model, build_optimizer(model, config.train), PareLoss(config.loss), config.train, device, precision=precision
    )
    batches = [_loader_batch(2, 32, 8) for _ in range(3)]
    trainer = Trainer(config, Rank(), model, runner, lambda step: batches[step])
    trainer.register([WindowMetrics()])
    per_step = []
    for batch in batches:
        with HostReads(host=[v for v in batch.values() if isinstance(v, torch.Tensor)]) as reads:
            trainer.run_step()
        per_step.append(reads)
    assert [reads.events for reads in per_step[:2]] == [[], []]
    assert per_step[2].events, "the logging step reads the window's sums: the mode must see it"
    assert "train/loss" in trainer.metrics and math.isfinite(trainer.metrics["train/loss"])
    moved, image_size = per_step[0].moved, 2 * 3 * 32 * 32
    assert (torch.uint8, (2, 32, 32, 3)) in moved, moved  # the images go as uint8, normalised on the device
    assert not any(dtype.is_floating_point and math.prod(shape) >= image_size for dtype, shape in moved), moved


def test_the_host_read_counter_sees_reads_and_waiting_copies():
    from tests.host_reads import HostReads

    host = torch.ones(3)
    with HostReads(host=[host]) as reads:
        device_value = torch.ones(3, device="cpu") * 2  # made on a device: not the host's
        assert host.sum().item() == 3  # the host's own: not counted
        float(device_value.sum())
        bool(device_value.any())
        host.to(torch.device("cpu"))  # a copy to the device that waits for it
        host.to("cpu", non_blocking=True)
        torch.ones(2, device="cpu")[torch.tensor([True, False])]
    assert [event.split(" ")[0] for event in reads.events] == ["__float__", "__bool__", "to", "__getitem__"]
