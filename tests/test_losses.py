"""PARE's losses: zero at ground truth, positive away from it, masking, schedule, gradients, config."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from pare_model.geometry import axis_angle_to_matrix, project_to_crop
from pare_model.losses import (
    HIP_INDICES,
    LOSS_TERMS,
    NUM_OPENPOSE_JOINTS,
    LossConfig,
    PareLoss,
    camera_prior,
    segm_loss,
    segm_weight_at,
)

BATCH = 3
LABEL_SIZE = 56
CONFIDENT = 30.0
"""Logit margin of 'very confident' part logits: cross-entropy <= 24 exp(-30) ~ 2e-12 a pixel."""


def _confident_logits(labels: torch.Tensor) -> torch.Tensor:
    """(B, H, W) labels -> (B, 25, H, W) logits with margin CONFIDENT on the right class."""
    return CONFIDENT * F.one_hot(labels, 25).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module")
def ground_truth(body_model):
    """A batch in the loader's contract and the prediction that matches it exactly."""
    generator = torch.Generator().manual_seed(0)
    pose = 0.3 * torch.randn(BATCH, 72, generator=generator)
    betas = torch.randn(BATCH, 10, generator=generator)
    cam = torch.tensor([[0.9, 0.05, -0.1], [1.1, -0.02, 0.0], [0.8, 0.0, 0.08]])
    rotations = axis_angle_to_matrix(pose.reshape(BATCH, 24, 3))
    with torch.no_grad():
        joints = body_model(rotations[:, :1], rotations[:, 1:], betas)["joints"]  # (B, 49, 3)
    keypoints_2d = project_to_crop(joints, cam)
    labels = torch.randint(0, 25, (BATCH, LABEL_SIZE, LABEL_SIZE), generator=generator)
    # The GT joints live in the camera frame: a translation the hip centring must remove.
    camera_offset = torch.tensor([0.1, -0.2, 5.0])
    batch = {
        "keypoints": torch.cat([keypoints_2d, torch.ones(BATCH, 49, 1)], dim=-1),
        "joints_3d": torch.cat([joints[:, NUM_OPENPOSE_JOINTS:] + camera_offset, torch.ones(BATCH, 24, 1)], dim=-1),
        "pose": pose,
        "betas": betas,
        "segm_mask": labels,
        "has_smpl": torch.ones(BATCH, dtype=torch.bool),
        "has_joints_3d": torch.ones(BATCH),
        "has_segm": torch.ones(BATCH, dtype=torch.bool),
    }
    pred = {
        "pred_pose": rotations,
        "pred_shape": betas.clone(),
        "pred_cam": cam,
        "pred_vertices": torch.zeros(BATCH, 6890, 3),
        "pred_keypoints_3d": joints,
        "pred_keypoints_2d": keypoints_2d,
        "pred_segm_mask": _confident_logits(labels),
    }
    return pred, batch


def _clone(tensors: dict) -> dict:
    return {key: value.clone() for key, value in tensors.items()}


def _terms(pred, batch, config=None, **kwargs):
    return PareLoss(config or LossConfig())(pred, batch, **kwargs)


def test_every_term_is_zero_at_ground_truth(ground_truth):
    pred, batch = ground_truth
    total, terms = _terms(pred, batch)
    for name in ("keypoints_2d", "keypoints_3d", "pose", "betas"):
        assert terms[name].item() == pytest.approx(0.0, abs=1e-10), name
    assert terms["segm"].item() == pytest.approx(0.0, abs=1e-9)
    # The camera prior is a prior, not a distance to ground truth: checked on its own below.
    assert total.item() == pytest.approx(60.0 * terms["cam"].item(), rel=1e-5)


PERTURBATIONS = {
    "keypoints_2d": ("pred_keypoints_2d", 0.05),
    "keypoints_3d": ("pred_keypoints_3d", 0.05),
    "pose": ("pred_pose", 0.05),
    "betas": ("pred_shape", 0.5),
    "segm": ("pred_segm_mask", 40.0),
}


