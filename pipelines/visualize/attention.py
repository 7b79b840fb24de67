"""Pictures of the PARE head's part maps over the input crop.

``attention_panel`` shows, on top, the crop, the 2D part branch's labels (argmax of
``pred_segm_mask``, background left clear) and the combined part attention (each pixel
coloured by the part that attends to it most); below, one heat map per part over the dimmed
crop. Each part's map is stretched to its own min..max, so even the flat maps of an untrained
model show where each part looks most.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from pare_model.body_model.parts import PART_NAMES
from pipelines.visualize.palette import PART_COLORS

CAPTION = 16
GRID_COLUMNS = 6


def _resize_maps(maps: np.ndarray, size: int) -> np.ndarray:
    """(C, h, w) float maps -> (C, size, size), bilinear."""
    return np.stack([cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR) for m in maps])


def _stretch(maps: np.ndarray) -> np.ndarray:
    """Each map of (C, H, W) linearly to [0, 1]."""
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.maximum(high - low, 1e-12)


def segmentation_overlay(crop: np.ndarray, segm_logits: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """(S, S, 3) crop and (25, h, w) part logits -> the crop with predicted part labels blended in."""
    labels = _resize_maps(segm_logits, crop.shape[0]).argmax(axis=0)  # (S, S), 0 = background
    colours = PART_COLORS[np.clip(labels - 1, 0, 23)].astype(np.float32)
    weight = np.where(labels > 0, alpha, 0.0)[..., None]
    return (crop * (1 - weight) + colours * weight).round().astype(np.uint8)


def attention_overlay(crop: np.ndarray, attention: np.ndarray) -> np.ndarray:
    """(S, S, 3) crop and (24, h, w) softmax maps -> the crop tinted by the strongest part."""
    maps = _stretch(_resize_maps(attention, crop.shape[0]))  # (24, S, S) in [0, 1]
    strongest = maps.argmax(axis=0)
    strength = maps.max(axis=0)[..., None]
    dimmed = crop.astype(np.float32) * 0.35
    return (dimmed * (1 - strength) + PART_COLORS[strongest].astype(np.float32) * strength).round().astype(np.uint8)


def heat_tile(crop: np.ndarray, attention_map: np.ndarray, size: int) -> np.ndarray:
    """One part's (h, w) attention as a heat map over the dimmed crop, ``size`` px square."""
    heat = _stretch(_resize_maps(attention_map[None], size))[0]
    coloured = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
    small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return (0.35 * small + 0.65 * coloured).round().astype(np.uint8)


def attention_panel(crop: np.ndarray, segm_logits: np.ndarray, attention: np.ndarray) -> Image.Image:
    """Crop | predicted part labels | combined attention, then a grid of the 24 per-part maps."""
    size = crop.shape[0]
    tile = 3 * size // GRID_COLUMNS
    rows = -(-len(attention) // GRID_COLUMNS)
    panel = Image.new("RGB", (3 * size, CAPTION + size + rows * (tile + CAPTION)), "white")
    draw = ImageDraw.Draw(panel)
    top = [
        (crop, "input crop"),
        (segmentation_overlay(crop, segm_logits), "2D part branch"),
        (attention_overlay(crop, attention), "part attention (strongest part)"),
    ]
    for index, (image, caption) in enumerate(top):
        panel.paste(Image.fromarray(image), (index * size, CAPTION))
        draw.text((index * size + 4, 2), caption, fill="black")
    for part, attention_map in enumerate(attention):
        x = (part % GRID_COLUMNS) * tile
        y = CAPTION + size + (part // GRID_COLUMNS) * (tile + CAPTION)
        draw.rectangle((x + 3, y + 3, x + 12, y + 12), fill=tuple(int(c) for c in PART_COLORS[part]))
        draw.text((x + 16, y + 2), PART_NAMES[part], fill="black")
        panel.paste(Image.fromarray(heat_tile(crop, attention_map, tile)), (x, y + CAPTION))
    return panel
