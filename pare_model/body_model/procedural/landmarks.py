"""Where the procedural body's non-kinematic joints and landmark vertices are.

- Regressor targets for ``J_regressor_extra`` (SPIN's 9 extra joints) and
  ``J_regressor_h36m`` (17 Human3.6M joints): points inside the body, defined for the left
  side and the centre line; right-side points are mirror images.
- Landmark vertices for smplx's 21 vertex joints (nose, eyes, ears, toes, heels, finger
  tips). smplx picks these by fixed SMPL vertex ids, so the procedural mesh is renumbered to
  put each landmark at the id smplx uses; smplx's joints are then right for it, unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from pare_model.body_model.procedural.anatomy import Region
from pare_model.body_model.procedural.symmetry import MIRROR_X
from pare_model.joint_sets import EXTRA_JOINT_NAMES, H36M_JOINT_NAMES, SMPLX_VERTEX_ID_KEYS, SMPLX_VERTEX_JOINT_NAMES

_EXTRA_TARGETS = {
    "Left Hip": (0.090, -0.360, -0.005),
    "Neck (LSP)": (0.0, 0.250, -0.012),
    "Top of Head (LSP)": (0.0, 0.500, 0.0),
    "Pelvis (MPII)": (0.0, -0.330, -0.005),
    "Thorax (MPII)": (0.0, 0.215, -0.012),
    "Spine (H36M)": (0.0, 0.0, -0.012),
    "Jaw (H36M)": (0.0, 0.315, 0.060),
    "Head (H36M)": (0.0, 0.420, 0.015),
}
_H36M_TARGETS = {
    "pelvis": (0.0, -0.300, -0.005),
    "left_hip": (0.100, -0.330, -0.005),
    "left_knee": (0.095, -0.700, 0.006),
    "left_ankle": (0.090, -1.090, -0.020),
    "spine": (0.0, -0.020, -0.012),
    "thorax": (0.0, 0.215, -0.012),
    "neck_nose": (0.0, 0.360, 0.070),
    "head": (0.0, 0.455, 0.010),
    "left_shoulder": (0.180, 0.205, -0.010),
    "left_elbow": (0.430, 0.205, -0.020),
    "left_wrist": (0.675, 0.205, -0.010),
}
_VERTEX_TARGETS = {
    "left_eye": (Region.NECK_AND_HEAD, (0.033, 0.410, 0.140)),
    "left_ear": (Region.NECK_AND_HEAD, (0.095, 0.395, 0.005)),
    "left_big_toe": (Region.LEFT_LEG, (0.072, -1.150, 0.200)),
    "left_small_toe": (Region.LEFT_LEG, (0.140, -1.150, 0.160)),
    "left_heel": (Region.LEFT_LEG, (0.090, -1.185, -0.080)),
    "left_thumb": (Region.LEFT_ARM, (0.740, 0.200, 0.070)),
    "left_index": (Region.LEFT_ARM, (0.870, 0.195, 0.040)),
    "left_middle": (Region.LEFT_ARM, (0.900, 0.195, -0.005)),
    "left_ring": (Region.LEFT_ARM, (0.870, 0.195, -0.040)),
    "left_pinky": (Region.LEFT_ARM, (0.830, 0.195, -0.065)),
}


def _mirrored_targets(table: dict, names: tuple[str, ...]) -> np.ndarray:
    """(len(names), 3) points, looking right-side names up by their left twin."""
    points = []
    for name in names:
        for left, right in (("left_", "right_"), ("Left ", "Right ")):
            if name.startswith(right):
                points.append(np.multiply(table[left + name[len(right) :]], MIRROR_X))
                break
        else:
            points.append(table[name])
    return np.array(points, dtype=np.float64)


def extra_joint_targets() -> np.ndarray:
    """(9, 3) rest positions of the rows of ``J_regressor_extra``."""
    return _mirrored_targets(_EXTRA_TARGETS, EXTRA_JOINT_NAMES)


def h36m_joint_targets() -> np.ndarray:
    """(17, 3) rest positions of the rows of ``J_regressor_h36m``."""
    return _mirrored_targets(_H36M_TARGETS, H36M_JOINT_NAMES)


def landmark_vertices(vertices: np.ndarray, regions: np.ndarray, mirror: np.ndarray) -> dict[str, int]:
    """Vertex index of each of smplx's 21 vertex joints (keys as smplx's ``vertex_ids``)."""
    found: dict[str, int] = {}
    head = np.flatnonzero((regions == Region.NECK_AND_HEAD) & (np.abs(vertices[:, 0]) < 1e-9))
    found["nose"] = int(head[np.argmax(vertices[head, 2])])
    for name, (region, target) in _VERTEX_TARGETS.items():
        candidates = np.flatnonzero(regions == region)
        _, nearest = cKDTree(vertices[candidates]).query(target)
        found[name] = int(candidates[nearest])
        found["right_" + name[len("left_") :]] = int(mirror[found[name]])
    by_key = dict(zip(SMPLX_VERTEX_JOINT_NAMES, SMPLX_VERTEX_ID_KEYS, strict=True))
    landmarks = {by_key[name]: index for name, index in found.items()}
    assert len(set(landmarks.values())) == len(landmarks), "two landmarks share a vertex"
    return landmarks


def renumbering(num_vertices: int, landmarks: dict[str, int], target_ids: dict[str, int]) -> np.ndarray:
    """(V,) old vertex index for every new index: landmarks move to ``target_ids``.

    The other vertices keep their relative order in the remaining slots.
    """
    order = np.full(num_vertices, -1, dtype=np.int64)
    for key, vertex in landmarks.items():
        order[target_ids[key]] = vertex
    moved = np.zeros(num_vertices, dtype=bool)
    moved[list(landmarks.values())] = True
    order[order < 0] = np.flatnonzero(~moved)
    return order
