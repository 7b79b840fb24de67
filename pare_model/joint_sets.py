"""Joint sets of the body model: names, order, and left/right flip permutations.

The sets, in the order the data and the network use them:

- ``smpl24``: the 24 SMPL kinematic joints (smplx's names); also the 24 body parts.
- ``spin49``: SPIN/PARE's 49 joints, 25 OpenPose joints then 24 "ground-truth" joints. They
  are picked from smplx's 45 SMPL joints (24 kinematic + 21 mesh vertices) and the 9 joints
  of ``J_regressor_extra``.
- ``h36m17``: the 17 joints of ``J_regressor_h36m`` (pelvis, left leg, right leg, torso,
  head, left arm, right arm), used for evaluation.
- ``lsp14``: the 14 evaluation joints taken from ``h36m17`` (LSP order).

A flip permutation ``perm`` maps a horizontally mirrored set of joints back to the canonical
order: ``joints_of_mirrored_person = mirror(joints)[perm]``. It is derived from the names, so
a table cannot drift from its permutation.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)

SMPL_PARENTS: tuple[int, ...] = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    20,
    21,
)
"""Parent of each SMPL joint in the kinematic tree (-1 for the root)."""

SMPLX_VERTEX_JOINT_NAMES: tuple[str, ...] = (
    "nose",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
    "left_thumb",
    "left_index",
    "left_middle",
    "left_ring",
    "left_pinky",
    "right_thumb",
    "right_index",
    "right_middle",
    "right_ring",
    "right_pinky",
)
"""The 21 joints smplx appends to SMPL's 24, each one mesh vertex (smplx's ``vertex_ids``)."""

SMPLX_VERTEX_ID_KEYS: tuple[str, ...] = (
    "nose",
    "reye",
    "leye",
    "rear",
    "lear",
    "LBigToe",
    "LSmallToe",
    "LHeel",
    "RBigToe",
    "RSmallToe",
    "RHeel",
    "lthumb",
    "lindex",
    "lmiddle",
    "lring",
    "lpinky",
    "rthumb",
    "rindex",
    "rmiddle",
    "rring",
    "rpinky",
)
"""smplx's ``vertex_ids['smplh']`` keys, in the order of :data:`SMPLX_VERTEX_JOINT_NAMES`."""

SMPL45_JOINT_NAMES = SMPL_JOINT_NAMES + SMPLX_VERTEX_JOINT_NAMES

EXTRA_JOINT_NAMES: tuple[str, ...] = (
    "Right Hip",
    "Left Hip",
    "Neck (LSP)",
    "Top of Head (LSP)",
    "Pelvis (MPII)",
    "Thorax (MPII)",
    "Spine (H36M)",
    "Jaw (H36M)",
    "Head (H36M)",
)
"""The 9 rows of ``J_regressor_extra.npy``, named as in SPIN's joint table."""

SPIN_JOINT_NAMES: tuple[str, ...] = (
    # 25 OpenPose joints, in OpenPose's order
    "OP Nose",
    "OP Neck",
    "OP RShoulder",
    "OP RElbow",
    "OP RWrist",
    "OP LShoulder",
    "OP LElbow",
    "OP LWrist",
    "OP MidHip",
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
    "OP LBigToe",
    "OP LSmallToe",
    "OP LHeel",
    "OP RBigToe",
    "OP RSmallToe",
    "OP RHeel",
    # 24 ground-truth joints, the superset of the datasets' annotations
    "Right Ankle",
    "Right Knee",
    "Right Hip",
    "Left Hip",
    "Left Knee",
    "Left Ankle",
    "Right Wrist",
    "Right Elbow",
    "Right Shoulder",
    "Left Shoulder",
    "Left Elbow",
    "Left Wrist",
    "Neck (LSP)",
    "Top of Head (LSP)",
    "Pelvis (MPII)",
    "Thorax (MPII)",
    "Spine (H36M)",
    "Jaw (H36M)",
    "Head (H36M)",
    "Nose",
    "Left Eye",
    "Right Eye",
    "Left Ear",
    "Right Ear",
)

