"""Configuration of the training-time augmentation (:mod:`preprocessing.augment`): the geometric and
photometric draws, and synthetic occlusion.

The sections ``loader.augment`` and ``loader.occlusion`` of the typed config tree; re-exported by
:mod:`pipelines.config.train`, whose ``LoaderConfig`` holds them. Defaults follow PARE
(``docs/pare-reference.md``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AugmentConfig:
    """Geometric and photometric augmentation, applied to image, keypoints, 3D joints, pose and part labels together."""

    enabled: bool = True
    """Switch all augmentation off (validation never augments)."""

    scale_factor: float = 0.25
    """Box scale ~ clip(N(1, scale_factor), 1 - scale_factor, 1 + scale_factor) (PARE: 0.25)."""

    rotation_factor: float = 30.0
    """Rotation in degrees ~ clip(N(0, rotation_factor), +-2 rotation_factor) (PARE: 30)."""

    rotation_prob: float = 0.4
    """Probability of rotating at all (PARE: 0.4)."""

    translation_factor: float = 0.0
    """Box centre shift ~ U(-f, f) box sides in x and y; 0: none, as in PARE. Not in the original: a departure when
    set (the stored crop has room for 0.05)."""

    flip_prob: float = 0.5
    """Probability of a horizontal flip (keypoints, pose, 3D joints and part ids are mirrored too)."""

    color_gain_min: float = 0.6
    """Per-channel colour gain ~ U(color_gain_min, color_gain_max), applied after the motion blur (PARE: 0.6..1.4)."""

    color_gain_max: float = 1.4
    """Upper end of the colour gain."""

    motion_blur_prob: float = 0.5
    """Probability of albumentations' MotionBlur (PARE: 0.5)."""

    motion_blur_max_kernel: int = 7
    """Largest motion-blur kernel in pixels (odd, >= 3)."""

    brightness_contrast_prob: float = 0.0
    """Probability of albumentations' RandomBrightnessContrast (not in PARE; off by default)."""

    gaussian_noise_prob: float = 0.0
    """Probability of albumentations' GaussNoise (not in PARE; off by default)."""

    jpeg_prob: float = 0.0
    """Probability of albumentations' ImageCompression at quality 40..90 (not in PARE; off by default)."""

    grayscale_prob: float = 0.0
    """Probability of turning the image grey (not in PARE; off by default)."""

    def __post_init__(self) -> None:
        for name in (
            "rotation_prob",
            "flip_prob",
            "motion_blur_prob",
            "brightness_contrast_prob",
            "gaussian_noise_prob",
            "jpeg_prob",
            "grayscale_prob",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in 0..1, got {getattr(self, name)}")
        if not 0.0 <= self.scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in 0..1, got {self.scale_factor}")
        if not 0.0 <= self.rotation_factor <= 90.0:
            raise ValueError(f"rotation_factor must be in 0..90 degrees, got {self.rotation_factor}")
        if not 0.0 <= self.translation_factor <= 0.5:
            raise ValueError(f"translation_factor must be in 0..0.5, got {self.translation_factor}")
        if not 0.0 < self.color_gain_min <= self.color_gain_max:
            raise ValueError(
                f"color_gain_min must be > 0 and <= color_gain_max, got {self.color_gain_min}, {self.color_gain_max}"
            )
        if self.motion_blur_max_kernel < 3 or self.motion_blur_max_kernel % 2 == 0:
            raise ValueError(f"motion_blur_max_kernel must be odd and >= 3, got {self.motion_blur_max_kernel}")


@dataclass
class OcclusionConfig:
    """Synthetic occlusion: object cut-outs pasted over the person (PARE's Pascal VOC occluders)."""

    enabled: bool = True
    """Paste occluders on training images."""

    probability: float = 1.0
    """Probability that an image gets occluders at all."""

    min_count: int = 1
    """Fewest occluders per occluded image (PARE: 1)."""

    max_count: int = 7
    """Most occluders per occluded image (PARE: 7)."""

    min_scale: float = 0.2
    """Occluder size factor ~ U(min_scale, max_scale) x min(H, W) / 256 of its cut-out size (PARE: 0.2..1.0)."""

    max_scale: float = 1.0
    """Upper end of the occluder size factor."""

    bank: str = ""
    """Occluder bank (.npz) made by ``pare occluders build --voc VOCdevkit/VOC2012 --out FILE``; empty: procedural
    occluders (random textured polygons and blobs), needing no dataset."""

    procedural_size: int = 96
    """Side in pixels of the procedural occluders' cut-outs (they are scaled like VOC cut-outs)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in 0..1, got {self.probability}")
        if not 1 <= self.min_count <= self.max_count:
            raise ValueError(f"min_count must be >= 1 and <= max_count, got {self.min_count}, {self.max_count}")
        if not 0.0 < self.min_scale <= self.max_scale:
            raise ValueError(f"min_scale must be > 0 and <= max_scale, got {self.min_scale}, {self.max_scale}")
        if self.procedural_size < 16:
            raise ValueError(f"procedural_size must be >= 16 pixels, got {self.procedural_size}")
