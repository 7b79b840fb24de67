"""What a preprocessed sample looks like: the loose crop's geometry, encoding and the fit-quality filter.

These dataclasses are the typed defaults of the ``preprocess.crop`` and ``preprocess.quality``
config sections; the job passes them to the sample builder unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LABEL_STRIDES = (1, 2, 4, 8)
"""Allowed ``CropConfig.label_stride`` values: each divides the crop's side (a multiple of 8)."""


@dataclass
class CropConfig:
    """The loose square crop stored per sample, sized so that training never needs pixels outside it."""

    network_resolution: int = 224
    """Side in pixels that the person box is resized to at training time (PARE: 224)."""

    max_scale: float = 1.25
    """Largest training-time zoom-out of the box (PARE: scale factor 0.25, so 1.25)."""

    max_rotation_deg: float = 60.0
    """Largest training-time rotation in degrees (PARE: 2 x 30)."""

    max_translation: float = 0.05
    """Largest training-time shift of the box centre, as a fraction of the box side."""

    jpeg_quality: int = 95
    """JPEG quality (1-100) of the stored crops."""

    label_stride: int = 4
    """Part labels are stored at the crop's resolution divided by this: 4 stores them at the loss's resolution
    (``loader.label_size`` 56 for a 224-px input, the head's map), so that the loader decodes and warps 16x fewer
    pixels; 1 stores them at the crop's, for a ``loader.label_size`` above ``network_resolution / 4``. Labels are
    rendered at the crop's resolution either way (the fit-quality check uses those)."""

    def __post_init__(self) -> None:
        if not 32 <= self.network_resolution <= 1024:
            raise ValueError(f"network_resolution must be in 32..1024, got {self.network_resolution}")
        if not 1.0 <= self.max_scale <= 4.0:
            raise ValueError(f"max_scale must be in 1..4, got {self.max_scale}")
        if not 0.0 <= self.max_rotation_deg <= 180.0:
            raise ValueError(f"max_rotation_deg must be in 0..180, got {self.max_rotation_deg}")
        if not 0.0 <= self.max_translation <= 1.0:
            raise ValueError(f"max_translation must be in 0..1, got {self.max_translation}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.label_stride not in LABEL_STRIDES:
            raise ValueError(f"label_stride must be one of {LABEL_STRIDES}, got {self.label_stride}")

    @property
    def loose_factor(self) -> float:
        """Loose crop side / person box side.

        A box scaled by ``max_scale`` and rotated by any angle up to ``max_rotation_deg`` spans
        ``max_scale (|cos a| + |sin a|)`` box sides (largest at 45 degrees); a shift of the
        centre by ``max_translation`` box sides adds that much on each side.
        """
        angle = math.radians(min(self.max_rotation_deg, 45.0))
        return self.max_scale * (math.cos(angle) + math.sin(angle)) + 2.0 * self.max_translation

    @property
    def resolution(self) -> int:
        """Side in pixels of the stored crop: the box at network resolution, times the loose factor, to a multiple of 8."""
        return int(math.ceil(self.network_resolution * self.loose_factor / 8.0 - 1e-9)) * 8

    @property
    def label_resolution(self) -> int:
        """Side in pixels of the stored part labels (the crop's side is a multiple of every stride)."""
        return self.resolution // self.label_stride


@dataclass
class QualityConfig:
    """Which SMPL fits are good enough to keep (samples without a fit are never filtered)."""

    min_keypoints_in_silhouette: float = 0.5
    """Smallest fraction of labelled 2D keypoints inside the crop that must fall on the rendered
    body; 0 turns the check off."""

    max_reprojection_error: float = 25.0
    """Largest mean distance in pixels, at network resolution, between the fit's projected
    joints and the labelled 2D keypoints; 0 turns the check off."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_keypoints_in_silhouette <= 1.0:
            raise ValueError(f"min_keypoints_in_silhouette must be in 0..1, got {self.min_keypoints_in_silhouette}")
        if self.max_reprojection_error < 0:
            raise ValueError(f"max_reprojection_error must be >= 0, got {self.max_reprojection_error}")
