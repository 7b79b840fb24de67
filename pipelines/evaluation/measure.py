"""Per-sample errors with PARE's protocol, for one batch and for one unit of work (part of a shard folder).

Ground truth per sample (:func:`ground_truth`):

- joints: the dataset's 3D joints when it has them (Human3.6M, MPI-INF-3DHP: SPIN's 24 ground-truth joints,
  of which the protocol takes slots 0-12 and 18 "Head (H36M)", SPIN's and PARE's ``J24_TO_J14``, centred on
  slot 14, the pelvis; SPIN's root-centred files have it at 0 already, as the original assumes), else the
  H36M-regressor joints of the body model posed with the sample's fit (3DPW), centred on the H36M pelvis.
  A sample whose 3D joints lack one of those 15 (validity 0) is left out and counted (``missing_joints``),
  never scored against a zero;
- vertices (for PVE): the body model posed with the fit, when the sample has one (neutral body,
  no translation, as PARE's 3DPW protocol).

The prediction's joints are always the 14 protocol joints of its mesh. Errors are in mm; the global
orientation error (``orient_error``, :func:`pare_model.metrics.orientation_error`) is in degrees
and needs a fit (NaN without one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from pare_model.geometry import axis_angle_to_matrix
from pare_model.joint_sets import GT24_PELVIS, GT24_TO_LSP14
from pare_model.metrics import orientation_error, pa_per_joint_error, per_joint_error, protocol_joints, pve
from pipelines.evaluation.predictors import EvalContext, Predictor
from pipelines.evaluation.subsets import sequence_of, subsets_of

EVALUATED_SLOTS = (*GT24_TO_LSP14, GT24_PELVIS)
"""The slots of a dataset's 24 3D joints the protocol needs: the 14 joints and the pelvis they are centred on."""

ERROR_FIELDS = ("mpjpe", "pa_mpjpe", "pve", "orient_error", "per_joint_mpjpe", "per_joint_pa_mpjpe")


@dataclass(frozen=True)
class Target:
    """Ground truth of the usable samples of a batch."""

    keep: torch.Tensor  # (B,) bool: samples with any 3D ground truth
    joints: torch.Tensor  # (K, 14, 3) protocol joints, metres
    vertices: torch.Tensor  # (K, V, 3), NaN rows for samples without a fit
    has_vertices: torch.Tensor  # (K,) bool
    root: torch.Tensor  # (K, 3, 3) root rotation in the camera frame, NaN for samples without a fit
    incomplete: torch.Tensor | None = None  # (B,) bool: 3D joints that lack an evaluated joint (not kept)


