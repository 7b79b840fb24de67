"""The network's input convention: RGB crops normalised with the ImageNet statistics."""

from __future__ import annotations

import functools

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@functools.cache
def _statistics(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (1, 3, 1, 1) mean and std on ``device``, made once per device (a tensor made on a GPU from Python
    numbers is a copy that waits for it)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return mean.to(device, non_blocking=True), std.to(device, non_blocking=True)


def to_model_input(
    crops: np.ndarray | torch.Tensor,
    device: torch.device | str | None = None,
    memory_format: torch.memory_format = torch.channels_last,
) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB crops -> (B, 3, H, W) float32 normalised images on ``device`` (default: the crops').

    The crops travel as uint8, a quarter of the float32 bytes (without waiting, when the loader pinned them),
    and are normalised where they arrive: on a GPU, not by the CPU in the training step. The result is in
    ``memory_format``: channels-last by default, the crops' own layout (no copy); ``torch.contiguous_format``
    for NCHW.
    """
    images = torch.as_tensor(crops)
    if device is not None:
        images = images.to(device, non_blocking=True)
    mean, std = _statistics(images.device)
    images = (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    if not images.is_contiguous(memory_format=memory_format):
        images = images.contiguous(memory_format=memory_format)
    return images


def from_model_input(images: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_model_input`: (B, 3, H, W) -> (B, H, W, 3) uint8 RGB."""
    mean, std = _statistics(images.device)
    rgb = (images * std + mean).clamp(0, 1) * 255.0
    return rgb.round().byte().permute(0, 2, 3, 1).cpu().numpy()
