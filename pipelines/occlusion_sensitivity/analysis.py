"""The occlusion sensitivity analysis of PARE's paper, on one unit of work.

For each image, a square patch filled with the normalisation mean (grey, zero after
normalisation) is put at every position of a grid over the network input, and the model
predicts on each occluded copy. Per position it records the 14 protocol joints' errors (MPJPE
and PA-MPJPE), and how many pixels of each body part (the ground-truth part labels, at input
resolution) the patch hides, so that error increases can be attributed to parts (Figure 3).

The patch size and stride are given on a 224 input and scaled to ``model.image_size``; patches
start every ``stride`` pixels from 0 and are clipped at the border, so 40 / 40 on 224 gives the
paper's 6 x 6 grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from pare_model.image_input import IMAGENET_MEAN
from pipelines.evaluation.measure import Unit, ground_truth, measure, unit_batches
from pipelines.evaluation.predictors import EvalContext

REFERENCE_SIZE = 224
MEAN_RGB = np.round(np.asarray(IMAGENET_MEAN) * 255).astype(np.uint8)
NUM_PARTS = 24
LSP14_IN_SPIN49 = np.arange(25, 39)
"""The 14 LSP joints among SPIN's 49 2D keypoints (its 24 ground-truth joints start at 25)."""
LSP14_IN_OPENPOSE = np.array([11, 10, 9, 12, 13, 14, 4, 3, 2, 5, 6, 7, 1, 0])
"""The nearest of SPIN's first 25 (OpenPose) keypoints to each LSP joint (the nose stands in for the head top),
used where a dataset has no ground-truth 2D joint (3DPW)."""


@dataclass(frozen=True)
class Grid:
    """Patch boxes over an ``image_size`` square input: (rows * cols, 4) as y0, x0, y1, x1."""

    image_size: int
    patch: int
    stride: int

    @classmethod
    def scaled(cls, image_size: int, patch_224: int, stride_224: int) -> Grid:
        scale = image_size / REFERENCE_SIZE
        return cls(image_size, max(1, round(patch_224 * scale)), max(1, round(stride_224 * scale)))

    @property
    def side(self) -> int:
        return math.ceil(self.image_size / self.stride)

    def boxes(self) -> np.ndarray:
        starts = np.arange(self.side) * self.stride
        boxes = [
            (y, x, min(y + self.patch, self.image_size), min(x + self.patch, self.image_size))
            for y in starts
            for x in starts
        ]
        return np.array(boxes, dtype=np.int64)


