"""Predicted meshes drawn over the image they came from, nearest surface in front.

Each person's mesh is rendered straight into the image frame: the crop camera projects the
vertices into crop pixels, and the inverse of the crop's affine carries them into the image,
so no warping of rendered pixels is needed. People are composited by depth.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pare_model.geometry import FOCAL_LENGTH
from preprocessing.render import (
    invert_affine,
    rasterize,
    shade,
    weak_perspective_to_screen,
    weak_perspective_translation,
)
from preprocessing.render.cameras import CROP_SIZE

# One clay-like colour per person, cycling.
PERSON_COLORS = np.array([(0.86, 0.72, 0.62), (0.62, 0.76, 0.90), (0.70, 0.88, 0.68), (0.92, 0.80, 0.50)])


def draw_meshes(
    image: np.ndarray,
    meshes: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    faces: np.ndarray,
    focal_length: float = FOCAL_LENGTH,
    crop_size: int = CROP_SIZE,
    opacity: float = 0.85,
) -> Image.Image:
    """Draw ``(vertices (V, 3), cam [s, tx, ty], crop affine (2, 3))`` per person over ``image``."""
    height, width = image.shape[:2]
    canvas = image.astype(np.float32)
    nearest = np.full((height, width), np.inf, dtype=np.float32)
    for index, (vertices, cam, affine) in enumerate(meshes):
        screen = weak_perspective_to_screen(vertices, cam, crop_size, focal_length, affine=invert_affine(affine))
        fragments = rasterize(screen, faces, height, width)
        in_front = (fragments.face_index >= 0) & (fragments.depth < nearest)
        if not in_front.any():
            continue
        translation = weak_perspective_translation(cam, crop_size, focal_length)
        colours = np.broadcast_to(PERSON_COLORS[index % len(PERSON_COLORS)], vertices.shape)
        shaded = shade(fragments, screen, faces, camera_vertices=vertices + translation, vertex_colors=colours)
        canvas[in_front] = (1 - opacity) * canvas[in_front] + opacity * shaded[in_front]
        nearest[in_front] = fragments.depth[in_front]
    return Image.fromarray(canvas.round().clip(0, 255).astype(np.uint8))
