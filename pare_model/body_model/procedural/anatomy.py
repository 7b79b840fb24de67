"""The procedural body's rest shape: a closed, genus-0 mesh of exactly SMPL's size.

The surface is one piece:

- the torso is a tube of ``TORSO_RING`` vertices from the crotch to armpit height;
- at the bottom a seam under the crotch splits the last torso ring into two leg loops;
- at the top two seams over the shoulders split it into two arm loops and a neck loop;
- legs (ending in feet), arms (ending in mitten hands) and the neck and head grow out of
  those loops and close with a pole.

The ring counts are fixed, so every seed gives 6890 vertices and 13776 faces (a closed
genus-0 triangle mesh always has F = 2 V - 4). The proportions are in ``design.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from pare_model.body_model.procedural.design import NECK_AND_HEAD, TORSO, TORSO_RING, arm, leg
from pare_model.body_model.procedural.mesh import (
    MeshBuilder,
    orient_faces,
    taubin_smooth,
    topology_report,
)
from pare_model.body_model.procedural.symmetry import mirror_map, symmetrize
from pare_model.body_model.procedural.tubes import grow_from_loop, sweep

NUM_VERTICES = 6890
SHOULDER_SEAM_START = 5
"""Torso top-ring index where the left shoulder seam starts (front); mirrored on the right."""
NUM_SHOULDER_SEAM = 9
NUM_CROTCH_SEAM = 7
SMOOTHING_ITERATIONS = 12


class Region(IntEnum):
    """Which construction step made a vertex; rigging uses it to assign body parts."""

    TORSO = 0
    CROTCH_SEAM = 1
    LEFT_SHOULDER_SEAM = 2
    RIGHT_SHOULDER_SEAM = 3
    LEFT_LEG = 4
    RIGHT_LEG = 5
    LEFT_ARM = 6
    RIGHT_ARM = 7
    NECK_AND_HEAD = 8


NOSE_HEIGHT = 0.385
NOSE_LENGTH = 0.016


@dataclass(frozen=True)
class RestMesh:
    """The rest-pose surface before rigging."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64, counter-clockwise seen from outside
    regions: np.ndarray  # (V,) Region values


def _seam(start: np.ndarray, end: np.ndarray, count: int, lift: np.ndarray, bulge: np.ndarray) -> np.ndarray:
    """``count`` points on an arch from ``start`` to ``end`` (both excluded)."""
    t = np.arange(1, count + 1) / (count + 1)
    arch = np.sin(np.pi * t)[:, None]
    return start + t[:, None] * (end - start) + arch * (lift + bulge)


def _torso_with_junctions(builder: MeshBuilder) -> dict[str, np.ndarray]:
    """Torso rings plus the crotch and shoulder seams; returns the five child loops.

    Right-side loops list the mirror images of the left-side loop's vertices in the same
    order, so the right limbs come out as exact mirror images of the left ones.
    """
    builder.region = Region.TORSO
    # Index 0 at the front (+z), increasing towards the left side (+x).
    rings = sweep(builder, TORSO, start_angle=-np.pi / 2, direction=1.0)
    bottom, top = rings[0], rings[-1]
    half, a = TORSO_RING // 2, SHOULDER_SEAM_START
    mirror_ring = (TORSO_RING - np.arange(TORSO_RING)) % TORSO_RING

    builder.region = Region.CROTCH_SEAM
    front, back = builder.positions(bottom[[0, half]])
    crotch = builder.add(_seam(front, back, NUM_CROTCH_SEAM, np.array([0.0, -0.04, 0.0]), np.zeros(3)))
    left_leg = np.concatenate([bottom[: half + 1], crotch[::-1]])
    right_leg = np.concatenate([bottom[mirror_ring[: half + 1]], crotch[::-1]])

    seams = {}
    for side, region, front_index in (
        (1.0, Region.LEFT_SHOULDER_SEAM, a),
        (-1.0, Region.RIGHT_SHOULDER_SEAM, TORSO_RING - a),
    ):
        builder.region = region
        back_index = mirror_ring[(front_index + half) % TORSO_RING]
        start, end = builder.positions(top[[front_index, back_index]])
        seams[side] = builder.add(
            _seam(start, end, NUM_SHOULDER_SEAM, np.array([0.0, 0.125, 0.0]), np.array([0.012 * side, 0.0, 0.0]))
        )
    left_arm = np.concatenate([top[a : half - a + 1], seams[1.0][::-1]])
    right_arm = np.concatenate([top[mirror_ring[a : half - a + 1]], seams[-1.0][::-1]])
    neck = np.concatenate(
        [top[: a + 1], seams[1.0], top[half - a : half + a + 1], seams[-1.0][::-1], top[TORSO_RING - a :]]
    )
    return {"left_leg": left_leg, "right_leg": right_leg, "left_arm": left_arm, "right_arm": right_arm, "neck": neck}


def _add_nose(vertices: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Push the middle of the face forwards into a nose, so the front of the head is readable."""
    x, y, z = vertices.T
    face = (regions == Region.NECK_AND_HEAD) & (z > 0)
    bump = np.exp(-0.5 * ((x / 0.011) ** 2 + ((y - NOSE_HEIGHT) / 0.017) ** 2))
    moved = vertices.copy()
    moved[face, 2] += NOSE_LENGTH * bump[face]
    return moved


def build_rest_mesh() -> RestMesh:
    """Assemble, orient and smooth the rest-pose surface; checks its topology."""
    builder = MeshBuilder()
    loops = _torso_with_junctions(builder)
    for region, loop, spec in (
        (Region.LEFT_LEG, loops["left_leg"], leg(1.0)),
        (Region.RIGHT_LEG, loops["right_leg"], leg(-1.0)),
        (Region.LEFT_ARM, loops["left_arm"], arm(1.0)),
        (Region.RIGHT_ARM, loops["right_arm"], arm(-1.0)),
    ):
        builder.region = region
        grow_from_loop(builder, loop, spec, num_transition=2)
    builder.region = Region.NECK_AND_HEAD
    grow_from_loop(builder, loops["neck"], NECK_AND_HEAD, num_transition=4)

    vertices, regions = builder.vertices(), builder.regions()
    faces = orient_faces(vertices, builder.faces())
    report = topology_report(faces, len(vertices))
    if not report["closed_oriented_genus0"] or len(vertices) != NUM_VERTICES:
        raise AssertionError(f"procedural body mesh is malformed: {report}")
    mirror = mirror_map(vertices)
    vertices = taubin_smooth(vertices, faces, SMOOTHING_ITERATIONS)
    # The triangulation is not mirror-symmetric everywhere, so smoothing drifts a little;
    # averaging each vertex with its mirrored twin restores exact symmetry.
    vertices = symmetrize(vertices, mirror)
    return RestMesh(vertices=_add_nose(vertices, regions), faces=faces, regions=regions)
