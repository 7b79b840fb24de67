"""Left-right mirror symmetry of the procedural body (mirror plane x = 0)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

MIRROR_X = np.array([-1.0, 1.0, 1.0])


def symmetrize(field: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Average a per-vertex (V, 3, ...) vector field with its mirror image (x negated)."""
    flip = MIRROR_X.reshape((1, 3) + (1,) * (field.ndim - 2))
    return 0.5 * (field + field[mirror] * flip)


def mirror_map(vertices: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """(V,) index of each vertex's mirror image across the x = 0 plane."""
    distance, index = cKDTree(vertices).query(vertices * MIRROR_X)
    if distance.max() > tolerance:
        raise AssertionError(f"mesh is not mirror-symmetric (worst vertex {distance.max():.2e} m off)")
    return index
