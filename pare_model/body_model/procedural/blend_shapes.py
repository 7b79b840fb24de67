"""Shape and pose blend shapes of the procedural body, in SMPL's layout.

Shape (``shapedirs``, (V, 3, 10)): each component is a hand-made displacement field of a
plausible way people differ, with one unit about one standard deviation:

====  ==========================  =================================================
beta  what it changes             one unit
====  ==========================  =================================================
0     stature (uniform scale)     about 7.5 cm of height
1     girth (limbs and torso)     8 % wider around each bone, 10 % around the torso
2     leg length                  3.5 cm at the feet
3     arm length                  3 cm at the finger tips
4     shoulder width              1.8 cm per side
5     hip width                   1.4 cm per side
6     torso length                3 cm, everything above the waist moves up
7     belly                       2.5 cm forwards
8     head size                   7 % larger head
9     muscularity                 thicker limbs, slimmer waist
====  ==========================  =================================================

Pose (``posedirs``, (V, 3, 207)): a simple isotropic corrective per joint that pushes the
skin around a bending joint outwards by ``POSE_BULGE * (1 - cos angle)``, which offsets the
volume loss of linear blend skinning. It uses the diagonal of ``R - I`` only, whose sum is
``2 (cos angle - 1)``: exactly linear in SMPL's pose feature, as posedirs must be.
"""

from __future__ import annotations

import numpy as np

from pare_model.body_model.procedural.design import design_joints
from pare_model.body_model.procedural.mesh import diffuse, neighbour_average
from pare_model.body_model.procedural.rigging import J, bone_segments
from pare_model.body_model.procedural.symmetry import symmetrize
from pare_model.joint_sets import SMPL_PARENTS

NUM_BETAS = 10
NUM_POSE_BASIS = 207
POSE_BULGE = 0.012
SHAPE_SMOOTHING_STEPS = 30
TORSO_PARTS = [J["pelvis"], J["spine1"], J["spine2"], J["spine3"]]
LIMB_PARTS = [j for j in range(24) if j not in TORSO_PARTS + [J["neck"], J["head"]]]


def smoothstep(value: np.ndarray, low: float, high: float) -> np.ndarray:
    t = np.clip((value - low) / (high - low), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def radial_offsets(vertices: np.ndarray) -> np.ndarray:
    """(V, 24, 3) offset of each vertex from the nearest point of each part's bone."""
    segments = bone_segments()
    start, end = segments[:, 0], segments[:, 1]
    axis = end - start
    t = np.einsum("vjk,jk->vj", vertices[:, None, :] - start[None], axis) / (axis * axis).sum(-1)
    closest = start[None] + np.clip(t, 0.0, 1.0)[..., None] * axis[None]
    return vertices[:, None, :] - closest


def shape_directions(vertices: np.ndarray, faces: np.ndarray, weights: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(V, 3, 10) shape blend shapes for the rest mesh and its skinning weights.

    The fields are made piecewise (per part, per region), then diffused over the surface so
    that neighbouring limbs growing into each other (inner thighs, armpits) blend instead of
    folding the skin. ``mirror`` maps each vertex to its twin; the result is made exactly
    symmetric.
    """
    joints = design_joints()
    x, y, z = vertices.T
    side = np.sign(x)
    radial = radial_offsets(vertices)  # (V, 24, 3)
    torso_w = weights[:, TORSO_PARTS].sum(1)
    limb_w = weights[:, LIMB_PARTS].sum(1)
    directions = np.zeros((len(vertices), 3, NUM_BETAS))

    directions[:, :, 0] = 0.045 * (vertices - np.array([0.0, -0.2, 0.0]))
    girth = np.full(24, 0.08)
    girth[TORSO_PARTS] = 0.10
    directions[:, :, 1] = np.einsum("vj,vjk->vk", weights * girth, radial)

    hip_y, floor_y = joints[J["left_hip"], 1], vertices[:, 1].min()
    directions[:, 1, 2] = -0.035 * np.clip((hip_y - y) / (hip_y - floor_y), 0.0, 1.0)
    shoulder_x, tip_x = joints[J["left_shoulder"], 0], np.abs(x).max()
    directions[:, 0, 3] = side * 0.03 * np.clip((np.abs(x) - shoulder_x) / (tip_x - shoulder_x), 0.0, 1.0)
    directions[:, 0, 4] = side * 0.018 * smoothstep(y, -0.05, 0.15) * smoothstep(np.abs(x), 0.03, 0.16)
    directions[:, 0, 5] = side * 0.014 * (1 - smoothstep(y, -0.25, -0.05)) * smoothstep(np.abs(x), 0.0, 0.12)
    directions[:, 1, 6] = 0.03 * smoothstep(y, -0.30, 0.25)
    belly = np.clip(z / 0.1, 0.0, 1.0) * np.exp(-(((y + 0.12) / 0.12) ** 2)) * torso_w
    directions[:, 2, 7] = 0.025 * belly
    head_center = np.array([0.0, 0.42, 0.01])
    directions[:, :, 8] = 0.07 * weights[:, [J["head"]]] * (vertices - head_center)
    muscle = np.where(np.isin(np.arange(24), LIMB_PARTS), 0.06, 0.0)
    muscle[[J["pelvis"], J["spine1"]]] = -0.04
    directions[:, :, 9] = np.einsum("vj,vjk->vk", weights * muscle, radial) * (limb_w + torso_w)[:, None]
    smoothed = diffuse(directions, neighbour_average(faces, len(vertices)), SHAPE_SMOOTHING_STEPS)
    return symmetrize(smoothed, mirror)


def pose_directions(normals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(V, 3, 207) pose blend shapes: a bulge along the normal around every bending joint."""
    directions = np.zeros((len(normals), 3, NUM_POSE_BASIS))
    for joint in range(1, 24):
        parent = SMPL_PARENTS[joint]
        mask = np.clip(4.0 * weights[:, joint] * weights[:, parent], 0.0, 1.0)
        # offset = POSE_BULGE (1 - cos angle) = -POSE_BULGE / 2 * trace(R - I)
        column = -0.5 * POSE_BULGE * mask[:, None] * normals
        for diagonal in (0, 4, 8):
            directions[:, :, 9 * (joint - 1) + diagonal] = column
    return directions
