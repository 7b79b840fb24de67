"""Shaded colour renders for synthetic images: Lambert diffuse plus ambient light.

``colour = albedo * (ambient + (1 - ambient) * max(0, n . l)) * (1 + texture)``, with ``n``
the vertex normals (area-weighted, from the camera-space vertices) interpolated
perspective-correctly at each pixel centre, ``l`` the unit direction towards a distant light
in camera space (x right, y down, z forward), and ``texture`` a per-vertex random albedo
change interpolated across faces, so it moves with the surface. Faces seen from behind
(open meshes rendered without culling) are lit on the side that faces the camera.
"""

from __future__ import annotations

import numpy as np

from preprocessing.render.rasterize import Fragments

DEFAULT_LIGHT = (-0.3, -0.5, -1.0)
"""Towards the light: up and to the left of the camera, behind it (the light falls on the front)."""

DEFAULT_COLOR = (0.7, 0.7, 0.7)


def _albedo(vertex_colors, face_colors, num_vertices: int, num_faces: int) -> tuple[np.ndarray, bool]:
    """The (V, 3) or (F, 3) albedo in [0, 1] and whether it is per face."""
    if vertex_colors is not None and face_colors is not None:
        raise ValueError("pass vertex_colors or face_colors, not both")
    if face_colors is not None:
        colors, per_face, expected = face_colors, True, num_faces
    elif vertex_colors is not None:
        colors, per_face, expected = vertex_colors, False, num_vertices
    else:
        colors, per_face, expected = np.tile(DEFAULT_COLOR, (num_faces, 1)), True, num_faces
    colors = np.ascontiguousarray(colors, dtype=np.float64)
    if colors.shape != (expected, 3):
        kind = "face" if per_face else "vertex"
        raise ValueError(f"{kind} colours must have shape ({expected}, 3), got {colors.shape}")
    return colors, per_face


def shade(
    fragments: Fragments,
    screen: np.ndarray,
    faces: np.ndarray,
    camera_vertices: np.ndarray,
    *,
    vertex_colors: np.ndarray | None = None,
    face_colors: np.ndarray | None = None,
    light_dir=DEFAULT_LIGHT,
    ambient: float = 0.35,
    texture_noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Colour the rasterised ``fragments``; returns (H, W, 3) uint8 RGB, background 0.

    Args:
        fragments: from :func:`preprocessing.render.rasterize` of ``screen`` and ``faces``.
        screen: (V, 3) the screen points that were rasterised.
        faces: (F, 3) vertex indices, counter-clockwise seen from outside.
        camera_vertices: (V, 3) the same vertices in camera space, for normals.
        vertex_colors: (V, 3) albedo in [0, 1], or
        face_colors: (F, 3) albedo in [0, 1] (e.g. a colour per body part); grey if neither.
        light_dir: (3,) direction towards the light in camera space.
        ambient: share of light that reaches every surface, in [0, 1].
        texture_noise: standard deviation of the relative per-vertex albedo change.
        rng: draws the texture; ``np.random.default_rng(0)`` when omitted.

    The foreground mask is ``fragments.mask``.
    """
    from preprocessing.render import _shading_kernels

    screen = np.ascontiguousarray(screen, dtype=np.float64)
    camera_vertices = np.ascontiguousarray(camera_vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if camera_vertices.shape != screen.shape:
        raise ValueError(f"camera_vertices {camera_vertices.shape} must match screen {screen.shape}")
    if not 0.0 <= ambient <= 1.0:
        raise ValueError(f"ambient must lie in [0, 1], got {ambient}")
    light = np.asarray(light_dir, dtype=np.float64).reshape(3)
    light = light / np.linalg.norm(light)
    colors, per_face = _albedo(vertex_colors, face_colors, len(screen), len(faces))
    if texture_noise > 0:
        rng = np.random.default_rng(0) if rng is None else rng
        noise = texture_noise * rng.standard_normal(len(screen))
    else:
        noise = np.zeros(len(screen))
    face_index = np.ascontiguousarray(fragments.face_index, dtype=np.int32)
    return _shading_kernels.shade_pixels(
        face_index, screen, faces, camera_vertices, colors, per_face, noise, light, float(ambient)
    )
