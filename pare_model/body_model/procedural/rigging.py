"""Rig the procedural rest shape: body parts, skinning weights and joint regressors.

- Every vertex first gets one of the 24 SMPL parts from the region it was built in and its
  position relative to the designed joints (a thigh ends at the knee's height, a forearm
  at the wrist, ...).
- Skinning weights are those one-hot parts diffused over the mesh graph, so neighbouring
  parts blend over a few centimetres around each joint, then pruned to the 4 largest.
- A joint regressor row is a convex combination of nearby vertices, found by non-negative
  least squares, that reproduces the designed joint position. Like SMPL's, the joints then
  follow the surface when the shape changes.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls
from scipy.spatial import cKDTree

from pare_model.body_model.procedural.anatomy import Region
from pare_model.body_model.procedural.design import FINGER_TIP, HEAD_TOP, TOE_TIP, design_joints
from pare_model.body_model.procedural.mesh import diffuse, neighbour_average
from pare_model.joint_sets import JOINT_SETS, SMPL_JOINT_NAMES, SMPL_PARENTS

J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
NUM_PARTS = 24
MAX_INFLUENCES = 4
DIFFUSION_STEPS = 12
REGRESSOR_SPREAD = 1.6
REGRESSOR_MARGIN = 0.01
REGRESSOR_MIN_RADIUS = 0.06
REGRESSOR_RIDGE = 1e-6
REGRESSOR_SUM_WEIGHT = 10.0
COLLAR_LIMIT_X = 0.165
NECK_BASE_Y = 0.255
YOKE_COLLAR_X = 0.075
LEG_TOP_Y = -0.395


def bone_segments() -> np.ndarray:
    """(24, 2, 3) start and end of the bone that carries each part, in the rest pose."""
    joints = design_joints()
    ends = joints.copy()
    for child, parent in enumerate(SMPL_PARENTS):
        if parent >= 0 and not (parent == J["pelvis"] or parent == J["spine3"]):
            ends[parent] = joints[child]
    ends[J["pelvis"]] = joints[J["spine1"]]
    ends[J["spine3"]] = joints[J["neck"]]
    ends[J["head"]] = HEAD_TOP
    for side in (1.0, -1.0):
        prefix = "left_" if side > 0 else "right_"
        ends[J[prefix + "foot"]] = np.multiply(TOE_TIP, (side, 1.0, 1.0))
        ends[J[prefix + "hand"]] = np.multiply(FINGER_TIP, (side, 1.0, 1.0))
    starts = joints.copy()
    starts[J["pelvis"]] = (0.0, LEG_TOP_Y, joints[J["pelvis"], 2])
    return np.stack([starts, ends], axis=1)


def _side_prefix(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, "left_", "right_")


def assign_parts(vertices: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(V,) SMPL part index of every vertex, from its construction region and position."""
    joints = design_joints()
    x, y, z = vertices.T
    side = _side_prefix(x)
    parts = np.full(len(vertices), -1, dtype=np.int64)

    def part_of(names: np.ndarray) -> np.ndarray:
        return np.array([J[n] for n in names], dtype=np.int64)

    torso = np.isin(regions, [Region.TORSO, Region.CROTCH_SEAM])
    spine_levels = joints[[J["spine1"], J["spine2"], J["spine3"]], 1]
    spine_parts = np.array([J["pelvis"], J["spine1"], J["spine2"], J["spine3"]])
    parts[torso] = spine_parts[np.searchsorted(spine_levels, y[torso])]

    seams = np.isin(regions, [Region.LEFT_SHOULDER_SEAM, Region.RIGHT_SHOULDER_SEAM])
    parts[seams] = part_of(np.char.add(side[seams], "collar"))

    legs = np.isin(regions, [Region.LEFT_LEG, Region.RIGHT_LEG])
    knee_y, ankle_y = joints[J["left_knee"], 1], joints[J["left_ankle"], 1]
    foot_z = joints[J["left_foot"], 2]
    leg_name = np.where(
        y > LEG_TOP_Y,
        "",
        np.where(
            y > knee_y, "hip", np.where(y > ankle_y - 0.015, "knee", np.where(z < foot_z - 0.01, "ankle", "foot"))
        ),
    )
    upper = legs & (leg_name == "")
    parts[upper] = J["pelvis"]
    lower = legs & ~upper
    parts[lower] = part_of(np.char.add(side[lower], leg_name[lower]))

    arms = np.isin(regions, [Region.LEFT_ARM, Region.RIGHT_ARM])
    limits = np.abs(joints[[J["left_elbow"], J["left_wrist"], J["left_hand"]], 0])
    arm_names = np.array(["shoulder", "elbow", "wrist", "hand"])[np.searchsorted(limits, np.abs(x))]
    arm_names = np.where(np.abs(x) < COLLAR_LIMIT_X, "collar", arm_names)
    parts[arms] = part_of(np.char.add(side[arms], arm_names[arms]))

    head = regions == Region.NECK_AND_HEAD
    head_name = np.where(
        y > joints[J["head"], 1],
        "head",
        np.where(y > NECK_BASE_Y, "neck", np.where(np.abs(x) > YOKE_COLLAR_X, "collar", "spine3")),
    )
    head_name = np.where(head_name == "collar", np.char.add(side, "collar"), head_name)
    parts[head] = part_of(head_name[head])
    assert (parts >= 0).all(), "a vertex was left without a body part"
    return parts


def skinning_weights(faces: np.ndarray, parts: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(V, 24) weights: one-hot parts diffused over the surface, pruned to 4 per vertex.

    ``mirror`` maps each vertex to its mirror image; the weights are averaged with their
    mirrored twins (left and right parts swapped) so the rig is exactly symmetric.
    """
    weights = diffuse(np.eye(NUM_PARTS)[parts], neighbour_average(faces, len(parts)), DIFFUSION_STEPS)
    weights = 0.5 * (weights + weights[mirror][:, list(JOINT_SETS["smpl24"].flip_perm)])
    # Keep the weights above the fifth largest. Where a left and a right part tie for fourth
    # place both go, so pruning never breaks the symmetry.
    fifth = np.sort(weights, axis=1)[:, NUM_PARTS - MAX_INFLUENCES - 1 : NUM_PARTS - MAX_INFLUENCES]
    weights = np.where(weights > fifth + 1e-12, weights, 0.0)
    return weights / weights.sum(axis=1, keepdims=True)


def regressor(vertices: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(K, V) rows of non-negative weights summing to 1 whose vertex mix lands on each target.

    Each row uses the vertices within ``REGRESSOR_SPREAD`` times the target's distance to the
    surface (at least ``REGRESSOR_MIN_RADIUS``), which surrounds a joint inside a limb on all
    sides and reaches around a curved surface for a target just below it (top of the head).
    """
    tree = cKDTree(vertices)
    rows = np.zeros((len(targets), len(vertices)))
    for k, target in enumerate(targets):
        nearest, _ = tree.query(target)
        radius = max(REGRESSOR_SPREAD * nearest + REGRESSOR_MARGIN, REGRESSOR_MIN_RADIUS)
        index = np.sort(tree.query_ball_point(target, radius))
        count = len(index)
        system = np.vstack(
            [
                vertices[index].T,
                np.full((1, count), REGRESSOR_SUM_WEIGHT),
                np.sqrt(REGRESSOR_RIDGE) * np.eye(count),
            ]
        )
        rhs = np.concatenate([target, [REGRESSOR_SUM_WEIGHT], np.zeros(count)])
        weights, _ = nnls(system, rhs, maxiter=50 * count)
        rows[k, index] = weights / weights.sum()
    return rows
