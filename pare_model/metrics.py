"""Evaluation metrics with PARE's 14-joint protocol: MPJPE, PA-MPJPE, PVE, and a streaming accumulator.

The protocol, as the original evaluation does it (``pare/core/trainer.py`` ``validation_step``
for the prediction, ``pare/dataset/base_dataset.py`` for the ground truth):

1. The 17 Human3.6M joints are regressed from the mesh with ``J_regressor_h36m``
   (:class:`~pare_model.body_model.BodyModel` output ``h36m_joints``), for the prediction and,
   on 3DPW, for the ground-truth mesh.
2. Both are centred on the H36M pelvis (joint 0), taken from the 17 joints before selecting,
   because the pelvis is not one of the 14.
3. The 14 LSP joints (:data:`~pare_model.joint_sets.H36M_TO_LSP14`) are kept.

:func:`protocol_joints` does steps 2 and 3. MPJPE is the mean Euclidean joint distance;
PA-MPJPE the same after a per-sample similarity Procrustes alignment (scale, rotation with the
reflection fix, translation) of the prediction to the ground truth. PVE, as the original
``compute_error_verts``, is the mean per-vertex distance with no alignment and no centring: both
meshes come from body-model layers without translation (the model frame, whose root position
depends only on the shape), so pass vertices without camera translation.

The global orientation error (:func:`orientation_error`) is the angle in degrees of the relative
rotation between the predicted and ground-truth root (global) rotations, both in the camera
frame. It tells a model that learned which way the person faces from one that only learned the
articulation: PA-MPJPE aligns the rotation away, MPJPE mixes it with the articulation.

Units: every function takes metres and returns millimetres.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pare_model.geometry import procrustes_align
from pare_model.joint_sets import H36M_JOINT_NAMES, H36M_TO_LSP14

MM_PER_METRE = 1000.0

H36M_PELVIS = H36M_JOINT_NAMES.index("pelvis")
"""Index of the root of the protocol in the 17 H36M joints (0)."""

METRICS = ("mpjpe", "pa_mpjpe", "pve")

ORIENTATION = "orient_error"
"""Name of the global orientation error (degrees) in results and logs."""


def _check_points(pred: torch.Tensor, gt: torch.Tensor) -> None:
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(
            f"expected prediction and ground truth of the same shape (B, N, 3), got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )


def protocol_joints(h36m_joints: torch.Tensor) -> torch.Tensor:
    """(B, 17, 3) H36M joints -> (B, 14, 3) LSP joints centred on the H36M pelvis."""
    if h36m_joints.shape[-2:] != (len(H36M_JOINT_NAMES), 3):
        raise ValueError(f"expected (B, 17, 3) H36M joints, got {tuple(h36m_joints.shape)}")
    pelvis = h36m_joints[:, H36M_PELVIS : H36M_PELVIS + 1]
    return h36m_joints[:, list(H36M_TO_LSP14)] - pelvis


def per_joint_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) vs (B, J, 3) joints in metres -> (B, J) Euclidean errors in mm."""
    _check_points(pred, gt)
    return torch.linalg.vector_norm(pred - gt, dim=-1) * MM_PER_METRE


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) vs (B, J, 3) joints in metres -> (B,) mean per-joint position error in mm."""
    return per_joint_error(pred, gt).mean(dim=-1)


def pa_per_joint_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) vs (B, J, 3) joints in metres -> (B, J) errors in mm after Procrustes alignment.

    The alignment runs in float64: the SVD of near-degenerate poses is noisy in float32.
    """
    _check_points(pred, gt)
    aligned = procrustes_align(pred.double(), gt.double())
    return per_joint_error(aligned, gt.double()).to(pred.dtype)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) vs (B, J, 3) joints in metres -> (B,) Procrustes-aligned MPJPE in mm."""
    return pa_per_joint_error(pred, gt).mean(dim=-1)


def pve(pred_vertices: torch.Tensor, gt_vertices: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) vs (B, V, 3) vertices in metres -> (B,) mean per-vertex error in mm, unaligned."""
    return mpjpe(pred_vertices, gt_vertices)


