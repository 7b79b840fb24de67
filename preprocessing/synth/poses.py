"""Plausible random body poses within joint limits, and random body shapes.

A body pose is (23, 3) axis-angle rotations of the SMPL joints 1..23 relative to their parents,
in SMPL's rest frame (metres, y up, the body faces +z, its left side is +x). The root
orientation is not sampled here: the scene places the body in its camera or world.

Limits are boxes on the axis-angle components of each joint, declared for the left side and
mirrored for the right side (the mirror image of ``(x, y, z)`` is ``(x, -y, -z)``, as in
:func:`pare_model.joint_sets.flip_smpl_pose`). With the signs of the rest frame:

- hips: x < 0 swings the leg forward (flexion), z > 0 takes the left leg outwards;
- knees: x > 0 only (they bend one way); ankles: x > 0 points the toes down;
- spine: x > 0 bends forward, y twists, z bends sideways; small ranges per vertebra joint;
- shoulders: z > 0 raises the left arm, z < 0 lowers it, y < 0 swings it forward;
- elbows: y < 0 only for the left elbow (y > 0 for the right): they bend one way.

Every box lies within the ball of radius pi, so a matrix converts back to the same axis-angle
vector, and a box is convex, so linear interpolation of two poses stays within the limits.
A sample is a base posture (standing, walking, arms raised, sitting, crouching) plus Gaussian
variation, clipped to the limits. Everything is deterministic given a ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from pare_model.joint_sets import SMPL_JOINT_NAMES, mirror_joint_name

NUM_BODY_JOINTS = 23
NUM_BETAS = 10
BETA_LIMIT = 2.0
"""Betas are drawn from N(0, 1) and clipped to [-BETA_LIMIT, BETA_LIMIT]."""

# (lower, upper) of the x, y, z axis-angle components in radians, left side and centre joints.
_LIMITS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "left_hip": ((-2.2, 0.6), (-0.6, 0.6), (-0.3, 0.8)),
    "spine1": ((-0.25, 0.5), (-0.3, 0.3), (-0.25, 0.25)),
    "left_knee": ((0.0, 2.4), (-0.1, 0.1), (-0.1, 0.1)),
    "spine2": ((-0.2, 0.4), (-0.3, 0.3), (-0.2, 0.2)),
    "left_ankle": ((-0.4, 0.7), (-0.3, 0.3), (-0.3, 0.3)),
    "spine3": ((-0.2, 0.4), (-0.3, 0.3), (-0.2, 0.2)),
    "left_foot": ((-0.2, 0.3), (-0.1, 0.1), (-0.1, 0.1)),
    "neck": ((-0.4, 0.5), (-0.4, 0.4), (-0.3, 0.3)),
    "left_collar": ((-0.2, 0.2), (-0.3, 0.3), (-0.3, 0.4)),
    "head": ((-0.3, 0.4), (-0.5, 0.5), (-0.3, 0.3)),
    "left_shoulder": ((-1.0, 1.0), (-1.4, 0.6), (-1.5, 1.3)),
    "left_elbow": ((-0.15, 0.15), (-2.4, 0.0), (-0.15, 0.15)),
    "left_wrist": ((-0.6, 0.6), (-0.4, 0.4), (-0.8, 0.8)),
    "left_hand": ((-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2)),
}

# Base postures: axis-angle of the joints that differ from zero (left and centre joints;
# entries named "right_*" are given explicitly where the posture is not symmetric).
_POSTURES: dict[str, dict[str, tuple[float, float, float]]] = {
    "standing": {
        "left_hip": (-0.05, 0.0, 0.06),
        "right_hip": (-0.05, 0.0, -0.06),
        "left_knee": (0.1, 0.0, 0.0),
        "right_knee": (0.1, 0.0, 0.0),
        "left_shoulder": (0.0, -0.1, -1.2),
        "right_shoulder": (0.0, 0.1, 1.2),
        "left_elbow": (0.0, -0.3, 0.0),
        "right_elbow": (0.0, 0.3, 0.0),
    },
    "walking": {
        "left_hip": (-0.45, 0.0, 0.03),
        "right_hip": (0.3, 0.0, -0.03),
        "left_knee": (0.25, 0.0, 0.0),
        "right_knee": (0.6, 0.0, 0.0),
        "right_ankle": (0.25, 0.0, 0.0),
        "spine2": (0.05, 0.0, 0.0),
        "left_shoulder": (0.0, 0.35, -1.2),
        "right_shoulder": (0.0, 0.45, 1.2),
        "left_elbow": (0.0, -0.3, 0.0),
        "right_elbow": (0.0, 0.8, 0.0),
    },
    "arms_raised": {
        "left_hip": (0.0, 0.0, 0.1),
        "right_hip": (0.0, 0.0, -0.1),
        "left_collar": (0.0, 0.0, 0.25),
        "right_collar": (0.0, 0.0, -0.25),
        "left_shoulder": (0.0, -0.2, 0.8),
        "right_shoulder": (0.0, 0.2, -0.8),
        "left_elbow": (0.0, -0.4, 0.0),
        "right_elbow": (0.0, 0.4, 0.0),
        "neck": (-0.15, 0.0, 0.0),
    },
    "sitting": {
        "left_hip": (-1.5, 0.0, 0.15),
        "right_hip": (-1.5, 0.0, -0.15),
        "left_knee": (1.5, 0.0, 0.0),
        "right_knee": (1.5, 0.0, 0.0),
        "spine1": (0.1, 0.0, 0.0),
        "left_shoulder": (0.0, -0.5, -1.1),
        "right_shoulder": (0.0, 0.5, 1.1),
        "left_elbow": (0.0, -1.2, 0.0),
        "right_elbow": (0.0, 1.2, 0.0),
    },
    "crouching": {
        "left_hip": (-2.0, 0.0, 0.3),
        "right_hip": (-2.0, 0.0, -0.3),
        "left_knee": (2.2, 0.0, 0.0),
        "right_knee": (2.2, 0.0, 0.0),
        "left_ankle": (-0.3, 0.0, 0.0),
        "right_ankle": (-0.3, 0.0, 0.0),
        "spine1": (0.3, 0.0, 0.0),
        "spine2": (0.2, 0.0, 0.0),
        "neck": (-0.3, 0.0, 0.0),
        "left_shoulder": (0.0, -0.7, -0.9),
        "right_shoulder": (0.0, 0.7, 0.9),
        "left_elbow": (0.0, -1.0, 0.0),
        "right_elbow": (0.0, 1.0, 0.0),
    },
}
POSTURES: tuple[str, ...] = tuple(_POSTURES)
POSTURE_WEIGHTS = np.array([0.3, 0.3, 0.15, 0.15, 0.1])
"""How often each posture is drawn, in the order of :data:`POSTURES`."""

VARIATION = 0.25
"""Standard deviation (radians) of the per-component variation around a posture; the large
joints (hips, shoulders, elbows, knees) vary twice as much."""
_LARGE_JOINTS = ("hip", "shoulder", "elbow", "knee")


def _mirror_limits(limits):
    (xl, xh), (yl, yh), (zl, zh) = limits
    return ((xl, xh), (-yh, -yl), (-zh, -zl))


def joint_limits() -> tuple[np.ndarray, np.ndarray]:
    """(23, 3) lower and (23, 3) upper bounds of the body joints' axis-angle components."""
    lower = np.zeros((NUM_BODY_JOINTS, 3))
    upper = np.zeros((NUM_BODY_JOINTS, 3))
    for k, name in enumerate(SMPL_JOINT_NAMES[1:]):
        if name in _LIMITS:
            limits = _LIMITS[name]
        else:
            limits = _mirror_limits(_LIMITS[mirror_joint_name(name)])
        lower[k], upper[k] = np.array(limits).T
    return lower, upper


