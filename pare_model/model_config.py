"""Configuration of the network: which backbone, which head, and their sizes.

It lives in ``pare_model`` (without importing torch) because it is the single source of these
defaults for both the Python API and the ``model`` section of the project's typed config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BackboneName = Literal["hrnet_w32", "resnet50", "resnet_small", "debug"]
"""The names of :data:`pare_model.backbones.BACKBONES`, spelled out because a structured config
needs a static type and this module must not import torch; ``tests/test_registry.py`` keeps them equal."""
HeadName = Literal["pare", "hmr"]
"""The names of :data:`pare_model.heads.HEADS` (static for the same reasons, checked by the same test)."""


@dataclass
class ModelConfig:
    """The network architecture. The released PARE is hrnet_w32 + pare."""

    backbone: BackboneName = "hrnet_w32"
    """'hrnet_w32': HRNet-W32 with conv fusion (480 x 56 x 56 features, as released).
    'resnet50': ResNet-50 (2048 x 7 x 7) with transposed convolutions in the head.
    'resnet_small': a narrow ResNet-18 (128 x 7 x 7) for laptop-sized CPU runs and tests.
    'debug': a tiny test-only backbone for fast checks; never for real training."""

    head: HeadName = "pare"
    """'pare': part attention regressor. 'hmr': HMR/SPIN-style baseline (global pooling,
    iterative regression from the mean parameters), for the paper's occlusion comparison."""

    image_size: int = 224
    """Side of the square input crop in pixels; 2D keypoints are normalised by half of it."""

    focal_length: float = 5000.0
    """Focal length in pixels of the weak-perspective crop camera (PARE/SPIN use 5000)."""

    num_features_smpl: int = 64
    """PARE head: channels of the shape/camera feature copy (64 in the paper)."""

    num_branch_filters: int = 0
    """PARE head: width of the 2D and 3D branches; 0 picks the released value for the
    backbone (128 for a stride-4 backbone, 256 for ResNet-50's transposed convolutions)."""

    softmax_temperature: float = 1.0
    """PARE head: temperature of the per-part spatial softmax."""

    hmr_iterations: int = 3
    """HMR head: number of iterative refinement steps."""

    def __post_init__(self) -> None:
        if self.image_size <= 0 or self.image_size % 32:
            raise ValueError(f"image_size must be a positive multiple of 32, got {self.image_size}")
        if self.focal_length <= 0:
            raise ValueError(f"focal_length must be positive, got {self.focal_length}")
        if self.num_features_smpl <= 0:
            raise ValueError(f"num_features_smpl must be positive, got {self.num_features_smpl}")
        if self.num_branch_filters < 0:
            raise ValueError(f"num_branch_filters must be >= 0 (0 = released default), got {self.num_branch_filters}")
        if self.softmax_temperature <= 0:
            raise ValueError(f"softmax_temperature must be positive, got {self.softmax_temperature}")
        if self.hmr_iterations < 1:
            raise ValueError(f"hmr_iterations must be >= 1, got {self.hmr_iterations}")
