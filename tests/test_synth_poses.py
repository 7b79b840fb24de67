"""Random body poses within joint limits, random shapes, and smooth motions."""

from __future__ import annotations

import numpy as np
import pytest

from pare_model.joint_sets import SMPL_JOINT_NAMES, mirror_joint_name
from preprocessing.bodies import pose_bodies
from preprocessing.synth.poses import (
    BETA_LIMIT,
    POSTURES,
    axis_angle_to_matrix,
    interpolate_keyframes,
    joint_limits,
    matrix_to_axis_angle,
    posture,
    sample_betas,
    sample_body_poses,
)

BODY_JOINTS = SMPL_JOINT_NAMES[1:]


def joint(name: str) -> int:
    return BODY_JOINTS.index(name)


def test_limits_are_mirror_symmetric_boxes_inside_the_pi_ball():
    lower, upper = joint_limits()
    assert (lower <= upper).all()
    corners = np.maximum(np.abs(lower), np.abs(upper))
    assert np.linalg.norm(corners, axis=1).max() < np.pi  # matrices convert back to the same vector
    for k, name in enumerate(BODY_JOINTS):
        m = joint(mirror_joint_name(name))
        np.testing.assert_array_equal(lower[m], [lower[k, 0], -upper[k, 1], -upper[k, 2]])
    # Knees bend one way (x >= 0), elbows one way (left y <= 0, right y >= 0).
    assert lower[joint("left_knee"), 0] >= 0 and lower[joint("right_knee"), 0] >= 0
    assert upper[joint("left_elbow"), 1] <= 0 and lower[joint("right_elbow"), 1] >= 0
    spine = [joint(n) for n in ("spine1", "spine2", "spine3", "neck")]
    assert np.abs(np.concatenate([lower[spine, 1], upper[spine, 1]])).max() <= 0.4  # limited twist


@pytest.mark.parametrize("name", POSTURES)
def test_postures_lie_within_the_limits(name):
    lower, upper = joint_limits()
    base = posture(name)
    assert ((base >= lower) & (base <= upper)).all()


def test_unknown_posture_lists_the_valid_names():
    with pytest.raises(KeyError, match="valid names: .*standing"):
        posture("dancing")


def test_sampled_poses_are_valid_rotations_within_the_limits():
    poses = sample_body_poses(np.random.default_rng(0), 400)
    assert poses.shape == (400, 23, 3) and np.isfinite(poses).all()
    rotations = axis_angle_to_matrix(poses)
    identity = np.broadcast_to(np.eye(3), rotations.shape)
    np.testing.assert_allclose(rotations @ np.swapaxes(rotations, -1, -2), identity, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)
    recovered = matrix_to_axis_angle(rotations)
    np.testing.assert_allclose(recovered, poses, atol=1e-9)
    lower, upper = joint_limits()
    assert ((recovered >= lower - 1e-9) & (recovered <= upper + 1e-9)).all()
    # The poses vary: hips and shoulders move a lot, and the limits are reached sometimes.
    assert poses[:, joint("left_hip"), 0].std() > 0.3 and poses[:, joint("left_shoulder"), 2].std() > 0.3
    assert (poses[:, joint("left_knee"), 0] == 0.0).any()  # clipped at the one-way limit


def test_sampling_is_deterministic_per_seed():
    a = sample_body_poses(np.random.default_rng(7), 5), sample_betas(np.random.default_rng(7), 5)
    b = sample_body_poses(np.random.default_rng(7), 5), sample_betas(np.random.default_rng(7), 5)
    c = sample_body_poses(np.random.default_rng(8), 5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c)


def test_betas_are_standard_normal_clipped():
    betas = sample_betas(np.random.default_rng(1), 4000)
    assert betas.shape == (4000, 10)
    assert np.abs(betas).max() <= BETA_LIMIT and (np.abs(betas) == BETA_LIMIT).any()
    assert abs(betas.mean()) < 0.03 and 0.93 < betas.std() < 1.0


def test_interpolation_passes_through_keyframes_with_zero_velocity_there():
    keys = sample_body_poses(np.random.default_rng(2), 3)
    motion = interpolate_keyframes(keys, np.array([0.0, 0.5, 1.0, 1.0 + 1e-4, 2.0]))
    np.testing.assert_allclose(motion[[0, 2, 4]], keys, atol=1e-12)
    np.testing.assert_allclose(motion[1], (keys[0] + keys[1]) / 2, atol=1e-12)  # the ease is symmetric
    assert np.abs(motion[3] - motion[2]).max() < 1e-6  # velocity ~0 at the keyframe (second order)
    lower, upper = joint_limits()
    dense = interpolate_keyframes(keys, np.linspace(0, 2, 50))
    assert ((dense >= lower - 1e-12) & (dense <= upper + 1e-12)).all()  # convex blends, up to rounding


def test_limit_signs_match_the_body_model(body_model):
    """Positive knee x bends the shin backwards (-z); negative left-elbow y brings the hand forward (+z)."""
    pose = np.zeros((3, 24, 3))
    pose[1, 1 + joint("left_knee"), 0] = 1.2
    pose[2, 1 + joint("left_elbow"), 1] = -1.2
    bodies = pose_bodies(body_model, pose, np.zeros((3, 10)))
    ankle, wrist = SMPL_JOINT_NAMES.index("left_ankle"), SMPL_JOINT_NAMES.index("left_wrist")
    rest, bent, flexed = bodies.smpl_joints
    assert bent[ankle, 2] < rest[ankle, 2] - 0.2
    assert flexed[wrist, 2] > rest[wrist, 2] + 0.15
