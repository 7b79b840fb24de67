"""The designed proportions of the procedural body: its joints and its tubes' cross-sections.

Coordinates follow SMPL: metres, y up, the body faces +z, its left side is +x, rest pose is
a T-pose. Sizes are those of an average adult, about 1.70 m tall. Left-side values are
given; right-side ones are their mirror images.
"""

from __future__ import annotations

import numpy as np

from pare_model.body_model.procedural.tubes import Station, TubeSpec
from pare_model.joint_sets import SMPL_JOINT_NAMES

TORSO_RING = 44
"""Vertices per torso ring; even, with the front at index 0 and the left side at index 11."""

_LEFT_JOINTS = {
    "hip": (0.080, -0.335, -0.005),
    "knee": (0.095, -0.700, 0.008),
    "ankle": (0.090, -1.085, -0.018),
    "foot": (0.099, -1.148, 0.112),
    "collar": (0.070, 0.190, -0.010),
    "shoulder": (0.175, 0.205, -0.010),
    "elbow": (0.430, 0.205, -0.020),
    "wrist": (0.680, 0.205, -0.010),
    "hand": (0.765, 0.199, -0.005),
}
_CENTRE_JOINTS = {
    "pelvis": (0.0, -0.245, -0.005),
    "spine1": (0.0, -0.125, -0.012),
    "spine2": (0.0, 0.010, -0.012),
    "spine3": (0.0, 0.065, -0.010),
    "neck": (0.0, 0.275, -0.015),
    "head": (0.0, 0.345, 0.008),
}
HEAD_TOP = (0.0, 0.515, 0.0)
TOE_TIP = (0.104, -1.156, 0.182)
"""Tip of the left foot; the right one is its mirror image."""
FINGER_TIP = (0.874, 0.194, -0.005)
"""Tip of the left hand; the right one is its mirror image."""


def design_joints() -> np.ndarray:
    """(24, 3) the joint positions the rest shape is built around, in SMPL joint order."""
    joints = []
    for name in SMPL_JOINT_NAMES:
        side, _, base = name.partition("_")
        if side in ("left", "right"):
            x, y, z = _LEFT_JOINTS[base]
            joints.append((x if side == "left" else -x, y, z))
        else:
            joints.append(_CENTRE_JOINTS[name])
    return np.array(joints, dtype=np.float64)


TORSO = TubeSpec(
    stations=(
        Station((0.0, -0.375, -0.008), 0.150, 0.098),
        Station((0.0, -0.320, -0.012), 0.168, 0.106),
        Station((0.0, -0.240, -0.004), 0.160, 0.101),
        Station((0.0, -0.150, 0.004), 0.140, 0.095),
        Station((0.0, -0.060, 0.010), 0.138, 0.098),
        Station((0.0, 0.030, 0.012), 0.148, 0.106),
        Station((0.0, 0.100, 0.006), 0.158, 0.108),
        Station((0.0, 0.145, 0.000), 0.160, 0.100),
    ),
    ring_sizes=(TORSO_RING,) * 34,
    u_axis=(1.0, 0.0, 0.0),
)


def leg(side: float) -> TubeSpec:
    x = side
    return TubeSpec(
        stations=(
            Station((0.094 * x, -0.445, -0.006), 0.076, 0.084),
            Station((0.095 * x, -0.520, -0.002), 0.070, 0.077),
            Station((0.093 * x, -0.620, 0.004), 0.060, 0.062),
            Station((0.095 * x, -0.700, 0.010), 0.050, 0.051),
            Station((0.094 * x, -0.780, -0.004), 0.049, 0.055),
            Station((0.092 * x, -0.880, -0.012), 0.045, 0.050),
            Station((0.090 * x, -0.980, -0.016), 0.036, 0.037),
            Station((0.090 * x, -1.060, -0.020), 0.031, 0.033),
            Station((0.091 * x, -1.112, 0.000), 0.035, 0.035),
            Station((0.094 * x, -1.138, 0.050), 0.042, 0.031),
            Station((0.098 * x, -1.148, 0.110), 0.045, 0.024),
            Station((0.102 * x, -1.153, 0.150), 0.040, 0.019),
            Station((0.104 * x, -1.155, 0.168), 0.030, 0.014),
        ),
        ring_sizes=(26,) * 44 + (22, 16, 9),
        u_axis=(x, 0.0, 0.0),
        tip=(0.104 * x, -1.156, 0.182),
    )


def arm(side: float) -> TubeSpec:
    x = side
    return TubeSpec(
        stations=(
            Station((0.185 * x, 0.205, -0.005), 0.066, 0.062),
            Station((0.250 * x, 0.205, -0.010), 0.056, 0.055),
            Station((0.330 * x, 0.205, -0.015), 0.045, 0.046),
            Station((0.430 * x, 0.205, -0.020), 0.036, 0.038),
            Station((0.500 * x, 0.205, -0.020), 0.037, 0.040),
            Station((0.600 * x, 0.205, -0.015), 0.026, 0.033),
            Station((0.675 * x, 0.205, -0.010), 0.020, 0.030),
            Station((0.730 * x, 0.201, -0.005), 0.017, 0.044),
            Station((0.790 * x, 0.198, -0.005), 0.015, 0.046),
            Station((0.840 * x, 0.195, -0.005), 0.012, 0.040),
            Station((0.862 * x, 0.194, -0.005), 0.009, 0.030),
        ),
        ring_sizes=(22,) * 37 + (18, 12, 7),
        u_axis=(0.0, 1.0, 0.0),
        tip=(0.874 * x, 0.194, -0.005),
    )


NECK_AND_HEAD = TubeSpec(
    stations=(
        Station((0.0, 0.265, -0.012), 0.062, 0.056),
        Station((0.0, 0.300, -0.008), 0.056, 0.054),
        Station((0.0, 0.330, 0.004), 0.062, 0.070),
        Station((0.0, 0.365, 0.014), 0.070, 0.086),
        Station((0.0, 0.410, 0.014), 0.076, 0.095),
        Station((0.0, 0.455, 0.008), 0.072, 0.088),
        Station((0.0, 0.490, 0.002), 0.055, 0.066),
        Station((0.0, 0.512, 0.000), 0.030, 0.036),
    ),
    ring_sizes=(36,) * 24 + (30, 22, 16, 12),
    u_axis=(1.0, 0.0, 0.0),
    tip=(0.0, 0.520, 0.000),
)
