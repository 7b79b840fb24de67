"""Square person crops: from a box to the affine of a crop, and the crop itself.

Boxes follow COCO's ``[x, y, w, h]`` in image pixels. A crop is the square of side
``box_scale * max(w, h)`` around the box centre, resized to ``out_size`` (SPIN/PARE store the
side as ``scale = side / 200``). Coordinates use :mod:`preprocessing.render.cameras`'s
continuous pixel convention, so keypoints, rendered labels and image pixels stay aligned;
pixels outside the image are filled with ``fill``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from preprocessing.render.cameras import affine_for_cv2, crop_affine

SCALE_UNIT = 200.0
"""SPIN/PARE express a box side in units of 200 pixels (``scale = side / 200``)."""


def square_box(bbox_xywh: Sequence[float], box_scale: float = 1.2) -> tuple[np.ndarray, float]:
    """Centre (2,) and side of the square crop around a ``[x, y, w, h]`` box."""
    x, y, w, h = (float(v) for v in bbox_xywh)
    if w <= 0 or h <= 0:
        raise ValueError(f"box {list(bbox_xywh)} has no area; boxes are [x, y, width, height]")
    return np.array([x + w / 2.0, y + h / 2.0]), box_scale * max(w, h)


def crop_image(
    image: np.ndarray,
    center: Sequence[float],
    box_size: float,
    out_size: int,
    rotation_deg: float = 0.0,
    fill: tuple[int, int, int] = (0, 0, 0),
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the square around ``center`` into an ``out_size`` crop; also return its (2, 3) affine."""
    affine = crop_affine(center, box_size, out_size, rotation_deg)
    crop = cv2.warpAffine(
        image,
        affine_for_cv2(affine),
        (out_size, out_size),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )
    return crop, affine