def posture(name: str) -> np.ndarray:
    """(23, 3) axis-angle base posture ``name`` (one of :data:`POSTURES`)."""
    try:
        joints = _POSTURES[name]
    except KeyError:
        raise KeyError(f"unknown posture {name!r}; valid names: {list(POSTURES)}") from None
    pose = np.zeros((NUM_BODY_JOINTS, 3))
    for joint, axis_angle in joints.items():
        pose[SMPL_JOINT_NAMES.index(joint) - 1] = axis_angle
    return pose


def _variation_scale() -> np.ndarray:
    """(23, 1) standard deviation of the variation per joint."""
    large = [any(part in name for part in _LARGE_JOINTS) for name in SMPL_JOINT_NAMES[1:]]
    return np.where(large, 2.0 * VARIATION, VARIATION)[:, None]


def sample_body_poses(
    rng: np.random.Generator, num: int, postures: Sequence[str] | None = None, variation: float = 1.0
) -> np.ndarray:
    """(num, 23, 3) random axis-angle body poses within :func:`joint_limits`.

    Args:
        rng: the source of randomness; the same state gives the same poses.
        num: how many poses.
        postures: base postures to draw from (default all, with :data:`POSTURE_WEIGHTS`).
        variation: multiplies the standard deviation of the variation around the posture.
    """
    names = list(POSTURES) if postures is None else list(postures)
    weights = np.array([POSTURE_WEIGHTS[POSTURES.index(n)] for n in names]) if postures is None else None
    if weights is not None:
        weights = weights / weights.sum()
    bases = np.stack([posture(n) for n in names])  # (P, 23, 3)
    choice = rng.choice(len(names), size=num, p=weights)
    noise = rng.normal(0.0, 1.0, size=(num, NUM_BODY_JOINTS, 3)) * _variation_scale() * variation
    lower, upper = joint_limits()
    return np.clip(bases[choice] + noise, lower, upper)


def sample_betas(rng: np.random.Generator, num: int, limit: float = BETA_LIMIT) -> np.ndarray:
    """(num, 10) shape coefficients drawn from N(0, 1) and clipped to [-limit, limit]."""
    return np.clip(rng.normal(0.0, 1.0, size=(num, NUM_BETAS)), -limit, limit)


def interpolate_keyframes(keyframes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(T, ...) smooth motion through (K, ...) keyframes sampled at ``times`` in [0, K - 1].

    Keyframe ``k`` is reached at time ``k``; consecutive keyframes are joined with a cosine
    ease, so velocity is zero at each keyframe and the motion has no jumps. Linear blends of
    axis-angle vectors stay within the (convex) joint limits when the keyframes do.
    """
    keyframes = np.asarray(keyframes, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if len(keyframes) == 1:
        return np.repeat(keyframes[:1], len(times), axis=0)
    index = np.clip(np.floor(times).astype(int), 0, len(keyframes) - 2)
    t = np.clip(times - index, 0.0, 1.0)
    ease = (0.5 - 0.5 * np.cos(np.pi * t)).reshape((-1,) + (1,) * (keyframes.ndim - 1))
    return (1.0 - ease) * keyframes[index] + ease * keyframes[index + 1]


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (float64)."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    matrices = Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix()
    return matrices.reshape(axis_angle.shape[:-1] + (3, 3))


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle with angle in [0, pi] (float64)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    vectors = Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_rotvec()
    return vectors.reshape(matrix.shape[:-2] + (3,))
