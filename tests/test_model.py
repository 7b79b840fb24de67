"""The network: both backbones and both heads give the documented outputs, with gradients."""

from __future__ import annotations

import pytest
import torch

from pare_model.body_model.assets import load_body_model_assets
from pare_model.contracts import HeadOutput, PareOutput
from pare_model.heads import build_head
from pare_model.heads.attention import attend, part_attention
from pare_model.heads.per_joint_linear import PerJointLinear
from pare_model.model import build_model
from pare_model.model_config import ModelConfig

COMMON = {
    "pred_pose",
    "pred_shape",
    "pred_cam",
    "pred_cam_t",
    "pred_vertices",
    "pred_keypoints_3d",
    "pred_keypoints_2d",
}
PARE_ONLY = {"pred_segm_mask", "pred_part_attention"}


@pytest.fixture(scope="module")
def assets(procedural_dir):
    return load_body_model_assets(procedural_dir)


def _model(assets, body_model, **config):
    torch.manual_seed(0)
    return build_model(ModelConfig(**config), body_model, assets.mean_params)


@pytest.mark.parametrize("backbone", ["hrnet_w32", "resnet50"])
@pytest.mark.parametrize("head", ["pare", "hmr"])
def test_outputs_shapes_and_gradients(assets, body_model, backbone, head):
    model = _model(assets, body_model, backbone=backbone, head=head).train()
    images = torch.randn(2, 3, 224, 224)
    output = model(images)
    assert set(output) == COMMON | (PARE_ONLY if head == "pare" else set())
    shapes = {k: tuple(v.shape) for k, v in output.items()}
    assert shapes["pred_pose"] == (2, 24, 3, 3)
    assert shapes["pred_shape"] == (2, 10) and shapes["pred_cam"] == (2, 3) and shapes["pred_cam_t"] == (2, 3)
    assert shapes["pred_vertices"] == (2, 6890, 3)
    assert shapes["pred_keypoints_3d"] == (2, 49, 3) and shapes["pred_keypoints_2d"] == (2, 49, 2)
    if head == "pare":
        assert shapes["pred_segm_mask"] == (2, 25, 56, 56)
        assert shapes["pred_part_attention"] == (2, 24, 56, 56)
        sums = output["pred_part_attention"].sum(dim=(2, 3))
        torch.testing.assert_close(sums, torch.ones_like(sums))
    rotations = output["pred_pose"]
    eye = torch.eye(3).expand_as(rotations)
    torch.testing.assert_close(rotations @ rotations.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(2, 24), atol=1e-5, rtol=0)
    loss = sum(v.float().pow(2).mean() for k, v in output.items() if k != "pred_part_attention")
    loss.backward()
    first_conv = next(p for n, p in model.backbone.named_parameters() if p.ndim == 4)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    head_grads = [p.grad for p in model.head.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in head_grads)
    assert all(p.grad is None for p in model.body_model.parameters()), "the body model has no trainable weights"


def test_typed_output_contracts_name_exactly_what_the_heads_and_model_return(assets, body_model):
    """pare_model.contracts: HeadOutput and PareOutput list every key of a real forward pass; the part maps,
    which only the PARE head returns, are the optional keys."""
    assert PareOutput.__required_keys__ == COMMON and PareOutput.__optional_keys__ == PARE_ONLY
    assert HeadOutput.__required_keys__ == {"pred_pose", "pred_shape", "pred_cam"}
    assert HeadOutput.__optional_keys__ == PARE_ONLY
    images = torch.randn(2, 3, 224, 224)
    for head, optional in (("pare", PARE_ONLY), ("hmr", set())):
        model = _model(assets, body_model, backbone="debug", head=head).eval()
        with torch.no_grad():
            assert set(model.head(model.backbone(images))) == HeadOutput.__required_keys__ | optional
            assert set(model(images)) == PareOutput.__required_keys__ | optional


def test_keypoints_2d_are_the_projection_of_the_3d_joints(assets, body_model):
    model = _model(assets, body_model, backbone="debug").eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 224, 224))
    cam_t = out["pred_cam_t"]
    joints = out["pred_keypoints_3d"] + cam_t[:, None]
    expected = joints[..., :2] / joints[..., 2:] * 5000.0 / 112.0
    torch.testing.assert_close(out["pred_keypoints_2d"], expected, atol=1e-4, rtol=1e-4)
    s = out["pred_cam"][:, 0]
    torch.testing.assert_close(cam_t[:, 2], 2 * 5000.0 / (224 * s))