@pytest.mark.parametrize("term", sorted(PERTURBATIONS))
def test_each_term_is_positive_away_from_ground_truth_and_only_that_term(ground_truth, term):
    pred, batch = ground_truth
    key, size = PERTURBATIONS[term]
    moved = _clone(pred)
    moved[key] = moved[key] + size * torch.randn(moved[key].shape, generator=torch.Generator().manual_seed(1))
    _, before = _terms(pred, batch)
    _, after = _terms(moved, batch)
    assert after[term].item() > 1e-4
    for other in set(LOSS_TERMS) - {term}:
        assert after[other].item() == pytest.approx(before[other].item(), abs=1e-8), other


def test_total_is_scale_times_sum_of_weighted_terms(ground_truth):
    pred, batch = ground_truth
    moved = {key: value + 0.1 for key, value in pred.items()}
    config = LossConfig(loss_scale=7.0, pose_weight=2.0)
    total, terms = _terms(moved, batch, config)
    assert total.item() == pytest.approx(7.0 * sum(terms[name].item() for name in LOSS_TERMS), rel=1e-6)
    _, unit = _terms(moved, batch, LossConfig(pose_weight=1.0))
    assert terms["pose"].item() == pytest.approx(2.0 * unit["pose"].item(), rel=1e-6)
    assert all(not value.requires_grad for value in terms.values())


def test_keypoint_2d_hand_computed_and_openpose_joints_weighted_zero(ground_truth):
    pred, batch = ground_truth
    openpose_moved = _clone(pred)
    openpose_moved["pred_keypoints_2d"][:, :NUM_OPENPOSE_JOINTS] += 0.3
    assert _terms(openpose_moved, batch)[1]["keypoints_2d"].item() == pytest.approx(0.0, abs=1e-10)
    counted = _terms(openpose_moved, batch, LossConfig(openpose_2d_weight=1.0))[1]["keypoints_2d"].item()
    # 25 joints x 2 coordinates x B samples off by 0.3, mean over B x 49 x 2 values, weight 5
    assert counted == pytest.approx(5.0 * 0.09 * 25 / 49, rel=1e-4)
    # One GT joint of one sample off by d in x, with confidence 0.5
    low_confidence = _clone(batch)
    low_confidence["keypoints"][0, 30, 2] = 0.5
    gt_moved = _clone(pred)
    gt_moved["pred_keypoints_2d"][0, 30, 0] += 0.2
    value = _terms(gt_moved, low_confidence)[1]["keypoints_2d"].item()
    assert value == pytest.approx(5.0 * 0.5 * 0.04 / (BATCH * 49 * 2), rel=1e-4)


def test_keypoint_3d_centres_on_the_hips_and_is_hand_computed(ground_truth):
    pred, batch = ground_truth
    assert HIP_INDICES == (2, 3)
    shifted = _clone(pred)
    shifted["pred_keypoints_3d"] += torch.tensor([1.0, 2.0, -3.0])
    assert _terms(shifted, batch)[1]["keypoints_3d"].item() == pytest.approx(0.0, abs=1e-9)
    one_joint = _clone(pred)
    one_joint["pred_keypoints_3d"][1, NUM_OPENPOSE_JOINTS + 10, 1] += 0.1  # a wrist: not a hip
    value = _terms(one_joint, batch)[1]["keypoints_3d"].item()
    assert value == pytest.approx(5.0 * 0.01 / (BATCH * 24 * 3), rel=1e-4)


def test_camera_prior_is_positive_and_decreasing_in_scale():
    scales = torch.linspace(-0.5, 2.0, 26)
    cams = torch.stack([scales, torch.zeros_like(scales), torch.zeros_like(scales)], dim=-1)
    values = torch.stack([camera_prior(cam[None]) for cam in cams])
    assert (values > 0).all()
    assert (values[1:] < values[:-1]).all()
    assert camera_prior(torch.tensor([[0.3, 5.0, -5.0]])).item() == pytest.approx(math.exp(-6.0), rel=1e-6)
    assert camera_prior(torch.tensor([[0.1, 0, 0], [0.2, 0, 0]])).item() == pytest.approx(
        (math.exp(-2.0) + math.exp(-4.0)) / 2, rel=1e-6
    )


