"""Numba kernels of the rasterizer; imported on first use so that importing the package stays cheap.

Compiled lazily on the first call and cached on disk (``cache=True``): by default next to
this file in ``__pycache__``; inside Ray workers set ``NUMBA_CACHE_DIR`` to a writable shared
folder so that each worker does not recompile (several seconds per kernel), and
``NUMBA_NUM_THREADS=1``.
All kernels are single-threaded: Ray already runs one task per core.

Exactness: vertex positions are snapped to a fixed-point grid of 1/4096 pixel and the edge
functions are evaluated in 64-bit integers, so they are exact and a shared edge is decided
identically by both of its triangles (see :mod:`preprocessing.render.rasterize`).
Speed: the per-triangle set-up dominates (most triangles of a body at 224 px cover zero or
one pixel centre), so it exits early and has a one-pixel fast path. The caller passes the
buffers: large fresh arrays per call cost page faults that are slower than the rendering.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SUBPIXEL_BITS = 12
SUBPIXEL = 1 << SUBPIXEL_BITS
HALF = SUBPIXEL // 2  # a pixel centre lies HALF subpixels from its pixel's corner
MAX_COORDINATE = float(1 << 17)
"""Pixels from the origin beyond which a vertex drops its triangles: 2^17 px x 2^12 subpixels keeps every
edge-function product below 2^61, so int64 arithmetic stays exact."""


@njit(cache=True)
def _snap(screen, near):
    """(V, 3) screen points -> (V, 2) int64 fixed-point x, y and (V,) 1/z, 0 for unusable vertices."""
    num = screen.shape[0]
    xy = np.zeros((num, 2), np.int64)
    inverse_z = np.zeros(num, np.float64)
    for v in range(num):
        x, y, z = screen[v, 0], screen[v, 1], screen[v, 2]
        # Written so that NaN fails every comparison and leaves the vertex unusable.
        if z > near and abs(x) < MAX_COORDINATE and abs(y) < MAX_COORDINATE:
            xy[v, 0] = np.int64(np.floor(x * SUBPIXEL + 0.5))
            xy[v, 1] = np.int64(np.floor(y * SUBPIXEL + 0.5))
            inverse_z[v] = 1.0 / z
    return xy, inverse_z


@njit(cache=True, inline="always")
def _tie_bias(dx, dy):
    """0 if a pixel centre lying exactly on an edge of direction (dx, dy) is inside, else 1.

    Inside means: the centre nudged by (eps, eps^2) is inside. The decision is opposite for
    the edge's two triangles (opposite directions) and consistent around a shared vertex,
    so a closed surface covers each centre exactly once.
    """
    return 0 if (dy < 0 or (dy == 0 and dx > 0)) else 1


@njit(cache=True)
def zbuffer(screen, faces, face_values, cull_backfaces, near, out, inverse_depth):
    """Rasterise: ``out[i, j] = face_values[f]`` for the nearest face ``f`` at each pixel centre.

    ``out`` (H, W) keeps its contents where no face is seen (the caller fills it with the
    background value); ``inverse_depth`` (H, W) float64 is reset here and holds 1/z (0 background).

    Front-facing triangles have a negative signed screen area ``(p1 - p0) x (p2 - p0)`` with y
    pointing down, i.e. they run counter-clockwise as seen on screen.
    """
    height, width = out.shape
    inverse_depth[:] = 0.0
    xy, inverse_z = _snap(screen, near)
    num_vertices = screen.shape[0]
    for f in range(faces.shape[0]):
        a, b, c = np.int64(faces[f, 0]), np.int64(faces[f, 1]), np.int64(faces[f, 2])
        if min(a, b, c) < 0 or max(a, b, c) >= num_vertices:
            raise ValueError("faces index a vertex outside 0..V-1")
        x0, y0, x1, y1, x2, y2 = xy[a, 0], xy[a, 1], xy[b, 0], xy[b, 1], xy[c, 0], xy[c, 1]
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if area >= 0:  # back-facing or degenerate; already positively oriented
            if area == 0 or cull_backfaces:
                continue
        else:  # front-facing: swap two vertices so that the interior has positive edge functions
            x1, y1, x2, y2 = x2, y2, x1, y1
            b, c = c, b
            area = -area
        j0 = max(-((HALF - min(x0, x1, x2)) >> SUBPIXEL_BITS), 0)  # ceil division
        j1 = min((max(x0, x1, x2) - HALF) >> SUBPIXEL_BITS, width - 1)
        if j0 > j1:
            continue
        i0 = max(-((HALF - min(y0, y1, y2)) >> SUBPIXEL_BITS), 0)
        i1 = min((max(y0, y1, y2) - HALF) >> SUBPIXEL_BITS, height - 1)
        if i0 > i1:
            continue
        iz0, iz1, iz2 = inverse_z[a], inverse_z[b], inverse_z[c]
        if iz0 == 0.0 or iz1 == 0.0 or iz2 == 0.0:  # behind the near plane, too far out, or NaN
            continue
        _fill(face_values[f], x0, y0, x1, y1, x2, y2, iz0, iz1, iz2, area, j0, j1, i0, i1, out, inverse_depth)


@njit(cache=True, inline="always")
def _fill(value, x0, y0, x1, y1, x2, y2, iz0, iz1, iz2, area, j0, j1, i0, i1, out, inverse_depth):
    """Depth-test and write the covered pixel centres of one positively oriented triangle in its clipped box."""
    px = j0 * SUBPIXEL + HALF
    py = i0 * SUBPIXEL + HALF
    bias0 = _tie_bias(x2 - x1, y2 - y1)
    bias1 = _tie_bias(x0 - x2, y0 - y2)
    bias2 = _tie_bias(x1 - x0, y1 - y0)
    # Edge function of the edge opposite vertex k, minus its tie bias: inside iff all three are >= 0.
    e0 = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1) - bias0
    e1 = (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2) - bias1
    e2 = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0) - bias2
    # Perspective-correct depth: 1/z is affine in screen space, the barycentric mix of the
    # vertices' 1/z (unbiased edge functions / area); ``offset`` adds the biases back.
    scale = 1.0 / area
    offset = bias0 * iz0 + bias1 * iz1 + bias2 * iz2
    if i0 == i1 and j0 == j1:
        if (e0 | e1 | e2) >= 0:
            z = (e0 * iz0 + e1 * iz1 + e2 * iz2 + offset) * scale
            if z > inverse_depth[i0, j0]:
                inverse_depth[i0, j0] = z
                out[i0, j0] = value
        return
    step0_x, step0_y = (y1 - y2) * SUBPIXEL, (x2 - x1) * SUBPIXEL
    step1_x, step1_y = (y2 - y0) * SUBPIXEL, (x0 - x2) * SUBPIXEL
    step2_x, step2_y = (y0 - y1) * SUBPIXEL, (x1 - x0) * SUBPIXEL
    for i in range(i0, i1 + 1):
        c0, c1, c2 = e0, e1, e2
        for j in range(j0, j1 + 1):
            if (c0 | c1 | c2) >= 0:
                z = (c0 * iz0 + c1 * iz1 + c2 * iz2 + offset) * scale
                if z > inverse_depth[i, j]:
                    inverse_depth[i, j] = z
                    out[i, j] = value
            c0 += step0_x
            c1 += step1_x
            c2 += step2_x
        e0 += step0_y
        e1 += step1_y
        e2 += step2_y


@njit(cache=True)
def depth_from_inverse(inverse_depth):
    """(H, W) 1/z (0 background) -> (H, W) float32 depth (+inf background)."""
    height, width = inverse_depth.shape
    depth = np.empty((height, width), np.float32)
    for i in range(height):
        for j in range(width):
            w = inverse_depth[i, j]
            depth[i, j] = 1.0 / w if w > 0.0 else np.inf
    return depth


@njit(cache=True)
def label_values(face_parts):
    """(F,) parts 0..254 -> (F,) uint8 labels ``part + 1``."""
    labels = np.empty(face_parts.shape[0], np.uint8)
    for f in range(face_parts.shape[0]):
        part = face_parts[f]
        if part < 0 or part > 254:
            raise ValueError("face_parts must lie in 0..254")
        labels[f] = part + 1
    return labels


@njit(cache=True)
def lookup_labels(face_index, face_parts):
    """(H, W) face index (-1 background) and (F,) parts 0..254 -> (H, W) uint8, 0 background and part + 1."""
    values = label_values(face_parts)
    height, width = face_index.shape
    labels = np.zeros((height, width), np.uint8)
    for i in range(height):
        for j in range(width):
            f = face_index[i, j]
            if f >= 0:
                labels[i, j] = values[f]
    return labels


@njit(cache=True)
def render_labels(screen, faces, face_parts, cull_backfaces, near, inverse_depth):
    """The (H, W) uint8 label map (0 background, part + 1) straight from the z-buffer."""
    labels = np.zeros(inverse_depth.shape, np.uint8)
    zbuffer(screen, faces, label_values(face_parts), cull_backfaces, near, labels, inverse_depth)
    return labels


@njit(cache=True, error_model="numpy")  # a point on the camera plane gives inf, not an exception
def project(points, matrix):
    """(V, 3) points and a (4, 4) matrix -> (V, 3) screen points.

    With ``q = matrix @ [p, 1]``: screen ``x = q0 / q2``, ``y = q1 / q2``, ``z = q3``. The
    matrix entries are read into scalars first so that the loop keeps them in registers.
    """
    a00, a01, a02, a0 = matrix[0, 0], matrix[0, 1], matrix[0, 2], matrix[0, 3]
    a10, a11, a12, a1 = matrix[1, 0], matrix[1, 1], matrix[1, 2], matrix[1, 3]
    h0, h1, h2, h = matrix[2, 0], matrix[2, 1], matrix[2, 2], matrix[2, 3]
    z0, z1, z2, zt = matrix[3, 0], matrix[3, 1], matrix[3, 2], matrix[3, 3]
    screen = np.empty((points.shape[0], 3), np.float64)
    for v in range(points.shape[0]):
        p0, p1, p2 = points[v, 0], points[v, 1], points[v, 2]
        inverse = 1.0 / (h0 * p0 + h1 * p1 + h2 * p2 + h)
        screen[v, 0] = (a00 * p0 + a01 * p1 + a02 * p2 + a0) * inverse
        screen[v, 1] = (a10 * p0 + a11 * p1 + a12 * p2 + a1) * inverse
        screen[v, 2] = z0 * p0 + z1 * p1 + z2 * p2 + zt
    return screen
