"""Z-buffer triangle rasterizer on one CPU core: which face is seen at each pixel centre, and how far.

Rules (hand-computed cases in ``tests/test_render.py``; agreement with plain per-pixel ray
casting on posed bodies in ``tests/test_render_reference.py``):

- Coverage is sampled at pixel centres ``(j + 0.5, i + 0.5)`` (see :mod:`.cameras`).
- Vertices are snapped to 1/4096 pixel and edge functions are exact 64-bit integers. A pixel
  centre exactly on an edge belongs to one triangle only, the one that would cover the centre
  nudged right by an infinitesimal and down by a second-order one (the equivalent of
  Direct3D/OpenGL's top-left rule): a closed surface covers every centre once, with no gaps.
- Nearest surface wins: depth is tested on ``1/z``, interpolated linearly in screen space
  (perspective-correct). Equal depths keep the face drawn first.
- Near plane: a triangle with any vertex at ``z <= near`` (default 0.01, in the units of
  ``z``), or further than 2^17 (131,072) pixels from the origin, or with a NaN, is skipped
  whole rather than clipped. Bodies in front of a camera never come close to this.
- Winding: a face is front-facing when it runs counter-clockwise as seen on screen (x right,
  y down), i.e. its signed area ``(p1 - p0) x (p2 - p0)`` is negative; the body models'
  outward-oriented faces do this under any camera with positive focal length and a
  non-mirroring affine. Back-face culling (``cull_backfaces=True``) is valid only for a
  closed mesh seen from outside; it changes nothing visible then and saves half the work. A
  mirroring affine (negative determinant) reverses the winding: pass ``faces[:, ::-1]``.

The kernels are compiled on first use, not at import (see :mod:`._kernels` for the cache).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

NEAR_PLANE = 0.01
"""Default near plane in the units of the screen ``z`` (metres for body models)."""


@dataclass(frozen=True)
class Fragments:
    """What a rasterised image holds at each pixel centre.

    Attributes:
        face_index: (H, W) int32 index of the visible face, -1 for background.
        depth: (H, W) float32 camera depth of the visible surface, +inf for background.
    """

    face_index: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: pixels that show a face."""
        return self.face_index >= 0


def check_inputs(
    screen: np.ndarray, faces: np.ndarray, height: int, width: int, near: float
) -> tuple[np.ndarray, np.ndarray]:
    """Shapes and dtypes; face indices are range-checked inside the kernel, where it costs nothing."""
    screen = np.ascontiguousarray(screen, dtype=np.float64)
    faces = np.asarray(faces)
    if screen.ndim != 2 or screen.shape[1] != 3:
        raise ValueError(f"screen must have shape (V, 3), got {screen.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {faces.dtype} {faces.shape}")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height} x {width}")
    if not near > 0:
        raise ValueError(f"near must be positive, got {near}")
    return screen, faces


_scratch = threading.local()
_MAX_CACHED_SIZES = 4


def scratch_depth(height: int, width: int) -> np.ndarray:
    """This thread's reusable (H, W) float64 1/z buffer; the kernel resets it.

    A fresh 400 kB array on every call costs page faults that can take longer than
    rendering a body.
    """
    cache = getattr(_scratch, "buffers", None)
    if cache is None:
        cache = _scratch.buffers = {}
    key = (int(height), int(width))
    if key not in cache:
        if len(cache) >= _MAX_CACHED_SIZES:
            cache.pop(next(iter(cache)))
        cache[key] = np.empty(key, np.float64)
    return cache[key]


def rasterize(
    screen: np.ndarray,
    faces: np.ndarray,
    height: int,
    width: int,
    cull_backfaces: bool = True,
    near: float = NEAR_PLANE,
) -> Fragments:
    """Rasterise a mesh given in screen coordinates.

    Args:
        screen: (V, 3) ``x, y`` in output pixels and ``z`` camera depth (from :mod:`.cameras`).
        faces: (F, 3) vertex indices.
        height, width: output size in pixels.
        cull_backfaces: skip faces that point away from the camera; only for closed meshes.
        near: triangles with a vertex at ``z <= near`` are skipped.
    """
    from preprocessing.render import _kernels

    screen, faces = check_inputs(screen, faces, height, width, near)
    face_index = np.full((int(height), int(width)), -1, np.int32)
    inverse_depth = scratch_depth(height, width)
    face_ids = np.arange(len(faces), dtype=np.int32)
    _kernels.zbuffer(screen, faces, face_ids, bool(cull_backfaces), float(near), face_index, inverse_depth)
    return Fragments(face_index=face_index, depth=_kernels.depth_from_inverse(inverse_depth))
