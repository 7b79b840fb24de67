"""Drawing ground truth over images: part-label maps and 2D keypoints.

Keypoints are in continuous image coordinates (pixel (i, j) spans [j, j + 1) x [i, i + 1)),
the convention of :mod:`preprocessing.render.cameras`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from pipelines.visualize.palette import PART_COLORS

VISIBLE_COLOR = (255, 255, 255)
HIDDEN_COLOR = (230, 20, 20)
OUTLINE_COLOR = (0, 0, 0)


def overlay_labels(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 ``image`` with part colours blended in where (H, W) ``labels`` > 0.

    Labels are 0 for background and ``part + 1`` for the 24 parts (colours of
    :data:`pipelines.visualize.palette.PART_COLORS`).
    """
    if image.shape[:2] != labels.shape:
        raise ValueError(f"labels {labels.shape} must match the image size {image.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    foreground = labels > 0
    colors = PART_COLORS[np.clip(labels.astype(np.int64) - 1, 0, len(PART_COLORS) - 1)].astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colors
    return np.where(foreground[..., None], np.round(blended), image).astype(np.uint8)


def draw_keypoints(image: np.ndarray, xy: np.ndarray, visible: np.ndarray, radius: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 copy of ``image`` with (K, 2) keypoints drawn.

    Args:
        xy: (K, 2) pixel coordinates.
        visible: (K,) bool (True visible, False hidden) or int visibility (2 visible, 1 hidden,
            0 not labelled: not drawn). Visible keypoints are white dots with a black rim, hidden
            ones red dots with a white rim, so the two read apart even in grey scale.
        radius: dot radius in pixels; by default about 1 % of the image's longer side.
    """
    visible = np.asarray(visible)
    state = np.where(visible, 2, 1) if visible.dtype == bool else visible.astype(np.int64)
    if len(state) != len(xy):
        raise ValueError(f"{len(xy)} keypoints but {len(state)} visibility flags")
    radius = radius or max(2.0, max(image.shape[:2]) / 100.0)
    picture = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(picture)
    for (x, y), flag in zip(np.asarray(xy, dtype=np.float64), state, strict=True):
        if flag <= 0 or not np.isfinite([x, y]).all():
            continue
        # PIL puts pixel centres at integer coordinates, half a pixel left of ours.
        box = [x - 0.5 - radius, y - 0.5 - radius, x - 0.5 + radius, y - 0.5 + radius]
        fill, rim = (VISIBLE_COLOR, OUTLINE_COLOR) if flag >= 2 else (HIDDEN_COLOR, VISIBLE_COLOR)
        draw.ellipse(box, fill=fill, outline=rim, width=max(1, round(radius / 3)))
    return np.asarray(picture)
