"""The learning-rate schedule is a function of the step: known values, and the optimizer follows it."""

import math

import pytest
import torch

from pipelines.config.train import TrainConfig
from pipelines.training.lr_schedule import learning_rate_at, set_learning_rate


def test_constant_is_the_configured_rate_at_every_step():
    train = TrainConfig(learning_rate=3e-4, max_steps=100)
    assert {learning_rate_at(train, s) for s in (0, 50, 99, 100)} == {3e-4}


def test_step_decays_by_the_factor_at_each_listed_step():
    train = TrainConfig(
        learning_rate=1e-3, max_steps=100, lr_schedule="step", lr_decay_steps=[30, 60], lr_decay_factor=0.5
    )
    assert learning_rate_at(train, 29) == pytest.approx(1e-3)
    assert learning_rate_at(train, 30) == pytest.approx(5e-4)
    assert learning_rate_at(train, 59) == pytest.approx(5e-4)
    assert learning_rate_at(train, 60) == pytest.approx(2.5e-4)


def test_cosine_runs_from_the_rate_to_its_final_share():
    train = TrainConfig(learning_rate=1e-3, max_steps=200, lr_schedule="cosine", lr_decay_factor=0.01)
    assert learning_rate_at(train, 0) == pytest.approx(1e-3)
    assert learning_rate_at(train, 100) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))
    assert learning_rate_at(train, 200) == pytest.approx(1e-5)
    rates = [learning_rate_at(train, s) for s in range(201)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False)) and not math.isnan(sum(rates))


def test_warmup_ramps_linearly_then_follows_the_schedule():
    train = TrainConfig(learning_rate=1e-3, max_steps=100, lr_warmup_steps=10, lr_schedule="step", lr_decay_steps=[50])
    assert learning_rate_at(train, 0) == pytest.approx(1e-4)
    assert learning_rate_at(train, 4) == pytest.approx(5e-4)
    assert learning_rate_at(train, 9) == pytest.approx(1e-3)
    assert learning_rate_at(train, 60) == pytest.approx(1e-4)


def test_set_learning_rate_reaches_every_parameter_group():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 5.0}], lr=1.0)
    set_learning_rate(optimizer, 0.25)
    assert [g["lr"] for g in optimizer.param_groups] == [0.25, 0.25]


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"lr_schedule": "step"}, "needs lr_decay_steps"),
        ({"lr_schedule": "step", "lr_decay_steps": [50, 10]}, "increasing"),
        ({"lr_decay_factor": 0.0}, "lr_decay_factor"),
        ({"lr_decay_factor": 1.5}, "lr_decay_factor"),
    ],
)
def test_bad_schedules_are_refused_with_the_fix(changes, says):
    with pytest.raises(ValueError, match=says):
        TrainConfig(**changes)
