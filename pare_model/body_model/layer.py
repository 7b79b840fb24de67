"""The body model as a torch module: smplx's SMPL layer plus the SPIN/PARE joint sets.

It departs from smplx only in what it returns: besides vertices and smplx's 45 joints it
gives the 49 SPIN/PARE joints (smplx's joints plus the 9 of ``J_regressor_extra``), the 17
Human3.6M joints of ``J_regressor_h36m`` and the 14 evaluation joints taken from those. Poses
are rotation matrices, as PARE predicts them.

It runs in float32 under any autocast (:mod:`pare_model.full_precision`), and never waits for a GPU:
smplx's own skinning walks the kinematic tree with ``transform_chain[parents[i]]``, a Python list
indexed by its ``parents`` buffer, which on a GPU reads each index back from the device (23
synchronisations per forward pass; with the buffer on the CPU instead, the gather
``joints[:, parents[1:]]`` copies it to the device and waits, once). :func:`skin` is smplx's
``lbs`` for rotation matrices with the tree as Python integers and the gather index kept on the
module's device; smplx still reads the model file, and the outputs equal plain smplx's (tested).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import smplx
import torch
import torch.nn.functional as F
from smplx.lbs import blend_shapes, transform_mat, vertices2joints
from smplx.utils import Struct
from torch import nn

from pare_model.body_model.assets import BodyModelAssets
from pare_model.full_precision import float32
from pare_model.joint_sets import H36M_TO_LSP14, spin_joint_map

NUM_BETAS = 10


def skin(
    smpl: smplx.SMPLLayer, tree: tuple[int, ...], gather: torch.Tensor, rotations: torch.Tensor, betas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """smplx's ``lbs`` with ``pose2rot=False``: (vertices (B, V, 3), joints (B, 24, 3)) of ``rotations`` (B, 24, 3,
    3) and ``betas``; ``tree`` holds each joint's parent (the root's is ignored) and ``gather`` the parents of
    joints 1..23 as a tensor on the model's device."""
    batch = rotations.shape[0]
    shaped = smpl.v_template + blend_shapes(betas, smpl.shapedirs)
    rest_joints = vertices2joints(smpl.J_regressor, shaped)  # (B, 24, 3)
    identity = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    pose_feature = (rotations[:, 1:] - identity).reshape(batch, -1)
    posed = shaped + torch.matmul(pose_feature, smpl.posedirs).reshape(batch, -1, 3)
    relative = rest_joints.clone()
    relative[:, 1:] -= rest_joints[:, gather]
    local = transform_mat(rotations.reshape(-1, 3, 3), relative.reshape(-1, 3, 1)).reshape(batch, -1, 4, 4)
    chain = [local[:, 0]]
    for joint in range(1, len(tree)):
        chain.append(torch.matmul(chain[tree[joint]], local[:, joint]))
    transforms = torch.stack(chain, dim=1)  # (B, 24, 4, 4) joint frames in the world
    rest = F.pad(rest_joints.unsqueeze(-1), [0, 0, 0, 1])  # (B, 24, 4, 1), w = 0
    relative_transforms = transforms - F.pad(torch.matmul(transforms, rest), [3, 0, 0, 0, 0, 0, 0, 0])
    blended = torch.matmul(smpl.lbs_weights, relative_transforms.reshape(batch, -1, 16)).reshape(batch, -1, 4, 4)
    vertices = torch.matmul(blended[..., :3, :3], posed.unsqueeze(-1))[..., 0] + blended[..., :3, 3]
    return vertices, transforms[:, :, :3, 3]


