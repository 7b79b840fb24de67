"""Validation inside the training loop: MPJPE, PA-MPJPE, PVE and the global orientation error on the
validation shards, merged over ranks.

Ground truth is the body model posed with each sample's fit (has_smpl samples only), without
translation, as PARE's 3DPW protocol does; the prediction is the network's mesh. The mean-pose
baseline (the body model's mean pose and shape for every image) is measured on the same
samples, so "is it learning?" is one comparison.
"""

from __future__ import annotations

import torch

from pare_model.geometry import axis_angle_to_matrix, rot6d_to_matrix
from pare_model.image_input import to_model_input
from pare_model.metrics import MetricAccumulator, protocol_joints


def _mesh(body_model, rotations: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    output = body_model(rotations[:, :1], rotations[:, 1:], betas)
    return output["vertices"], protocol_joints(output["h36m_joints"])


@torch.no_grad()
def validate(
    model, loader, device: torch.device, memory_format: torch.memory_format = torch.channels_last
) -> tuple[MetricAccumulator, MetricAccumulator]:
    """(model metrics, mean-pose baseline metrics) over this rank's share of the validation set (in float32: the
    metrics of ``pare evaluate``)."""
    was_training = model.training
    model.eval()
    ours, baseline = MetricAccumulator(), MetricAccumulator()
    body_model = model.body_model
    mean_pose = rot6d_to_matrix(model.head.init_pose.reshape(-1, 24, 6)).to(device)  # (1, 24, 3, 3)
    mean_shape = model.head.init_shape.to(device)
    try:
        for batch in loader:
            keep = batch["has_smpl"] > 0
            if not keep.any():
                continue
            images = to_model_input(batch["image"][keep], device, memory_format)
            pose = batch["pose"][keep].to(device)
            betas = batch["betas"][keep].to(device)
            gt_rotations = axis_angle_to_matrix(pose.reshape(-1, 24, 3))
            gt_vertices, gt_joints = _mesh(body_model, gt_rotations, betas)
            pred = model(images)
            pred_vertices, pred_joints = _mesh(body_model, pred["pred_pose"], pred["pred_shape"])
            gt_root = gt_rotations[:, 0].cpu()
            ours.update(
                pred_joints.float().cpu(),
                gt_joints.cpu(),
                pred_vertices.float().cpu(),
                gt_vertices.cpu(),
                pred_root=pred["pred_pose"][:, 0].float().cpu(),
                gt_root=gt_root,
            )
            count = len(pose)
            base_rotations = mean_pose.expand(count, -1, -1, -1)
            base_vertices, base_joints = _mesh(body_model, base_rotations, mean_shape.expand(count, -1))
            baseline.update(
                base_joints.cpu(),
                gt_joints.cpu(),
                base_vertices.cpu(),
                gt_vertices.cpu(),
                pred_root=base_rotations[:, 0].cpu(),
                gt_root=gt_root,
            )
    finally:
        model.train(was_training)
    return ours, baseline


def merge_over_ranks(accumulator: MetricAccumulator) -> MetricAccumulator:
    """Every rank's accumulator merged (exactly) on every rank."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return accumulator
    states: list = [None] * dist.get_world_size()
    dist.all_gather_object(states, accumulator.state())
    merged = MetricAccumulator.from_state(states[0])
    for state in states[1:]:
        merged.merge(state)
    return merged