def orientation_error(pred_root: torch.Tensor, gt_root: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) vs (B, 3, 3) root rotation matrices -> (B,) angle of ``pred^T gt`` in degrees (0 to 180).

    Computed as ``atan2(|axis|, cos)`` of the relative rotation in float64, which stays accurate
    near 0 and 180 degrees, where ``acos`` of the trace loses precision.
    """
    if pred_root.shape != gt_root.shape or pred_root.shape[-2:] != (3, 3) or pred_root.ndim != 3:
        raise ValueError(
            f"expected root rotations of the same shape (B, 3, 3), got {tuple(pred_root.shape)} and {tuple(gt_root.shape)}"
        )
    relative = pred_root.double().transpose(-1, -2) @ gt_root.double()
    cosine = (relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    skew = torch.stack(
        [
            relative[:, 2, 1] - relative[:, 1, 2],
            relative[:, 0, 2] - relative[:, 2, 0],
            relative[:, 1, 0] - relative[:, 0, 1],
        ],
        dim=-1,
    )
    sine = torch.linalg.vector_norm(skew, dim=-1) / 2.0
    return torch.rad2deg(torch.atan2(sine, cosine)).to(
        pred_root.dtype if pred_root.is_floating_point() else torch.float64
    )


def _numpy(values: torch.Tensor) -> np.ndarray:
    return values.detach().to("cpu", torch.float64).numpy()


class MetricAccumulator:
    """Streams MPJPE, PA-MPJPE and PVE over a dataset as float64 sums and counts.

    Two accumulators (e.g. from two workers) combine exactly with :meth:`merge`; :meth:`state`
    is a picklable dict of numpy arrays that :meth:`from_state` turns back into one. With
    ``keep_per_sample`` it also keeps every sample's errors as float32 (4 (3 + 2 J) bytes a
    sample: 124 bytes for 14 joints) and its id, for per-sequence and occlusion analyses.
    Batches that give root rotations add the global orientation error; its per-sample angles are
    always kept (8 bytes a sample), for the median.

    Args:
        num_joints: joints per sample (14 for the protocol).
        keep_per_sample: whether to keep per-sample values (off: memory does not grow).
    """

    def __init__(self, num_joints: int = len(H36M_TO_LSP14), keep_per_sample: bool = False) -> None:
        self.num_joints = num_joints
        self.keep_per_sample = keep_per_sample
        self.count = 0
        self.pve_count = 0
        self.sums = {name: 0.0 for name in METRICS}
        self.joint_sums = {name: np.zeros(num_joints) for name in METRICS[:2]}
        self._samples: dict[str, list[np.ndarray]] = {
            name: [] for name in METRICS + ("per_joint_mpjpe", "per_joint_pa_mpjpe")
        }
        self._sample_ids: list[Any] = []
        self._orientation: list[np.ndarray] = []

    def update(
        self,
        pred_joints: torch.Tensor,
        gt_joints: torch.Tensor,
        pred_vertices: torch.Tensor | None = None,
        gt_vertices: torch.Tensor | None = None,
        sample_ids: Sequence[Any] | None = None,
        pred_root: torch.Tensor | None = None,
        gt_root: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: (B, J, 3) protocol joints, optional (B, V, 3) meshes, in metres, and optional
        (B, 3, 3) root rotations in the camera frame (for the global orientation error)."""
        pred_joints, gt_joints = torch.as_tensor(pred_joints), torch.as_tensor(gt_joints)
        _check_points(pred_joints, gt_joints)
        batch, joints = pred_joints.shape[:2]
        if joints != self.num_joints:
            raise ValueError(f"this accumulator takes {self.num_joints} joints a sample, got {joints}")
        if (pred_vertices is None) != (gt_vertices is None):
            raise ValueError("give both pred_vertices and gt_vertices, or neither")
        if sample_ids is not None and len(sample_ids) != batch:
            raise ValueError(f"got {len(sample_ids)} sample ids for a batch of {batch}")
        if (pred_root is None) != (gt_root is None):
            raise ValueError("give both pred_root and gt_root, or neither")
        if pred_root is not None:
            angles = _numpy(orientation_error(torch.as_tensor(pred_root), torch.as_tensor(gt_root)))
            if len(angles) != batch:
                raise ValueError(f"got {len(angles)} root rotations for a batch of {batch}")
            self._orientation.append(angles)
        pred_joints, gt_joints = pred_joints.double(), gt_joints.double()
        errors = {"mpjpe": _numpy(per_joint_error(pred_joints, gt_joints))}  # (B, J)
        errors["pa_mpjpe"] = _numpy(pa_per_joint_error(pred_joints, gt_joints))
        vertex_errors = np.full(batch, np.nan)
        if pred_vertices is not None:
            vertex_errors = _numpy(pve(torch.as_tensor(pred_vertices).double(), torch.as_tensor(gt_vertices).double()))
            self.sums["pve"] += float(vertex_errors.sum())
            self.pve_count += batch
        self.count += batch
        for name, per_joint in errors.items():
            self.sums[name] += float(per_joint.mean(axis=1).sum())
            self.joint_sums[name] += per_joint.sum(axis=0)
        if self.keep_per_sample:
            for name, per_joint in errors.items():
                self._samples[name].append(per_joint.mean(axis=1).astype(np.float32))
                self._samples[f"per_joint_{name}"].append(per_joint.astype(np.float32))
            self._samples["pve"].append(vertex_errors.astype(np.float32))
            self._sample_ids.extend(sample_ids if sample_ids is not None else [None] * batch)

    def compute(self) -> dict[str, float]:
        """Means in mm: ``mpjpe``, ``pa_mpjpe``, ``pve`` (when any batch had vertices), and the counts;
        ``orient_error`` and ``orient_error_median`` in degrees when any batch had root rotations."""
        if self.count == 0:
            raise ValueError("no samples were added to this MetricAccumulator")
        result = {name: self.sums[name] / self.count for name in METRICS[:2]}
        if self.pve_count:
            result["pve"] = self.sums["pve"] / self.pve_count
        if self._orientation:
            angles = np.concatenate(self._orientation)
            result[ORIENTATION] = float(angles.mean())
            result[f"{ORIENTATION}_median"] = float(np.median(angles))
        return result | {"num_samples": self.count, "num_pve_samples": self.pve_count}

    def per_joint(self) -> dict[str, np.ndarray]:
        """(J,) mean errors in mm per joint: ``mpjpe`` and ``pa_mpjpe``."""
        if self.count == 0:
            raise ValueError("no samples were added to this MetricAccumulator")
        return {name: sums / self.count for name, sums in self.joint_sums.items()}

    def per_sample(self) -> dict[str, Any]:
        """Every sample's float32 errors in mm, in update order: ``mpjpe``, ``pa_mpjpe``, ``pve``
        (NaN where no vertices) (N,), ``per_joint_mpjpe``, ``per_joint_pa_mpjpe`` (N, J), and
        ``sample_ids`` (None where not given)."""
        if not self.keep_per_sample:
            raise ValueError("per-sample values were not kept; create the MetricAccumulator with keep_per_sample=True")
        empty = {name: np.zeros((0,), np.float32) for name in METRICS}
        empty |= {f"per_joint_{name}": np.zeros((0, self.num_joints), np.float32) for name in METRICS[:2]}
        arrays = {name: np.concatenate(chunks) if chunks else empty[name] for name, chunks in self._samples.items()}
        return arrays | {"sample_ids": list(self._sample_ids)}

    def state(self) -> dict[str, Any]:
        """Sums, counts and (if kept) per-sample values; picklable, for :meth:`from_state`."""
        state: dict[str, Any] = {
            "num_joints": self.num_joints,
            "keep_per_sample": self.keep_per_sample,
            "count": self.count,
            "pve_count": self.pve_count,
            "sums": dict(self.sums),
            "joint_sums": {name: sums.copy() for name, sums in self.joint_sums.items()},
            "orientation": np.concatenate(self._orientation) if self._orientation else np.zeros(0),
        }
        if self.keep_per_sample:
            state["per_sample"] = self.per_sample()
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MetricAccumulator:
        accumulator = cls(state["num_joints"], state["keep_per_sample"])
        accumulator.count = int(state["count"])
        accumulator.pve_count = int(state["pve_count"])
        accumulator.sums = {name: float(value) for name, value in state["sums"].items()}
        accumulator.joint_sums = {name: np.array(sums, np.float64) for name, sums in state["joint_sums"].items()}
        orientation = np.asarray(state.get("orientation", ()), np.float64)
        accumulator._orientation = [orientation] if len(orientation) else []
        if accumulator.keep_per_sample:
            per_sample = dict(state["per_sample"])
            accumulator._sample_ids = list(per_sample.pop("sample_ids"))
            accumulator._samples = {name: [np.asarray(values, np.float32)] for name, values in per_sample.items()}
        return accumulator

    def merge(self, other: MetricAccumulator | Mapping[str, Any]) -> MetricAccumulator:
        """Add another accumulator (or its :meth:`state`) into this one; returns self.

        If this one keeps per-sample values the other must too; the other's come after ours.
        """
        if not isinstance(other, MetricAccumulator):
            other = MetricAccumulator.from_state(other)
        if other.num_joints != self.num_joints:
            raise ValueError(f"cannot merge accumulators of {self.num_joints} and {other.num_joints} joints")
        if self.keep_per_sample and not other.keep_per_sample:
            raise ValueError("cannot merge an accumulator without per-sample values into one that keeps them")
        self.count += other.count
        self.pve_count += other.pve_count
        for name in METRICS:
            self.sums[name] += other.sums[name]
        for name in self.joint_sums:
            self.joint_sums[name] = self.joint_sums[name] + other.joint_sums[name]
        self._orientation.extend(other._orientation)
        if self.keep_per_sample:
            for name, chunks in other._samples.items():
                self._samples[name].extend(chunks)
            self._sample_ids.extend(other._sample_ids)
        return self