class BodyModel(nn.Module):
    """SMPL-format body model; joint maps and part ids live in buffers.

    Args:
        model: arrays of an SMPL model file (``v_template``, ``f``, ``weights``,
            ``J_regressor``, ``posedirs``, ``shapedirs``, ``kintree_table``).
        j_regressor_extra: (9, V) regressor of SPIN's extra joints.
        j_regressor_h36m: (17, V) regressor of the Human3.6M joints.
        part_map: optional (V,) part index 0..23 per vertex; by default the argmax of the
            skinning weights.
    """

    # Buffers registered in __init__ (declared for the type checker; they stay buffers).
    j_regressor_extra: torch.Tensor
    j_regressor_h36m: torch.Tensor
    spin_joint_map: torch.Tensor
    h36m_to_lsp14: torch.Tensor
    part_map: torch.Tensor
    parent_gather: torch.Tensor

    def __init__(
        self,
        model: Mapping[str, np.ndarray],
        j_regressor_extra: np.ndarray,
        j_regressor_h36m: np.ndarray,
        part_map: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        # smplx prints a warning about 10-component shape spaces on every construction.
        with contextlib.redirect_stdout(io.StringIO()):
            self.smpl = smplx.SMPLLayer(model_path="", data_struct=Struct(**model), num_betas=NUM_BETAS)
        float_kwargs: dict[str, Any] = {"dtype": torch.float32}
        self.register_buffer("j_regressor_extra", torch.as_tensor(j_regressor_extra, **float_kwargs))
        self.register_buffer("j_regressor_h36m", torch.as_tensor(j_regressor_h36m, **float_kwargs))
        self.register_buffer("spin_joint_map", torch.as_tensor(spin_joint_map(), dtype=torch.long))
        self.register_buffer("h36m_to_lsp14", torch.as_tensor(H36M_TO_LSP14, dtype=torch.long))
        if part_map is None:
            part_map = np.asarray(model["weights"]).argmax(axis=1)
        self.register_buffer("part_map", torch.as_tensor(part_map, dtype=torch.long))
        self.tree = tuple(int(parent) for parent in self.smpl.parents)
        self.register_buffer("parent_gather", self.smpl.parents[1:].clone(), persistent=False)

    @classmethod
    def from_assets(cls, assets: BodyModelAssets) -> BodyModel:
        return cls(assets.model, assets.j_regressor_extra, assets.j_regressor_h36m, assets.part_map)

    @property
    def faces(self) -> torch.Tensor:
        """(F, 3) long triangle indices."""
        return self.smpl.faces_tensor

    @property
    def parents(self) -> torch.Tensor:
        """(24,) parent of each joint, -1 for the root."""
        return self.smpl.parents

    @float32
    def forward(
        self,
        global_orient: torch.Tensor,
        body_pose: torch.Tensor,
        betas: torch.Tensor,
        transl: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Pose and shape the body.

        Args:
            global_orient: (B, 1, 3, 3) or (B, 3, 3) root rotation.
            body_pose: (B, 23, 3, 3) rotations of the other joints relative to their parents.
            betas: (B, 10) shape coefficients.
            transl: optional (B, 3) translation added to every output.

        Returns:
            ``vertices`` (B, V, 3), ``joints`` (B, 49, 3) SPIN/PARE order, ``smpl_joints``
            (B, 24, 3), ``h36m_joints`` (B, 17, 3) and ``lsp14_joints`` (B, 14, 3).
        """
        rotations = torch.cat([global_orient.reshape(-1, 1, 3, 3), body_pose.reshape(-1, 23, 3, 3)], dim=1)
        vertices, smpl_joints = skin(self.smpl, self.tree, self.parent_gather, rotations, betas)
        smplx_joints = self.smpl.vertex_joint_selector(vertices, smpl_joints)  # smplx's 45 joints
        if transl is not None:
            vertices = vertices + transl.unsqueeze(1)
            smplx_joints = smplx_joints + transl.unsqueeze(1)
        extra = vertices2joints(self.j_regressor_extra, vertices)
        joints = torch.cat([smplx_joints, extra], dim=1)[:, self.spin_joint_map]
        h36m = vertices2joints(self.j_regressor_h36m, vertices)
        return {
            "vertices": vertices,
            "joints": joints,
            "smpl_joints": smplx_joints[:, :24],
            "h36m_joints": h36m,
            "lsp14_joints": h36m[:, self.h36m_to_lsp14],
        }