def _away(pred: dict, seed: int = 2) -> dict:
    """Every prediction moved off the ground truth (the confident logits by a lot more)."""
    generator = torch.Generator().manual_seed(seed)
    size = {"pred_segm_mask": 40.0}
    return {
        key: value + size.get(key, 0.2) * torch.randn(value.shape, generator=generator) for key, value in pred.items()
    }


def test_flags_remove_their_terms_and_flagged_mean_ignores_the_rest(ground_truth):
    pred, batch = ground_truth
    moved = _away(pred)
    flagged = _clone(batch)
    for key in ("has_smpl", "has_joints_3d", "has_segm"):
        flagged[key] = torch.tensor([1.0, 0.0, 0.0])
    _, terms = _terms(moved, flagged)
    # The mean over flagged samples equals the loss of the flagged sample alone.
    alone_pred = {key: value[:1] for key, value in moved.items()}
    alone_batch = {key: value[:1] for key, value in flagged.items()}
    _, alone = _terms(alone_pred, alone_batch)
    for name in ("keypoints_3d", "pose", "betas", "segm"):
        assert terms[name].item() == pytest.approx(alone[name].item(), rel=1e-5), name
        assert terms[name].item() > 0, name


def test_all_zero_flags_give_exact_zeros_and_finite_gradients(ground_truth):
    pred, batch = ground_truth
    moved = {key: value.detach().requires_grad_() for key, value in _away(pred).items()}
    empty = _clone(batch)
    for key in ("has_smpl", "has_joints_3d", "has_segm"):
        empty[key] = torch.zeros(BATCH, dtype=torch.bool)
    empty["keypoints"][..., 2] = 0.0
    # Ground truth of unsupervised samples may be anything, NaN included.
    for key in ("joints_3d", "pose", "betas"):
        empty[key] = torch.full_like(empty[key], float("nan"))
    empty["keypoints"][..., :2] = float("nan")
    empty["segm_mask"] = torch.full_like(empty["segm_mask"], 255)
    total, terms = _terms(moved, empty)
    for name in ("keypoints_2d", "keypoints_3d", "pose", "betas", "segm"):
        assert terms[name].item() == 0.0, name
    total.backward()
    for key, tensor in moved.items():
        if tensor.grad is not None:
            assert torch.isfinite(tensor.grad).all(), key
    assert torch.count_nonzero(moved["pred_pose"].grad) == 0
    assert torch.count_nonzero(moved["pred_cam"].grad[:, 0]) == BATCH  # only the camera prior is left


def test_bool_and_float_flags_agree(ground_truth):
    pred, batch = ground_truth
    moved = _away(pred)
    as_bool, as_float = _clone(batch), _clone(batch)
    mask = torch.tensor([True, False, True])
    for key in ("has_smpl", "has_joints_3d", "has_segm"):
        as_bool[key], as_float[key] = mask, mask.float()
    _, a = _terms(moved, as_bool)
    _, b = _terms(moved, as_float)
    for name in LOSS_TERMS:
        assert a[name].item() == b[name].item()


def test_gradients_reach_every_prediction(ground_truth):
    pred, batch = ground_truth
    moved = {key: value.detach().requires_grad_() for key, value in _away(pred).items()}
    total, _ = _terms(moved, batch)
    total.backward()
    for key in ("pred_pose", "pred_shape", "pred_cam", "pred_keypoints_3d", "pred_keypoints_2d", "pred_segm_mask"):
        grad = moved[key].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, key


def test_segm_logits_are_upsampled_to_the_label_size():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 25, 56, 56, generator=generator, requires_grad=True)
    labels = torch.randint(0, 25, (2, 224, 224), generator=generator)
    flags = torch.tensor([True, True])
    value = segm_loss(logits, labels, flags)
    upsampled = F.interpolate(logits, size=(224, 224), mode="bilinear", align_corners=True)
    assert value.item() == pytest.approx(F.cross_entropy(upsampled, labels).item(), rel=1e-6)
    value.backward()
    assert logits.grad.shape == (2, 25, 56, 56)
    # A part that fills the crop, predicted confidently at 56 x 56, costs ~0 at 224 x 224.
    constant = torch.tensor([7, 19])[:, None, None].expand(2, 224, 224)
    small = _confident_logits(torch.tensor([7, 19])[:, None, None].expand(2, 56, 56))
    assert segm_loss(small, constant, flags).item() == pytest.approx(0.0, abs=1e-9)
    # uint8 labels, as they come out of the shards, work too.
    assert segm_loss(small, constant.to(torch.uint8), flags).item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("unit", ["step", "epoch"])
