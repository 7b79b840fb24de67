"""The datasets' 2D keypoint sets, mapped by name onto the body model's 49 SPIN/PARE joints.

The mappings are SPIN's: COCO's and MPII's annotations land on SPIN's 24 "ground-truth"
joints, OpenPose's on the first 25, and Human3.6M's 17 joints on 17 of the 24 (its thorax is
SPIN's "Neck (LSP)", its neck/nose SPIN's "Jaw (H36M)", its head SPIN's "Head (H36M)"; "Top of
Head (LSP)" stays empty), as are MPI-INF-3DHP's 17 (its head top in "Head (H36M)", its head in
"Jaw (H36M)"). ``docs/data-formats.md`` tabulates the 24 slots and who fills which.
"""

from __future__ import annotations

import numpy as np

from pare_model.joint_sets import H36M_JOINT_NAMES, SPIN_JOINT_NAMES

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

LSP14_TO_SPIN_GT: tuple[str, ...] = SPIN_JOINT_NAMES[25:39]
"""LSP's 14 joints (right ankle ... neck, head top; PARE's ``common`` set) as SPIN ground-truth joints: slots 0-13."""

MPI_INF_3DHP17_TO_SPIN_GT: tuple[str, ...] = (
    "Head (H36M)",
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
    "Jaw (H36M)",
)
"""MPI-INF-3DHP's 17 test-set joints (head top, neck, ..., pelvis, spine, head; mmpose's npz order) as SPIN GT joints.

SPIN's slots (``datasets/preprocess/mpi_inf_3dhp.py`` ``test_data``: ``joints17_idx`` puts the 17 in Human3.6M's
order, head top where Human3.6M has its head and head where it has its neck/nose, then ``joints_idx``), so that
PARE's ``J24_TO_J17`` evaluates the head top in slot 18 and the head in slot 17."""

HUMAN_DATA_NUM_KEYPOINTS = 190
"""Keypoints of mmhuman3d's ``human_data`` convention, the layout of every HumanData file."""

SPIN_IN_HUMAN_DATA: dict[str, tuple[str, int]] = {
    "OP Nose": ("nose_openpose", 153),
    "OP Neck": ("neck_openpose", 154),
    "OP RShoulder": ("right_shoulder_openpose", 155),
    "OP RElbow": ("right_elbow_openpose", 156),
    "OP RWrist": ("right_wrist_openpose", 157),
    "OP LShoulder": ("left_shoulder_openpose", 158),
    "OP LElbow": ("left_elbow_openpose", 159),
    "OP LWrist": ("left_wrist_openpose", 160),
    "OP MidHip": ("pelvis_openpose", 161),
    "OP RHip": ("right_hip_openpose", 162),
    "OP RKnee": ("right_knee_openpose", 163),
    "OP RAnkle": ("right_ankle_openpose", 164),
    "OP LHip": ("left_hip_openpose", 165),
    "OP LKnee": ("left_knee_openpose", 166),
    "OP LAnkle": ("left_ankle_openpose", 167),
    "OP REye": ("right_eye_openpose", 168),
    "OP LEye": ("left_eye_openpose", 169),
    "OP REar": ("right_ear_openpose", 170),
    "OP LEar": ("left_ear_openpose", 171),
    "OP LBigToe": ("left_bigtoe_openpose", 172),
    "OP LSmallToe": ("left_smalltoe_openpose", 173),
    "OP LHeel": ("left_heel_openpose", 174),
    "OP RBigToe": ("right_bigtoe_openpose", 175),
    "OP RSmallToe": ("right_smalltoe_openpose", 176),
    "OP RHeel": ("right_heel_openpose", 177),
    "Right Ankle": ("right_ankle", 8),
    "Right Knee": ("right_knee", 5),
    "Right Hip": ("right_hip_extra", 144),
    "Left Hip": ("left_hip_extra", 145),
    "Left Knee": ("left_knee", 4),
    "Left Ankle": ("left_ankle", 7),
    "Right Wrist": ("right_wrist", 21),
    "Right Elbow": ("right_elbow", 19),
    "Right Shoulder": ("right_shoulder", 17),
    "Left Shoulder": ("left_shoulder", 16),
    "Left Elbow": ("left_elbow", 18),
    "Left Wrist": ("left_wrist", 20),
    "Neck (LSP)": ("neck_extra", 146),
    "Top of Head (LSP)": ("headtop", 147),
    "Pelvis (MPII)": ("pelvis_extra", 148),
    "Thorax (MPII)": ("thorax_extra", 149),
    "Spine (H36M)": ("spine_extra", 150),
    "Jaw (H36M)": ("jaw_extra", 151),
    "Head (H36M)": ("head_extra", 152),
    "Nose": ("nose", 55),
    "Left Eye": ("left_eye", 57),
    "Right Eye": ("right_eye", 56),
    "Left Ear": ("left_ear", 59),
    "Right Ear": ("right_ear", 58),
}
"""Each of SPIN's 49 joints among the 190 ``human_data`` keypoints: its name there and its index.

mmhuman3d's converters store every dataset's joints under these names (its ``smpl_49`` convention is
SPIN's order of them); its training reads them back by the same names (mmhuman3d
``core/conventions/keypoints_mapping``: ``human_data.py``, ``smpl.py``). Note its Human3.6M mapping: joint 9
(neck/nose) is ``head_extra`` ("Head (H36M)") and joint 10 (head) is ``headtop`` ("Top of Head (LSP)").
"""