_SPIN_SOURCE: dict[str, str] = {
    "OP Nose": "nose",
    "OP Neck": "neck",
    "OP RShoulder": "right_shoulder",
    "OP RElbow": "right_elbow",
    "OP RWrist": "right_wrist",
    "OP LShoulder": "left_shoulder",
    "OP LElbow": "left_elbow",
    "OP LWrist": "left_wrist",
    "OP MidHip": "pelvis",
    "OP RHip": "right_hip",
    "OP RKnee": "right_knee",
    "OP RAnkle": "right_ankle",
    "OP LHip": "left_hip",
    "OP LKnee": "left_knee",
    "OP LAnkle": "left_ankle",
    "OP REye": "right_eye",
    "OP LEye": "left_eye",
    "OP REar": "right_ear",
    "OP LEar": "left_ear",
    "OP LBigToe": "left_big_toe",
    "OP LSmallToe": "left_small_toe",
    "OP LHeel": "left_heel",
    "OP RBigToe": "right_big_toe",
    "OP RSmallToe": "right_small_toe",
    "OP RHeel": "right_heel",
    "Right Ankle": "right_ankle",
    "Right Knee": "right_knee",
    "Left Knee": "left_knee",
    "Left Ankle": "left_ankle",
    "Right Wrist": "right_wrist",
    "Right Elbow": "right_elbow",
    "Right Shoulder": "right_shoulder",
    "Left Shoulder": "left_shoulder",
    "Left Elbow": "left_elbow",
    "Left Wrist": "left_wrist",
    "Nose": "nose",
    "Left Eye": "left_eye",
    "Right Eye": "right_eye",
    "Left Ear": "left_ear",
    "Right Ear": "right_ear",
}
"""SPIN joints taken from smplx's 45 joints; the others come from ``J_regressor_extra``."""

H36M_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_hip",
    "right_knee",
    "right_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)
"""Rows of ``J_regressor_h36m.npy`` in SPIN/PARE's order (left side first)."""

LSP14_JOINT_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
)

H36M_TO_LSP14: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
"""Indices into ``h36m17`` of the 14 evaluation joints (the paper's protocol)."""

LSP14_IN_SPIN_GT: tuple[str, ...] = tuple(SPIN_JOINT_NAMES[25:37]) + ("Neck (LSP)", "Head (H36M)")
"""The SPIN ground-truth joint each of the 14 evaluation joints is read from in a dataset's 24 3D joints (``S``).

SPIN's and PARE's ``J24_TO_J14``: slots 0-12, then slot 18 "Head (H36M)", where Human3.6M's head joint sits
(the joint the prediction's ``H36M_TO_LSP14[13]`` is); slot 13 "Top of Head (LSP)" is empty in Human3.6M and
MPI-INF-3DHP files."""

MPI_INF_3DHP17_IN_SPIN_GT: tuple[str, ...] = LSP14_IN_SPIN_GT + ("Pelvis (MPII)", "Spine (H36M)", "Jaw (H36M)")
"""SPIN's and PARE's ``J24_TO_J17``: MPI-INF-3DHP's 17 evaluated joints among the 24 (the 14, then pelvis, spine
and Human3.6M's neck/nose slot, where SPIN puts 3DHP's head)."""

PELVIS_IN_SPIN_GT = "Pelvis (MPII)"
"""The slot (14) of the 24 3D joints that holds Human3.6M's and MPI-INF-3DHP's root; root-centred files have it at 0."""


def spin_gt_indices(names: tuple[str, ...]) -> tuple[int, ...]:
    """Indices of the named joints among SPIN's 24 ground-truth joints (the slots of ``S``)."""
    ground_truth = SPIN_JOINT_NAMES[25:]
    return tuple(ground_truth.index(name) for name in names)


