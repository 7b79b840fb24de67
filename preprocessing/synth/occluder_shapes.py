"""Occluding objects drawn into a rendered synthetic picture (``pare synth``): random filled polygons
and ellipses with a texture. (The occluders pasted over training crops are in
:mod:`preprocessing.augment.synthetic_occlusion`.)

Masks are drawn without anti-aliasing, so a pixel is either wholly occluded or not at all and
the ground truth visibility (a keypoint is hidden when the pixel under it is occluded) agrees
exactly with the image.
"""

from __future__ import annotations

import cv2
import numpy as np

from preprocessing.synth.textures import random_polygon, random_texture


def occluder_mask(rng: np.random.Generator, height: int, width: int, box: np.ndarray, max_count: int = 3) -> np.ndarray:
    """(H, W) bool mask of 1..max_count random shapes placed over ``box``.

    Args:
        box: (4,) ``[x0, y0, x1, y1]`` image region to occlude (usually a person's box); the
            shapes are centred inside it and sized relative to it, so they hide part of the
            person but rarely all of it.
    """
    mask = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = (float(v) for v in box)
    size = max(x1 - x0, y1 - y0, 1.0)
    for _ in range(int(rng.integers(1, max_count + 1))):
        center = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        radius = rng.uniform(0.1, 0.3) * size
        if rng.random() < 0.5:
            axes = (max(1, int(radius)), max(1, int(radius * rng.uniform(0.3, 1.0))))
            angle = float(rng.uniform(0.0, 180.0))
            cv2.ellipse(mask, (int(center[0]), int(center[1])), axes, angle, 0.0, 360.0, 1, -1)
        else:
            points = np.round(random_polygon(rng, center, radius)).astype(np.int32)
            cv2.fillPoly(mask, [points], 1)
    return mask.astype(bool)


def occluder_pixels(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 random texture, darkened at random, for the occluders of ``mask``."""
    height, width = mask.shape
    return (random_texture(rng, height, width) * rng.uniform(0.6, 1.0)).astype(np.uint8)
