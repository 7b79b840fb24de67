"""Pieces of the training loop that need no cluster: gradient clipping and its config, the optimizer and the
checkpoint's state."""

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
    assert float(clip_gradients(network, 5.0)) == pytest.approx(expected)
    after = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in network.parameters()]))
    assert after.item() == pytest.approx(5.0, rel=1e-5)


def test_no_clipping_when_off_but_the_norm_is_still_measured():
    network = _network_with_gradients(10.0)
    assert float(clip_gradients(network, 0.0)) == pytest.approx(10.0 * 8**0.5)
    assert all(torch.all(p.grad == 10.0) for p in network.parameters())


def test_a_negative_limit_is_refused_with_the_key_named():
    with pytest.raises(Exception, match="grad_clip_norm"):
        load_config(None, ["train.grad_clip_norm=-1"])


def _small_model(procedural_dir):
    from pare_model.model import build_model_from_assets
    from pare_model.model_config import ModelConfig

    config = ModelConfig(backbone="resnet_small", image_size=32, num_branch_filters=8, num_features_smpl=8)
    return config, build_model_from_assets(config, procedural_dir)


def _one_step(model, optimizer) -> None:
    images = torch.zeros(2, 3, 32, 32)
    output = model(images)
    (output["pred_shape"].sum() + output["pred_cam"].sum()).backward()
    optimizer.step()


def test_a_checkpoint_restores_a_fused_adam_even_from_an_unfused_one(procedural_dir, tmp_path):
    """Checkpoints written before the optimizer was fused resume into a fused one, its state on the parameters'
    device (a fused step counter is a float32 tensor there); the CPU's random state comes back, and the CUDA one is
    saved where the process uses CUDA."""
    from pipelines.config.train import TrainConfig
    from pipelines.training.checkpoints import LoopState, load_checkpoint, save_checkpoint
    from pipelines.training.loop import build_optimizer

    config, model = _small_model(procedural_dir)
    old = torch.optim.Adam(model.parameters(), lr=1e-3)  # as built before
    assert not old.defaults.get("fused")
    _one_step(model, old)
    torch.manual_seed(123)
    save_checkpoint(tmp_path, model.network_state_dict(), config, old, None, LoopState(step=1), {})
    expected_random = torch.rand(3)
    payload = torch.load(tmp_path / "state.pt", weights_only=True)
    cuda_states = payload["cuda_rng"]
    assert len(cuda_states) == (torch.cuda.device_count() if torch.cuda.is_initialized() else 0)

    _, fresh = _small_model(procedural_dir)
    fused = build_optimizer(fresh, TrainConfig())
    state = load_checkpoint(tmp_path, fresh, fused, None)
    assert state.step == 1 and torch.equal(torch.rand(3), expected_random)
    assert all(group["fused"] for group in fused.param_groups)
    first = next(iter(fused.state.values()))
    assert first["step"].dtype == torch.float32 and first["step"].device == first["exp_avg"].device
    fused.found_inf = torch.ones(())  # the fused step can skip: the flags came from the optimizer, not the file
    _one_step(fresh, fused)
    assert int(first["step"]) == 1
