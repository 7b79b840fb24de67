"""Configuration of the synthetic data generator (``pare synth``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SynthConfig:
    """How ``pare synth`` renders its pictures; the layout, folder, count and seed are flags."""

    image_size: int = 320
    """Longer side in pixels of the images of the in-the-wild layouts (coco_eft, mpii,
    spin_npz, humandata); each image is landscape, square or portrait at random."""

    occluders: float = 0.3
    """Chance that a picture (a whole sequence for 3dpw) gets 1-3 occluding objects over its
    person; keypoints under them are marked hidden. The --occluders flag overrides it."""

    jpeg_quality: int = 90
    """JPEG quality (1-100) of the written images."""

    sequence_length: int = 12
    """Frames per 3DPW sequence; --num frames are split into at least 4 sequences."""

    pw3d_scale: float = 0.25
    """3DPW image size relative to the real 1080 x 1920 portrait frames (intrinsics scale too)."""

    h36m_scale: float = 1.0
    """Human3.6M image size relative to the real 1000 x 1000 / 1000 x 1002 frames (the cameras'
    f, c, w and h scale too)."""

    batch_size: int = 32
    """Samples posed per body model forward pass."""

    pose_variation: float = 1.0
    """Factor on the random variation of the poses around their base postures (standing, walking, arms
    raised, sitting, crouching); below 1 the postures dominate, which makes data that small models learn
    quickly (the training tests use 0.3)."""

    preview_samples: int = 16
    """Samples shown in the --preview contact sheet."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.pose_variation <= 2.0:
            raise ValueError(f"pose_variation must be in 0..2, got {self.pose_variation}")
        if not 64 <= self.image_size <= 4096:
            raise ValueError(f"image_size must be between 64 and 4096 pixels, got {self.image_size}")
        if not 0.0 <= self.occluders <= 1.0:
            raise ValueError(f"occluders must be a probability in [0, 1], got {self.occluders}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be between 1 and 100, got {self.jpeg_quality}")
        if self.sequence_length < 1:
            raise ValueError(f"sequence_length must be >= 1, got {self.sequence_length}")
        for name in ("pw3d_scale", "h36m_scale"):
            if not 0.05 <= getattr(self, name) <= 2.0:
                raise ValueError(f"{name} must be between 0.05 and 2.0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 1 <= self.preview_samples <= 64:
            raise ValueError(f"preview_samples must be between 1 and 64, got {self.preview_samples}")
