"""Photometric augmentation with albumentations: PARE's motion blur and colour gain, plus optional extras.

Images stay uint8 throughout (albumentations 2 clips float images to [0, 1], the trap the
original PARE loader fell into). Only the image changes; labels and keypoints are untouched.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from preprocessing.augment.config import AugmentConfig

if TYPE_CHECKING:
    import albumentations as A


def build_photometric(config: AugmentConfig, seed: int) -> A.Compose | None:
    """The albumentations pipeline for ``config``; None when augmentation is off.

    albumentations is imported here, not with the module: it takes most of a second, which the processes that
    only read un-augmented samples (validation, evaluation actors) need not pay."""
    if not config.enabled:
        return None
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI at import otherwise
    import albumentations as A

    transforms = [
        # PARE's order (rgb_processing in pare/dataset/base_dataset.py): motion blur, then every channel times its
        # own U(0.6, 1.4) gain, clipped at 255 (blurring after the clip would soften saturated edges differently).
        A.MotionBlur(blur_limit=(3, config.motion_blur_max_kernel), p=config.motion_blur_prob),
        A.MultiplicativeNoise(
            multiplier=(config.color_gain_min, config.color_gain_max), per_channel=True, elementwise=False, p=1.0
        ),
    ]
    if config.brightness_contrast_prob:
        transforms.append(A.RandomBrightnessContrast(p=config.brightness_contrast_prob))
    if config.gaussian_noise_prob:
        transforms.append(A.GaussNoise(p=config.gaussian_noise_prob))
    if config.jpeg_prob:
        transforms.append(A.ImageCompression(quality_range=(40, 90), p=config.jpeg_prob))
    if config.grayscale_prob:
        transforms.append(A.ToGray(p=config.grayscale_prob))
    return A.Compose(transforms, seed=seed)


def apply_photometric(pipeline: A.Compose | None, image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) uint8."""
    if pipeline is None:
        return image
    return pipeline(image=image)["image"]
