"""The 24 body parts of the part-segmentation labels and their conventions.

Part ``k`` (0..23) is the region that SMPL joint ``k`` moves; in label maps it is stored as
``k + 1`` and 0 is the background, so a label map has 25 classes like PARE's 2D part branch.
A face takes the smallest part index of its three vertices, PARE's rule.
"""

from __future__ import annotations

import numpy as np

from pare_model.joint_sets import JOINT_SETS, SMPL_JOINT_NAMES

PART_NAMES: tuple[str, ...] = SMPL_JOINT_NAMES
NUM_PARTS = len(PART_NAMES)
NUM_PART_LABELS = NUM_PARTS + 1
BACKGROUND_LABEL = 0


def face_parts(faces: np.ndarray, vertex_parts: np.ndarray) -> np.ndarray:
    """(F,) part index of each face: the minimum over its vertices (PARE's rule)."""
    return np.asarray(vertex_parts)[np.asarray(faces)].min(axis=1)


def label_flip_perm() -> np.ndarray:
    """(25,) permutation of label ids for a horizontal flip: left and right parts swap."""
    return np.concatenate([[BACKGROUND_LABEL], 1 + np.array(JOINT_SETS["smpl24"].flip_perm)])