def body_mesh(body_model, rotations: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertices (B, V, 3), protocol joints (B, 14, 3)) of the body model posed without translation."""
    output = body_model(rotations[:, :1], rotations[:, 1:], betas)
    return output["vertices"], protocol_joints(output["h36m_joints"])


@torch.no_grad()
def ground_truth(context: EvalContext, batch: dict) -> Target:
    has_smpl = batch["has_smpl"] > 0
    has_joints = batch["has_joints_3d"] > 0
    complete = (batch["joints_3d"][:, list(EVALUATED_SLOTS), 3] > 0).all(dim=1)
    keep = (has_smpl & ~has_joints) | (has_joints & complete)
    device = context.device
    pose = batch["pose"][keep].reshape(-1, 24, 3).float().to(device)
    rotations = axis_angle_to_matrix(pose)
    vertices, mesh_joints = body_mesh(context.body_model, rotations, batch["betas"][keep].float().to(device))
    dataset_joints = batch["joints_3d"][keep][..., :3].float().to(device)
    dataset_joints = dataset_joints[:, list(GT24_TO_LSP14)] - dataset_joints[:, GT24_PELVIS : GT24_PELVIS + 1]
    use_dataset = has_joints[keep].to(device)[:, None, None]
    joints = torch.where(use_dataset, dataset_joints, mesh_joints)
    smpl = has_smpl[keep].to(device)
    vertices = torch.where(smpl[:, None, None], vertices, torch.full_like(vertices, float("nan")))
    root = torch.where(smpl[:, None, None], rotations[:, 0], torch.full_like(rotations[:, 0], float("nan")))
    return Target(keep, joints, vertices, smpl, root, has_joints & ~complete)


def errors(
    pred_joints: torch.Tensor, pred_vertices: torch.Tensor, pred_root: torch.Tensor, target: Target
) -> dict[str, np.ndarray]:
    """Per-sample float32 errors: mpjpe, pa_mpjpe, pve (mm), orient_error (degrees) (K,), NaN where the sample
    has no fit (pve, orient_error), and per joint (K, 14) in mm."""
    joints = per_joint_error(pred_joints.double(), target.joints.double())
    aligned = pa_per_joint_error(pred_joints.double(), target.joints.double())
    vertex = pve(pred_vertices.double(), target.vertices.double())
    values = {
        "mpjpe": joints.mean(dim=1),
        "pa_mpjpe": aligned.mean(dim=1),
        "pve": vertex,
        "orient_error": orientation_error(pred_root.double(), target.root.double()),
        "per_joint_mpjpe": joints,
        "per_joint_pa_mpjpe": aligned,
    }
    return {name: value.cpu().numpy().astype(np.float32) for name, value in values.items()}


@torch.no_grad()
def measure(
    context: EvalContext, predictor: Predictor, images: torch.Tensor, batch: dict, target: Target
) -> dict[str, np.ndarray]:
    """Errors of ``predictor`` on ``images`` (the usable samples only) against ``target``."""
    rotations, betas = predictor(images[target.keep], {k: v[target.keep] for k, v in _tensors(batch).items()})
    rotations = rotations.to(context.device)
    vertices, joints = body_mesh(context.body_model, rotations, betas.to(context.device))
    return errors(joints, vertices, rotations[:, 0], target)


@torch.no_grad()
def measure_baseline(context: EvalContext, target: Target) -> dict[str, np.ndarray]:
    """Errors of the mean pose and shape (one body, posed once per context) against ``target``."""
    if context.mean_mesh is None:
        context.mean_mesh = body_mesh(context.body_model, context.mean_rotations, context.mean_shape)
    vertices, joints = context.mean_mesh
    count = len(target.joints)
    root = context.mean_rotations[:, 0].to(joints.device).expand(count, -1, -1)
    return errors(joints.expand(count, -1, -1), vertices.expand(count, -1, -1), root, target)


def _tensors(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


@dataclass
class EvalPart:
    """Per-sample results of a set of samples; parts concatenate with :meth:`extend`."""

    keys: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    subsets: list[list[str]] = field(default_factory=list)
    model: dict[str, list[np.ndarray]] = field(default_factory=lambda: {name: [] for name in ERROR_FIELDS})
    baseline: dict[str, list[np.ndarray]] = field(default_factory=lambda: {name: [] for name in ERROR_FIELDS})
    without_ground_truth: int = 0
    unreadable: int = 0
    missing_joints: int = 0
    """Samples left out because their 3D joints lack a joint the protocol evaluates."""
    non_finite: int = 0
    """Samples left out because their ground truth holds NaN or infinity (:mod:`pipelines.data.samples`)."""

    def count_left_out(self, target: Target) -> None:
        """Count the samples of a batch that ``target`` leaves out, by why."""
        missing = int(target.incomplete.sum()) if target.incomplete is not None else 0
        self.missing_joints += missing
        self.without_ground_truth += int((~target.keep).sum()) - missing

    def add(self, batch: dict, target: Target, model: dict, baseline: dict | None) -> None:
        kept = target.keep.tolist()
        self.count_left_out(target)
        for index, keep in enumerate(kept):
            if keep:
                dataset, extra = batch["dataset"][index], batch["extra"][index]
                self.keys.append(batch["key"][index])
                self.datasets.append(dataset)
                self.sequences.append(sequence_of(dataset, extra))
                self.subsets.append(subsets_of(dataset, extra))
        for name in ERROR_FIELDS:
            self.model[name].append(model[name])
            if baseline is not None:
                self.baseline[name].append(baseline[name])

    def extend(self, other: EvalPart) -> EvalPart:
        for name in ("keys", "datasets", "sequences", "subsets"):
            getattr(self, name).extend(getattr(other, name))
        for mine, theirs in ((self.model, other.model), (self.baseline, other.baseline)):
            for name in ERROR_FIELDS:
                mine[name].extend(theirs[name])
        self.without_ground_truth += other.without_ground_truth
        self.unreadable += other.unreadable
        self.missing_joints += other.missing_joints
        self.non_finite += other.non_finite
        return self

    def arrays(self, which: str = "model") -> dict[str, np.ndarray]:
        """Concatenated errors of the model (or the ``baseline``): (N,) and (N, 14) float32 arrays."""
        chunks = self.model if which == "model" else self.baseline
        shapes = {"per_joint_mpjpe": (0, 14), "per_joint_pa_mpjpe": (0, 14)}
        return {
            name: np.concatenate(chunks[name]) if chunks[name] else np.zeros(shapes.get(name, (0,)), np.float32)
            for name in ERROR_FIELDS
        }

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Unit:
    """A unit of work: the samples ``index % parts == part`` of these shards (the first ``max_samples``)."""

    urls: tuple[str, ...]
    part: int = 0
    parts: int = 1
    max_samples: int = 0


def unit_batches(
    unit: Unit, image_size: int, batch_size: int, label_size: int = 56, context: EvalContext | None = None
) -> Iterator[dict]:
    """Batches of un-augmented examples of a unit, read with the training loader's validation stream: decoded in
    ``context.loader_workers`` loader processes (a GPU actor's), else in this process."""
    from pipelines.config.train import LoaderConfig
    from pipelines.data.stream import ValidationStream, make_loader

    workers = context.loader_workers if context is not None else 0
    config = LoaderConfig(batch_size=batch_size, num_workers=workers, label_size=label_size)
    stream = ValidationStream(unit.urls, config, image_size, unit.part, unit.parts, unit.max_samples)
    return iter(make_loader(stream, config, drop_last=False, device=context.device if context else None))


def evaluate_unit(context: EvalContext, unit: Unit, batch_size: int, baseline: bool) -> EvalPart:
    """Errors of the context's predictor (and the mean-pose baseline) on every usable sample of a unit."""
    from pipelines.data.samples import NON_FINITE, SKIPPED

    part = EvalPart()
    SKIPPED.clear()
    for batch in unit_batches(unit, context.image_size, batch_size, context=context):
        part.non_finite += int(batch["non_finite"].sum())
        part.unreadable += int(batch["skipped"].sum()) - int(batch["non_finite"].sum())
        target = ground_truth(context, batch)
        if not target.keep.any():
            part.count_left_out(target)
            continue
        ours = measure(context, context.predictor, batch["image"], batch, target)
        base = measure_baseline(context, target) if baseline else None
        part.add(batch, target, ours, base)
    part.non_finite += SKIPPED[NON_FINITE]
    part.unreadable += sum(SKIPPED.values()) - SKIPPED[NON_FINITE]
    SKIPPED.clear()
    return part