GT24_TO_LSP14: tuple[int, ...] = spin_gt_indices(LSP14_IN_SPIN_GT)
"""``J24_TO_J14`` = (0, 1, ..., 12, 18)."""
GT24_TO_MPI_INF_3DHP17: tuple[int, ...] = spin_gt_indices(MPI_INF_3DHP17_IN_SPIN_GT)
"""``J24_TO_J17`` = (0, 1, ..., 12, 18, 14, 16, 17)."""
GT24_PELVIS: int = spin_gt_indices((PELVIS_IN_SPIN_GT,))[0]

_SIDE_RULES = (
    (re.compile(r"^left_"), "right_"),
    (re.compile(r"^right_"), "left_"),
    (re.compile(r"^Left "), "Right "),
    (re.compile(r"^Right "), "Left "),
    (re.compile(r"^OP L(?=[A-Z])"), "OP R"),
    (re.compile(r"^OP R(?=[A-Z])"), "OP L"),
)


def mirror_joint_name(name: str) -> str:
    """The name of the joint on the other side of the body; central joints keep their name."""
    for pattern, replacement in _SIDE_RULES:
        if pattern.search(name):
            return pattern.sub(replacement, name, count=1)
    return name


@functools.cache
def flip_permutation(names: tuple[str, ...]) -> tuple[int, ...]:
    """Permutation that swaps every left joint with its right counterpart (computed once per set of names)."""
    index = {name: i for i, name in enumerate(names)}
    missing = [name for name in names if mirror_joint_name(name) not in index]
    if missing:
        raise ValueError(f"joints without a mirrored counterpart in the set: {missing}")
    return tuple(index[mirror_joint_name(name)] for name in names)


@dataclass(frozen=True)
class JointSet:
    """A named, ordered joint set and its flip permutation."""

    name: str
    names: tuple[str, ...]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def flip_perm(self) -> tuple[int, ...]:
        return flip_permutation(self.names)

    def index(self, joint_name: str) -> int:
        try:
            return self.names.index(joint_name)
        except ValueError:
            raise KeyError(f"{joint_name!r} is not a joint of {self.name}; its joints are {list(self.names)}") from None


JOINT_SETS: dict[str, JointSet] = {
    js.name: js
    for js in (
        JointSet("smpl24", SMPL_JOINT_NAMES),
        JointSet("spin49", SPIN_JOINT_NAMES),
        JointSet("h36m17", H36M_JOINT_NAMES),
        JointSet("lsp14", LSP14_JOINT_NAMES),
    )
}


def get_joint_set(name: str) -> JointSet:
    """Look a joint set up by name; the error lists the valid names."""
    try:
        return JOINT_SETS[name]
    except KeyError:
        raise KeyError(f"unknown joint set {name!r}; valid names: {sorted(JOINT_SETS)}") from None


def spin_joint_map() -> np.ndarray:
    """(49,) indices of the SPIN joints in ``concat(smplx 45 joints, extra 9 joints)``."""
    sources = SMPL45_JOINT_NAMES + EXTRA_JOINT_NAMES
    position = {name: i for i, name in enumerate(sources)}
    return np.array([position[_SPIN_SOURCE.get(name, name)] for name in SPIN_JOINT_NAMES])


_SMPL_POSE_FLIP_PERM = (3 * np.array(JOINT_SETS["smpl24"].flip_perm)[:, None] + np.arange(3)[None, :]).reshape(-1)
"""(72,) permutation of an axis-angle SMPL pose for a horizontal flip; after permuting, the y and z components of
every joint are negated (``pose[..., 1::3]`` and ``pose[..., 2::3]``) to mirror the rotations themselves."""
_SMPL_POSE_FLIP_PERM.flags.writeable = False


def flip_smpl_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror (..., 72) axis-angle SMPL poses left-right (the person seen in a mirror)."""
    flipped = pose[..., _SMPL_POSE_FLIP_PERM]
    flipped[..., 1::3] *= -1
    flipped[..., 2::3] *= -1
    return flipped