def test_fresh_pare_head_starts_at_the_mean_shape_and_camera(assets, body_model):
    """The shape/camera biases start at the mean parameters (documented departure)."""
    model = _model(assets, body_model, backbone="debug")
    torch.testing.assert_close(model.head.cam_mlp.bias, model.head.init_cam[0])
    torch.testing.assert_close(model.head.shape_mlp.bias, model.head.init_shape[0])


def test_hmr_head_starts_next_to_the_mean_pose(assets, body_model):
    from pare_model.geometry import rot6d_to_matrix

    model = _model(assets, body_model, backbone="debug", head="hmr").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    mean = rot6d_to_matrix(model.head.init_pose.reshape(1, 24, 6))
    assert (out["pred_pose"] - mean).abs().max() < 0.2  # xavier gain 0.01 corrections


def test_part_attention_pools_the_attended_pixel():
    logits = torch.full((1, 2, 4, 4), -1e4)
    logits[0, 0, 1, 2] = 0.0  # part 0 looks only at pixel (1, 2)
    logits[0, 1, 3, 0] = 0.0
    features = torch.arange(2 * 16, dtype=torch.float32).reshape(1, 2, 4, 4)
    pooled = attend(features, part_attention(logits))
    torch.testing.assert_close(pooled[0, :, 0], features[0, :, 1, 2])
    torch.testing.assert_close(pooled[0, :, 1], features[0, :, 3, 0])


def test_attention_temperature_flattens_the_maps():
    logits = torch.randn(1, 3, 5, 5)
    sharp, soft = part_attention(logits, 0.5), part_attention(logits, 5.0)
    assert (sharp.amax(dim=(2, 3)) > soft.amax(dim=(2, 3))).all()  # the peak of a softmax falls with T


def test_per_joint_linear_uses_separate_weights_per_joint():
    layer = PerJointLinear(num_joints=3, in_features=4, out_features=2)
    features = torch.randn(5, 4, 3)
    out = layer(features)
    for joint in range(3):
        torch.testing.assert_close(out[:, joint], features[:, :, joint] @ layer.weight[joint].T)


def test_unknown_names_list_the_valid_ones(assets, body_model):
    with pytest.raises(ValueError, match="valid heads: hmr, pare"):
        build_head("transformer", in_channels=8, stride=4, mean_params=assets.mean_params)
    with pytest.raises(Exception, match="hrnet_w32"):
        from pare_model.backbones import build_backbone

        build_backbone("vit_huge")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("image_size", 100, "multiple of 32"), ("softmax_temperature", 0.0, "positive"), ("hmr_iterations", 0, ">= 1")],
)
def test_model_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{field: value})


@pytest.mark.parametrize("head", ["pare", "hmr"])
def test_pare_loss_trains_both_heads(assets, body_model, head):
    """The HMR baseline has no part maps: the part term is 0 for it instead of an error."""
    from pare_model.losses import LossConfig, PareLoss

    model = _model(assets, body_model, backbone="debug", head=head).train()
    batch_size = 2
    batch = {
        "keypoints": torch.cat([torch.rand(batch_size, 49, 2) * 2 - 1, torch.ones(batch_size, 49, 1)], -1),
        "joints_3d": torch.cat([torch.randn(batch_size, 24, 3) * 0.3, torch.ones(batch_size, 24, 1)], -1),
        "pose": torch.randn(batch_size, 72) * 0.2,
        "betas": torch.randn(batch_size, 10),
        "segm_mask": torch.randint(0, 25, (batch_size, 224, 224)),
        "has_smpl": torch.ones(batch_size),
        "has_joints_3d": torch.ones(batch_size),
        "has_segm": torch.ones(batch_size),
    }
    total, terms = PareLoss(LossConfig())(model(torch.randn(batch_size, 3, 224, 224)), batch)
    total.backward()
    assert torch.isfinite(total) and total > 0
    assert float(terms["segm_weight"]) == (1.0 if head == "pare" else 0.0)
    assert (float(terms["segm"]) > 0) == (head == "pare")
