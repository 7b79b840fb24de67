"""Part-label maps: 0 for background, ``part + 1`` (1..24) where a body face is seen.

A face's part is chosen by PARE's rule, the smallest part index of its three vertices
(:func:`pare_model.body_model.parts.face_parts`); this module takes that (F,) array as given.
"""

from __future__ import annotations

import numpy as np

from preprocessing.render.rasterize import NEAR_PLANE, Fragments, check_inputs, scratch_depth


def _check_parts(face_parts: np.ndarray, num_faces: int) -> np.ndarray:
    face_parts = np.asarray(face_parts)
    if face_parts.shape != (num_faces,) or face_parts.dtype.kind not in "iu":
        raise ValueError(
            f"face_parts must be integers of shape ({num_faces},), got {face_parts.dtype} {face_parts.shape}"
        )
    return face_parts


def labels_from_face_index(face_index: np.ndarray, face_parts: np.ndarray) -> np.ndarray:
    """(H, W) face index (-1 background) and (F,) parts 0..23 -> (H, W) uint8 labels."""
    from preprocessing.render import _kernels

    face_parts = _check_parts(face_parts, len(face_parts))
    face_index = np.asarray(face_index)
    if face_index.size and face_index.max() >= len(face_parts):
        raise ValueError(f"face index {face_index.max()} is out of range for {len(face_parts)} face parts")
    return _kernels.lookup_labels(face_index, face_parts)


def part_labels(fragments: Fragments, face_parts: np.ndarray) -> np.ndarray:
    """(H, W) uint8 label map of rasterised ``fragments``: 0 background, part + 1 on the body."""
    return labels_from_face_index(fragments.face_index, face_parts)


def render_part_labels(
    screen: np.ndarray,
    faces: np.ndarray,
    face_parts: np.ndarray,
    height: int,
    width: int,
    cull_backfaces: bool = True,
    near: float = NEAR_PLANE,
) -> np.ndarray:
    """Rasterise a closed body mesh and return its (H, W) uint8 part-label map.

    Args:
        screen: (V, 3) screen points from :mod:`.cameras`.
        faces: (F, 3) vertex indices.
        face_parts: (F,) part 0..23 of each face.
    """
    from preprocessing.render import _kernels

    screen, faces = check_inputs(screen, faces, height, width, near)
    face_parts = _check_parts(face_parts, len(faces))
    inverse_depth = scratch_depth(height, width)
    return _kernels.render_labels(screen, faces, face_parts, bool(cull_backfaces), float(near), inverse_depth)
