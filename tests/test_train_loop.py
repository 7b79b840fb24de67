"""Pieces of the training loop that need no cluster: gradient clipping and its config."""

from __future__ import annotations

import pytest
import torch

from pipelines.config.loader import load_config
from pipelines.training.loop import clip_gradients


def _network_with_gradients(scale: float) -> torch.nn.Module:
    network = torch.nn.Linear(3, 2)
    for parameter in network.parameters():
        parameter.grad = torch.full_like(parameter, scale)
    return network


def test_clipping_returns_the_norm_before_and_scales_the_gradients_to_the_limit():
    network = _network_with_gradients(10.0)
    expected = 10.0 * (3 * 2 + 2) ** 0.5  # 8 gradient entries of 10
    assert clip_gradients(network, 5.0) == pytest.approx(expected)
    after = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in network.parameters()]))
    assert after.item() == pytest.approx(5.0, rel=1e-5)


def test_no_clipping_when_off_but_the_norm_is_still_measured():
    network = _network_with_gradients(10.0)
    assert clip_gradients(network, 0.0) == pytest.approx(10.0 * 8**0.5)
    assert all(torch.all(p.grad == 10.0) for p in network.parameters())


def test_a_negative_limit_is_refused_with_the_key_named():
    with pytest.raises(Exception, match="grad_clip_norm"):
        load_config(None, ["train.grad_clip_norm=-1"])