H36M_HUMAN_DATA_NAMES: dict[str, str] = {
    "pelvis": "pelvis_extra",
    "left_hip": "left_hip_extra",
    "right_hip": "right_hip_extra",
    "spine": "spine_extra",
    "thorax": "neck_extra",
    "neck_nose": "head_extra",
    "head": "headtop",
}
"""mmhuman3d's ``human_data`` names of the Human3.6M joints whose name differs (the others keep theirs)."""
H36M17_IN_HUMAN_DATA: tuple[str, ...] = tuple(H36M_HUMAN_DATA_NAMES.get(name, name) for name in H36M_JOINT_NAMES)
"""Human3.6M's 17 joints (the order of :data:`H36M17_TO_SPIN_GT`) by their ``human_data`` names in files of
mmhuman3d's own Human3.6M and MPI-INF-3DHP converters (mmhuman3d ``keypoints_mapping/h36m.py`` ``H36M_KEYPOINTS``;
3DHP's 17 of SPIN carry the same names in ``mpi_inf_3dhp.py``). There the head is ``headtop`` and the neck/nose
``head_extra``, one joint away from where :data:`SPIN_IN_HUMAN_DATA` (SPIN's files converted) puts them."""

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


def h36m17_as_spin_gt(points: np.ndarray) -> np.ndarray:
    """(24, D + 1) SPIN ground-truth joints holding (17, D) Human3.6M points at SPIN's slots with validity 1, the
    other 7 slots zero: the layout of ``S`` and ``part`` in SPIN's Human3.6M files (``global_idx``)."""
    full = np.zeros((NUM_GT, points.shape[1] + 1))
    full[gt_indices(H36M17_TO_SPIN_GT)] = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    return full


def human_data_indices() -> np.ndarray:
    """(49,) index of each SPIN joint among the 190 ``human_data`` keypoints, in SPIN's order."""
    return np.array([SPIN_IN_HUMAN_DATA[name][1] for name in SPIN_JOINT_NAMES])


def h36m17_human_data_indices() -> np.ndarray:
    """(17,) index of each Human3.6M joint among the 190 ``human_data`` keypoints, by mmhuman3d's names for them."""
    position = {name: index for name, index in SPIN_IN_HUMAN_DATA.values()}
    return np.array([position[name] for name in H36M17_IN_HUMAN_DATA])


def human_data_h36m_indices() -> np.ndarray:
    """(49,) index among the 190 ``human_data`` keypoints of each SPIN joint in files of mmhuman3d's own Human3.6M
    and MPI-INF-3DHP converters (:data:`H36M17_IN_HUMAN_DATA`), -1 for the 32 joints they do not hold."""
    indices = np.full(NUM_OPENPOSE + NUM_GT, -1)
    indices[spin_indices(H36M17_TO_SPIN_GT)] = h36m17_human_data_indices()
    return indices
