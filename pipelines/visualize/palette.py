"""Colours of the 24 body parts in every picture the project draws (index = part id 0..23).

Left and right parts get clearly different colours so a flipped label map is easy to spot.
"""

from __future__ import annotations

import numpy as np

PART_COLORS = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 200, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 220, 220),
        (240, 50, 230),
        (170, 210, 60),
        (250, 160, 190),
        (0, 128, 128),
        (190, 160, 255),
        (170, 110, 40),
        (255, 235, 150),
        (128, 0, 0),
        (120, 230, 170),
        (128, 128, 0),
        (255, 190, 140),
        (0, 0, 128),
        (0, 160, 90),
        (255, 99, 71),
        (46, 139, 87),
        (65, 105, 225),
        (218, 165, 32),
    ],
    dtype=np.uint8,
)