def test_segm_schedule_switches_off_at_the_configured_point(unit):
    config = LossConfig(segm_weight=2.5, segm_off_at=10, segm_off_unit=unit)
    before = {"step": 9, "epoch": 9} | ({"epoch": 100} if unit == "step" else {"step": 10_000})
    at = {"step": 10, "epoch": 10} | ({"epoch": 0} if unit == "step" else {"step": 0})
    assert segm_weight_at(config, **before) == 2.5
    assert segm_weight_at(config, **at) == 0.0
    assert segm_weight_at(config, step=at["step"] + 5, epoch=at["epoch"] + 5) == 0.0
    never = LossConfig(segm_weight=2.5)
    assert segm_weight_at(never, step=10**9, epoch=10**6) == 2.5
    assert segm_weight_at(LossConfig(segm_off_at=0), step=0, epoch=0) == 0.0
    with pytest.raises(ValueError, match="step and epoch"):
        segm_weight_at(config, step=-1, epoch=0)


def test_loss_follows_the_schedule_and_skips_the_cross_entropy_when_off(ground_truth):
    pred, batch = ground_truth
    moved = _away(pred)
    config = LossConfig(segm_off_at=3, segm_off_unit="epoch")
    loss = PareLoss(config)
    _, on = loss(moved, batch, step=500, epoch=2)
    assert on["segm"].item() > 0 and on["segm_weight"].item() == 1.0
    # Off: no labels or logits needed at all, so the cross-entropy is not computed.
    no_segm_pred = {key: value for key, value in moved.items() if key != "pred_segm_mask"}
    no_segm_batch = {key: value for key, value in batch.items() if key not in ("segm_mask", "has_segm")}
    total, off = loss(no_segm_pred, no_segm_batch, step=501, epoch=3)
    assert off["segm"].item() == 0.0 and off["segm_weight"].item() == 0.0
    assert total.item() == pytest.approx(60.0 * sum(off[name].item() for name in LOSS_TERMS), rel=1e-6)
    with pytest.raises(KeyError, match="segm_mask"):
        loss(moved, no_segm_batch, step=0, epoch=0)


def test_loss_config_defaults_are_pares():
    config = LossConfig()
    assert config.weights() == {
        "keypoints_2d": 5.0,
        "keypoints_3d": 5.0,
        "pose": 1.0,
        "betas": 0.001,
        "cam": 1.0,
        "segm": 1.0,
    }
    assert (config.loss_scale, config.openpose_2d_weight, config.gt_2d_weight) == (60.0, 0.0, 1.0)
    assert (config.segm_off_at, config.segm_off_unit) == (None, "epoch")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pose_weight": -1.0}, "pose_weight"),
        ({"betas_weight": float("nan")}, "betas_weight"),
        ({"segm_weight": float("inf")}, "segm_weight"),
        ({"openpose_2d_weight": "1"}, "openpose_2d_weight"),
        ({"loss_scale": 0.0}, "loss_scale"),
        ({"segm_off_at": -1}, "segm_off_at"),
        ({"segm_off_at": 2.5}, "segm_off_at"),
        ({"segm_off_at": True}, "segm_off_at"),
        ({"segm_off_unit": "iteration"}, "segm_off_unit"),
    ],
)
def test_loss_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field} must"):
        LossConfig(**kwargs)


def test_loss_config_is_a_documented_structured_config():
    from pipelines.config.field_docs import field_docs

    docs = field_docs(LossConfig)
    assert {field.name for field in dataclasses.fields(LossConfig)} == set(docs)
    merged = OmegaConf.merge(OmegaConf.structured(LossConfig), {"segm_off_at": 20, "segm_off_unit": "step"})
    config = LossConfig(**OmegaConf.to_container(merged))
    assert segm_weight_at(config, step=19, epoch=0) == 1.0
    assert segm_weight_at(config, step=20, epoch=0) == 0.0