def occluded_copies(image: torch.Tensor, boxes: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 image -> (P, S, S, 3): one copy per box, the box filled with the mean colour."""
    copies = image.unsqueeze(0).repeat(len(boxes), 1, 1, 1)
    fill = torch.as_tensor(MEAN_RGB, dtype=copies.dtype)
    for index, (y0, x0, y1, x1) in enumerate(boxes):
        copies[index, y0:y1, x0:x1] = fill
    return copies


def part_coverage(labels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(P, 24) pixels of each body part (labels 1..24) inside each box."""
    coverage = np.zeros((len(boxes), NUM_PARTS), np.int32)
    for index, (y0, x0, y1, x1) in enumerate(boxes):
        counts = np.bincount(labels[y0:y1, x0:x1].ravel(), minlength=NUM_PARTS + 1)
        coverage[index] = counts[1 : NUM_PARTS + 1]
    return coverage


@dataclass
class OcclusionPart:
    """Per image: clean (14,) and occluded (side, side, 14) errors, part coverage, and a few crops to draw."""

    grid: Grid
    keys: list[str] = field(default_factory=list)
    clean_mpjpe: list[np.ndarray] = field(default_factory=list)
    clean_pa_mpjpe: list[np.ndarray] = field(default_factory=list)
    mpjpe: list[np.ndarray] = field(default_factory=list)
    pa_mpjpe: list[np.ndarray] = field(default_factory=list)
    coverage: list[np.ndarray] = field(default_factory=list)
    joints_2d: list[np.ndarray] = field(default_factory=list)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    image_sum: np.ndarray | None = None  # float64 (S, S, 3): for the mean crop, without keeping every crop

    def add_image(self, key: str, image: np.ndarray, keep: bool) -> None:
        self.image_sum = image.astype(np.float64) + (0.0 if self.image_sum is None else self.image_sum)
        if keep:
            self.images[key] = image

    def mean_image(self) -> np.ndarray:
        return (self.image_sum / max(len(self), 1)).round().astype(np.uint8)

    def extend(self, other: OcclusionPart) -> OcclusionPart:
        for name in ("keys", "clean_mpjpe", "clean_pa_mpjpe", "mpjpe", "pa_mpjpe", "coverage", "joints_2d"):
            getattr(self, name).extend(getattr(other, name))
        self.images |= other.images
        if other.image_sum is not None:
            self.image_sum = other.image_sum + (0.0 if self.image_sum is None else self.image_sum)
        return self

    def __len__(self) -> int:
        return len(self.keys)

    def arrays(self) -> dict[str, np.ndarray]:
        side = self.grid.side
        shapes = {
            "clean_mpjpe": (0, 14),
            "clean_pa_mpjpe": (0, 14),
            "mpjpe": (0, side, side, 14),
            "pa_mpjpe": (0, side, side, 14),
            "coverage": (0, side, side, NUM_PARTS),
            "joints_2d": (0, 14, 3),
        }
        return {
            name: np.stack(getattr(self, name)) if getattr(self, name) else np.zeros(shape, np.float32)
            for name, shape in shapes.items()
        }


def _one_image(
    context: EvalContext, batch: dict, index: int, grid: Grid, batch_size: int
) -> dict[str, np.ndarray] | None:
    single = {k: v[index : index + 1] if isinstance(v, torch.Tensor) else [v[index]] for k, v in batch.items()}
    target = ground_truth(context, single)
    if not target.keep.any():
        return None
    boxes = grid.boxes()
    copies = torch.cat([single["image"], occluded_copies(single["image"][0], boxes)])
    chunks = []
    for start in range(0, len(copies), batch_size):
        images = copies[start : start + batch_size]
        repeated = {
            k: v.expand(len(images), *v.shape[1:]) if isinstance(v, torch.Tensor) else v for k, v in single.items()
        }
        repeated_target = type(target)(
            target.keep.expand(len(images)),
            target.joints.expand(len(images), -1, -1),
            target.vertices.expand(len(images), -1, -1),
            target.has_vertices.expand(len(images)),
            target.root.expand(len(images), -1, -1),
        )
        chunks.append(measure(context, context.predictor, images, repeated, repeated_target))
    joints = {name: np.concatenate([c[f"per_joint_{name}"] for c in chunks]) for name in ("mpjpe", "pa_mpjpe")}
    labels = single["segm_mask"][0].numpy()
    keypoints = single["keypoints"][0].numpy()
    truth, openpose = keypoints[LSP14_IN_SPIN49], keypoints[LSP14_IN_OPENPOSE]
    joints_2d = np.where(truth[:, 2:] > 0, truth, openpose)  # (14, 3) in [-1, 1] with confidence
    return {
        "clean_mpjpe": joints["mpjpe"][0],
        "clean_pa_mpjpe": joints["pa_mpjpe"][0],
        "mpjpe": joints["mpjpe"][1:].reshape(grid.side, grid.side, 14),
        "pa_mpjpe": joints["pa_mpjpe"][1:].reshape(grid.side, grid.side, 14),
        "coverage": part_coverage(labels, boxes).reshape(grid.side, grid.side, NUM_PARTS),
        "joints_2d": np.concatenate(
            [(joints_2d[:, :2] + 1.0) * grid.image_size / 2.0, joints_2d[:, 2:] > 0], axis=1
        ).astype(np.float32),  # (14, 3): pixels and whether known
    }


def analyse_unit(
    context: EvalContext, unit: Unit, patch: int, stride: int, batch_size: int, keep_images: int
) -> OcclusionPart:
    """The analysis of every image with a fit or 3D joints in a unit; the first ``keep_images`` crops are kept
    (for per-image figures) and the others only summed (for the mean crop), so memory does not grow with them."""
    grid = Grid.scaled(context.image_size, patch, stride)
    part = OcclusionPart(grid)
    for batch in unit_batches(unit, context.image_size, batch_size=1, label_size=context.image_size):
        if not (batch["has_smpl"][0] > 0 or batch["has_joints_3d"][0] > 0):
            continue
        result = _one_image(context, batch, 0, grid, batch_size)
        if result is None:  # its 3D joints lack an evaluated joint
            continue
        key = batch["key"][0]
        part.keys.append(key)
        for name, value in result.items():
            getattr(part, name).append(value)
        part.add_image(key, batch["image"][0].numpy(), keep=len(part.images) < keep_images)
    return part


FAR_PATCHES = 2.0
"""A patch is "far" from a joint when its centre is at least this many patch sides away from it."""


def local_sensitivity(errors: np.ndarray, clean: np.ndarray, joints_2d: np.ndarray, grid: Grid) -> dict[str, float]:
    """How much more the error of a joint rises when the patch covers it than when the patch is far from it.

    Args:
        errors: (N, side, side, 14) per-joint errors with the patch at each position; clean: (N, 14) without it.
        joints_2d: (N, 14, 3) joint pixels on the input and whether they are known.

    Returns ``near`` (mean increase over the joints, with the patch over the joint: the box holding it),
    ``far`` (mean increase with the patch centre at least :data:`FAR_PATCHES` patch sides away), both in the
    errors' unit and averaged per joint over images first, and ``ratio`` = near / far. When far is not an
    increase (<= 0) the ratio is inf if near is one, and 0 if neither is: a patch on the joint that lowers its error
    is no local sensitivity, however much more it lowers it than a patch far away.
    A model that uses local evidence has a ratio well above 1; one that does not, about 1.
    """
    boxes = grid.boxes().astype(np.float64)  # (P, 4): y0, x0, y1, x1
    centres = np.stack([(boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2], axis=1)  # (P, 2) x, y
    increase = errors.reshape(len(errors), -1, errors.shape[-1]) - clean[:, None, :]  # (N, P, 14)
    near_sum, far_sum = np.zeros(increase.shape[-1]), np.zeros(increase.shape[-1])
    near_count, far_count = np.zeros(increase.shape[-1]), np.zeros(increase.shape[-1])
    for image, joints in zip(increase, joints_2d, strict=True):
        for joint, (x, y, known) in enumerate(joints):
            if not known or not (0 <= x < grid.image_size and 0 <= y < grid.image_size):
                continue
            inside = (boxes[:, 1] <= x) & (x < boxes[:, 3]) & (boxes[:, 0] <= y) & (y < boxes[:, 2])
            far = np.hypot(centres[:, 0] - x, centres[:, 1] - y) >= FAR_PATCHES * grid.patch
            if inside.any() and far.any():
                near_sum[joint] += image[inside, joint].mean()
                far_sum[joint] += image[far, joint].mean()
                near_count[joint] += 1
                far_count[joint] += 1
    seen = near_count > 0
    if not seen.any():
        return {"near": float("nan"), "far": float("nan"), "ratio": float("nan")}
    near = float((near_sum[seen] / near_count[seen]).mean())
    far = float((far_sum[seen] / far_count[seen]).mean())
    return {"near": near, "far": far, "ratio": _ratio(near, far)}


def _ratio(near: float, far: float) -> float:
    """near / far where far is an increase; else inf if the patch on the joint still raises its error, else 0."""
    if far > 0:
        return near / far
    return float("inf") if near > 0 else 0.0
