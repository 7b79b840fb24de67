"""The network's input convention: RGB crops normalised with the ImageNet statistics."""

from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_model_input(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB crops -> (B, 3, H, W) float32 normalised images."""
    images = torch.as_tensor(crops).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def from_model_input(images: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_model_input`: (B, 3, H, W) -> (B, H, W, 3) uint8 RGB."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    rgb = (images * std + mean).clamp(0, 1) * 255.0
    return rgb.round().byte().permute(0, 2, 3, 1).cpu().numpy()
