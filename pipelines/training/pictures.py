"""Pictures logged during training: what the network sees and predicts, a few samples per sheet.

One row per sample: the augmented input with the predicted mesh drawn over it, the ground-truth
part labels, the predicted part labels (PARE head), and the combined part attention.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from pipelines.visualize.attention import attention_overlay, segmentation_overlay
from pipelines.visualize.mesh_overlay import draw_meshes
from pipelines.visualize.overlays import overlay_labels

COLUMNS = ("input + predicted mesh", "ground-truth parts", "predicted parts", "part attention")
CAPTION = 14


def _labels_at(labels: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)


@torch.no_grad()
def training_sheet(batch: dict, pred: dict, faces: np.ndarray, focal_length: float, max_rows: int = 4) -> Image.Image:
    """A (rows x 4) sheet of the first samples of a batch and their predictions."""
    images = batch["image"].cpu().numpy()
    rows = min(max_rows, len(images))
    size = images.shape[1]
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    sheet = Image.new("RGB", (size * len(COLUMNS), rows * size + CAPTION), "white")
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(COLUMNS):
        draw.text((column * size + 3, 1), title, fill="black")
    for row in range(rows):
        image = images[row]
        vertices = pred["pred_vertices"][row].float().cpu().numpy()
        cam = pred["pred_cam"][row].float().cpu().numpy()
        tiles = [
            np.asarray(draw_meshes(image, [(vertices, cam, identity)], faces, focal_length, size)),
            overlay_labels(image, _labels_at(batch["segm_mask"][row].cpu().numpy(), size)),
        ]
        if "pred_segm_mask" in pred:
            tiles.append(segmentation_overlay(image, pred["pred_segm_mask"][row].float().cpu().numpy()))
            tiles.append(attention_overlay(image, pred["pred_part_attention"][row].float().cpu().numpy()))
        for column, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (column * size, CAPTION + row * size))
    return sheet
