"""Express a crop's weak-perspective camera in the full image, the question users ask most.

The crop camera has focal length ``f`` (5000 px) on an ``S`` px crop of a square of side ``b``
image pixels centred at ``c``. In image pixels that is exactly a pinhole camera with focal
length ``f b / S``, principal point ``c`` and the same translation.

Renderers often want the principal point at the image centre ``o`` instead. Moving it there
changes the translation's x and y by ``(c - o) t_z / f_image``, which is exact only for points
at the depth of the root (``t_z``); PARE's demo makes the same approximation.
"""

from __future__ import annotations

import numpy as np


def crop_camera_in_image(
    cam_t: np.ndarray,
    center: np.ndarray,
    box_size: float,
    image_width: int,
    image_height: int,
    focal_length: float = 5000.0,
    crop_size: int = 224,
) -> dict[str, dict[str, list[float] | float]]:
    """Full-image pinhole cameras of a crop prediction: ``exact`` and ``image_centered``."""
    focal = focal_length * box_size / crop_size
    translation = np.asarray(cam_t, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)
    principal = np.array([image_width / 2.0, image_height / 2.0])
    centered = translation.copy()
    centered[:2] += (center - principal) * translation[2] / focal
    return {
        "exact": {
            "focal_length": float(focal),
            "principal_point": center.tolist(),
            "translation": translation.tolist(),
        },
        "image_centered": {
            "focal_length": float(focal),
            "principal_point": principal.tolist(),
            "translation": centered.tolist(),
        },
    }
