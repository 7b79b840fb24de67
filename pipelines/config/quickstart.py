"""Configuration of the quickstart job, the README's first command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class QuickstartConfig:
    """What the quickstart job writes and how its picture looks."""

    output_dir: str = "outputs/quickstart"
    """Folder for everything the quickstart writes. Relative paths are relative to the
    working directory."""

    pose: Literal["walk", "wave", "t_pose", "mean"] = "walk"
    """Pose of the body in the picture; 'mean' is the mean pose of smpl_mean_params.npz."""

    panel_size: int = 480
    """Height in pixels of each view in the picture."""

    pipeline: bool = True
    """Run the whole pipeline after the picture (synthetic data, Ray preprocessing, Ray Train, evaluation,
    occlusion analysis); false: only the body model and its picture."""

    train_samples: int = 320
    """Synthetic COCO-EFT-like training images (one person each; the loader occludes them)."""

    test_frames: int = 180
    """Synthetic 3DPW frames, all three splits (sequences of 12 with real 3DPW names): the test split's are the test
    frames; every split's occluded-named sequences make 3DPW-OCC."""

    image_size: int = 320
    """Side of the synthetic source images in pixels."""

    def __post_init__(self) -> None:
        if not self.output_dir.strip():
            raise ValueError("output_dir must name a folder")
        for name in ("train_samples", "test_frames", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 128 <= self.panel_size <= 4096:
            raise ValueError(f"panel_size must be between 128 and 4096 pixels, got {self.panel_size}")
