"""Numba kernels of the shaded colour render; imported on first use (see :mod:`._kernels` for caching)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def vertex_normals(points, faces):
    """(V, 3) unit vertex normals: area-weighted sums of the (outward, for CCW faces) face normals."""
    normals = np.zeros(points.shape, np.float64)
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = points[b, 0] - points[a, 0], points[b, 1] - points[a, 1], points[b, 2] - points[a, 2]
        e2x, e2y, e2z = points[c, 0] - points[a, 0], points[c, 1] - points[a, 1], points[c, 2] - points[a, 2]
        # The cross product's length is twice the area: area weighting for free.
        nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
        for v in (a, b, c):
            normals[v, 0] += nx
            normals[v, 1] += ny
            normals[v, 2] += nz
    for v in range(points.shape[0]):
        length = np.sqrt(normals[v, 0] ** 2 + normals[v, 1] ** 2 + normals[v, 2] ** 2)
        if length > 0.0:
            for k in range(3):
                normals[v, k] /= length
    return normals


@njit(cache=True, inline="always")
def _barycentric(screen, a, b, c, x, y):
    """Perspective-correct barycentric weights of the pixel centre (x, y) in triangle (a, b, c)."""
    ax, ay = screen[a, 0], screen[a, 1]
    bx, by = screen[b, 0], screen[b, 1]
    cx, cy = screen[c, 0], screen[c, 1]
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    if area == 0.0:
        return 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0
    l0 = ((bx - x) * (cy - y) - (by - y) * (cx - x)) / area
    l1 = ((cx - x) * (ay - y) - (cy - y) * (ax - x)) / area
    l2 = 1.0 - l0 - l1
    # Screen-space weights over z, renormalised, are the weights on the 3D triangle.
    w0, w1, w2 = l0 / screen[a, 2], l1 / screen[b, 2], l2 / screen[c, 2]
    total = w0 + w1 + w2
    return w0 / total, w1 / total, w2 / total


@njit(cache=True)
def shade_pixels(face_index, screen, faces, points, colors, per_face, noise, light, ambient):
    """(H, W, 3) uint8 Lambert + ambient image; background stays 0.

    Args:
        face_index: (H, W) int32, -1 for background.
        screen: (V, 3) screen points; points: (V, 3) the same vertices in camera space.
        colors: (F, 3) if ``per_face`` else (V, 3) albedo in [0, 1].
        noise: (V,) relative albedo change per vertex (interpolated, so it sticks to the surface).
        light: (3,) unit direction towards the light, camera space.
    """
    normals = vertex_normals(points, faces)
    height, width = face_index.shape
    image = np.zeros((height, width, 3), np.uint8)
    for i in range(height):
        for j in range(width):
            f = face_index[i, j]
            if f < 0:
                continue
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            w0, w1, w2 = _barycentric(screen, a, b, c, j + 0.5, i + 0.5)
            # Scalars rather than small arrays: no allocation per pixel.
            lambert = 0.0
            facing = 0.0
            length = 0.0
            for k in range(3):
                n = w0 * normals[a, k] + w1 * normals[b, k] + w2 * normals[c, k]
                lambert += n * light[k]
                facing += n * (w0 * points[a, k] + w1 * points[b, k] + w2 * points[c, k])
                length += n * n
            if facing > 0.0:
                lambert = -lambert  # seen from behind (open mesh, no culling): light the side facing the camera
            lambert = max(0.0, lambert / max(np.sqrt(length), 1e-12))
            shade = (ambient + (1.0 - ambient) * lambert) * (1.0 + w0 * noise[a] + w1 * noise[b] + w2 * noise[c])
            for k in range(3):
                albedo = colors[f, k] if per_face else w0 * colors[a, k] + w1 * colors[b, k] + w2 * colors[c, k]
                value = 255.0 * albedo * shade + 0.5
                image[i, j, k] = np.uint8(min(max(value, 0.0), 255.0))
    return image
