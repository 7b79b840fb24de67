"""Named poses for pictures, as axis-angle SMPL poses (24, 3) with the root unrotated."""

from __future__ import annotations

import numpy as np

from pare_model.joint_sets import SMPL_JOINT_NAMES

_POSES: dict[str, dict[str, tuple[float, float, float]]] = {
    "t_pose": {},
    "walk": {
        "left_hip": (-0.55, 0.0, 0.05),
        "right_hip": (0.35, 0.0, -0.05),
        "left_knee": (0.35, 0.0, 0.0),
        "right_knee": (0.55, 0.0, 0.0),
        "left_ankle": (-0.15, 0.0, 0.0),
        "right_ankle": (0.2, 0.0, 0.0),
        "spine2": (0.05, 0.1, 0.0),
        "neck": (0.05, -0.1, 0.0),
        "left_collar": (0.0, 0.0, -0.15),
        "right_collar": (0.0, 0.0, 0.15),
        "left_shoulder": (0.0, -0.45, -1.15),
        "right_shoulder": (0.0, -0.35, 1.2),
        "left_elbow": (0.0, -0.5, 0.0),
        "right_elbow": (0.0, 0.9, 0.0),
    },
    "wave": {
        "left_hip": (-0.05, 0.0, 0.12),
        "right_hip": (-0.05, 0.0, -0.06),
        "left_knee": (0.08, 0.0, 0.0),
        "right_knee": (0.08, 0.0, 0.0),
        "spine3": (0.0, 0.0, -0.08),
        "head": (0.0, 0.15, 0.1),
        "right_collar": (0.0, 0.0, -0.2),
        "right_shoulder": (0.0, 0.0, -0.45),
        "right_elbow": (0.0, 0.3, -1.6),
        "right_wrist": (0.0, 0.0, 0.3),
        "left_shoulder": (0.0, 0.0, -1.2),
        "left_elbow": (0.0, -0.6, 0.0),
    },
}
POSE_NAMES = tuple(_POSES) + ("mean",)


def demo_pose(name: str) -> np.ndarray:
    """(24, 3) axis-angle pose called ``name`` (one of :data:`POSE_NAMES` but 'mean')."""
    try:
        joints = _POSES[name]
    except KeyError:
        raise KeyError(f"unknown pose {name!r}; valid names: {sorted(_POSES)}") from None
    pose = np.zeros((24, 3))
    for joint, axis_angle in joints.items():
        pose[SMPL_JOINT_NAMES.index(joint)] = axis_angle
    return pose
