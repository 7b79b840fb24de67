"""Configuration of inference on images (``pare predict``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class PredictConfig:
    """How people are found and cropped, and what is written per person."""

    output_dir: str = "outputs/predict"
    """Folder for the per-person JSON files, the overlays and ``predictions.jsonl``."""

    detector: Literal["auto", "hog", "none"] = "auto"
    """Without --boxes: 'hog' finds people with OpenCV's built-in HOG people detector (no
    downloaded weights; OpenCV 4 only) and falls back to the whole image when it finds nobody;
    'none' always uses the whole image; 'auto' is 'hog' where this OpenCV has it, else 'none'."""

    box_scale: float = 1.2
    """The square crop's side is box_scale times the longer side of the person's box."""

    batch_size: int = 16
    """People per forward pass."""

    device: str = "cpu"
    """Torch device, e.g. 'cpu' or 'cuda'."""

    overlays: bool = True
    """Write the mesh overlay and part-attention PNGs next to the JSON files."""

    def __post_init__(self) -> None:
        if not self.output_dir.strip():
            raise ValueError("output_dir must name a folder")
        if self.box_scale <= 0:
            raise ValueError(f"box_scale must be positive, got {self.box_scale}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
