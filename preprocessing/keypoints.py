"""The datasets' 2D keypoint sets, mapped by name onto the body model's 49 SPIN/PARE joints.

The mappings are SPIN's: COCO's and MPII's annotations land on SPIN's 24 "ground-truth"
joints, OpenPose's on the first 25, and Human3.6M's 17 joints on 17 of the 24 (its thorax is
SPIN's "Neck (LSP)", its neck/nose SPIN's "Jaw (H36M)").
"""

from __future__ import annotations

import numpy as np

from pare_model.joint_sets import SPIN_JOINT_NAMES

COCO17_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO17_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14),
    (14, 12),
    (17, 15),
    (15, 13),
    (12, 13),
    (6, 12),
    (7, 13),
    (6, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (9, 11),
    (2, 3),
    (1, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 7),
)
"""COCO's limb list (1-based keypoint ids), as in ``person_keypoints_*.json``."""

COCO17_TO_SPIN: tuple[str, ...] = (
    "Nose",
    "Left Eye",
    "Right Eye",
    "Left Ear",
    "Right Ear",
    "Left Shoulder",
    "Right Shoulder",
    "Left Elbow",
    "Right Elbow",
    "Left Wrist",
    "Right Wrist",
    "Left Hip",
    "Right Hip",
    "Left Knee",
    "Right Knee",
    "Left Ankle",
    "Right Ankle",
)

OPENPOSE18_TO_SPIN: tuple[str, ...] = (
    "OP Nose",
    "OP Neck",
    "OP RShoulder",
    "OP RElbow",
    "OP RWrist",
    "OP LShoulder",
    "OP LElbow",
    "OP LWrist",
    "OP RHip",
    "OP RKnee",
    "OP RAnkle",
    "OP LHip",
    "OP LKnee",
    "OP LAnkle",
    "OP REye",
    "OP LEye",
    "OP REar",
    "OP LEar",
)
"""OpenPose's 18-joint (COCO-18) order of 3DPW's ``poses2d``, as SPIN joints."""

OPENPOSE18_TO_SPIN_GT: tuple[str, ...] = (
    "Nose",
    "Neck (LSP)",
    "Right Shoulder",
    "Right Elbow",
    "Right Wrist",
    "Left Shoulder",
    "Left Elbow",
    "Left Wrist",
    "Right Hip",
    "Right Knee",
    "Right Ankle",
    "Left Hip",
    "Left Knee",
    "Left Ankle",
    "Right Eye",
    "Left Eye",
    "Right Ear",
    "Left Ear",
)
"""The same 18 joints among SPIN's ground-truth joints (EFT's ``joint_validity_openpose18``)."""

MPII16_NAMES: tuple[str, ...] = (
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
)
MPII16_TO_SPIN: tuple[str, ...] = (
    "Right Ankle",
    "Right Knee",
    "Right Hip",
    "Left Hip",
    "Left Knee",
    "Left Ankle",
    "Pelvis (MPII)",
    "Thorax (MPII)",
    "Neck (LSP)",
    "Top of Head (LSP)",
    "Right Wrist",
    "Right Elbow",
    "Right Shoulder",
    "Left Shoulder",
    "Left Elbow",
    "Left Wrist",
)

H36M17_TO_SPIN_GT: tuple[str, ...] = (
    "Pelvis (MPII)",
    "Left Hip",
    "Left Knee",
    "Left Ankle",
    "Right Hip",
    "Right Knee",
    "Right Ankle",
    "Spine (H36M)",
    "Neck (LSP)",
    "Jaw (H36M)",
    "Head (H36M)",
    "Left Shoulder",
    "Left Elbow",
    "Left Wrist",
    "Right Shoulder",
    "Right Elbow",
    "Right Wrist",
)
"""Human3.6M's 17 joints (SPIN/PARE order) as SPIN ground-truth joints."""

MPI_INF_3DHP17_TO_SPIN_GT: tuple[str, ...] = (
    "Top of Head (LSP)",
    "Neck (LSP)",
    "Right Shoulder",
    "Right Elbow",
    "Right Wrist",
    "Left Shoulder",
    "Left Elbow",
    "Left Wrist",
    "Right Hip",
    "Right Knee",
    "Right Ankle",
    "Left Hip",
    "Left Knee",
    "Left Ankle",
    "Pelvis (MPII)",
    "Spine (H36M)",
    "Head (H36M)",
)
"""MPI-INF-3DHP's 17 test-set joints (head top, neck, ..., pelvis, spine, head; mmpose's npz order) as SPIN GT joints."""

NUM_OPENPOSE = 25
NUM_GT = 24


def spin_indices(names: tuple[str, ...]) -> np.ndarray:
    """(K,) indices of the named joints among the 49 SPIN joints."""
    return np.array([SPIN_JOINT_NAMES.index(name) for name in names])


def gt_indices(names: tuple[str, ...]) -> np.ndarray:
    """(K,) indices of the named joints among SPIN's 24 ground-truth joints."""
    return spin_indices(names) - NUM_OPENPOSE


def h36m_gt_mask() -> np.ndarray:
    """(24,) bool: the ground-truth joints that Human3.6M annotates (the others are zero in SPIN's npz)."""
    mask = np.zeros(NUM_GT, bool)
    mask[gt_indices(H36M17_TO_SPIN_GT)] = True
    return mask
