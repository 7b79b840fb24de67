"""The body model as a torch module: smplx's SMPL layer plus the SPIN/PARE joint sets.

It departs from smplx only in what it returns: besides vertices and smplx's 45 joints it
gives the 49 SPIN/PARE joints (smplx's joints plus the 9 of ``J_regressor_extra``), the 17
Human3.6M joints of ``J_regressor_h36m`` and the 14 evaluation joints taken from those. Poses
are rotation matrices, as PARE predicts them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import smplx
import torch
from smplx.lbs import vertices2joints
from smplx.utils import Struct
from torch import nn

from pare_model.body_model.assets import BodyModelAssets
from pare_model.joint_sets import H36M_TO_LSP14, spin_joint_map

NUM_BETAS = 10


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
        output = self.smpl(
            global_orient=global_orient.reshape(-1, 1, 3, 3),
            body_pose=body_pose,
            betas=betas,
            transl=transl,
        )
        vertices = output.vertices
        extra = vertices2joints(self.j_regressor_extra, vertices)
        joints = torch.cat([output.joints, extra], dim=1)[:, self.spin_joint_map]
        h36m = vertices2joints(self.j_regressor_h36m, vertices)
        return {
            "vertices": vertices,
            "joints": joints,
            "smpl_joints": output.joints[:, :24],
            "h36m_joints": h36m,
            "lsp14_joints": h36m[:, self.h36m_to_lsp14],
        }
