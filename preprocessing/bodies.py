"""Posing the body model for many samples at once, and the body models of each gender.

Torch appears only here, behind :class:`~pare_model.body_model.BodyModel`: callers pass and get
NumPy arrays. Outputs are float64 copies of the model's float32 results, so re-running the
model on the stored parameters reproduces them to float32 precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from pare_model.body_model import BodyModel, load_body_model
from pare_model.body_model.parts import face_parts

GENDER_CODES = {"m": "male", "f": "female", "n": "neutral"}
"""Dataset gender codes (3DPW, SPIN npz) and the body model file each one selects."""


@dataclass(frozen=True)
class PosedBodies:
    """A batch of posed bodies in the frame of their root rotation and translation.

    Attributes:
        vertices: (B, V, 3) mesh vertices.
        joints: (B, 49, 3) SPIN/PARE joints.
        smpl_joints: (B, 24, 3) SMPL kinematic joints.
        h36m_joints: (B, 17, 3) Human3.6M joints of ``J_regressor_h36m`` (pelvis first).
    """

    vertices: np.ndarray
    joints: np.ndarray
    smpl_joints: np.ndarray
    h36m_joints: np.ndarray

    def __len__(self) -> int:
        return len(self.vertices)


def pose_bodies(
    model: BodyModel,
    pose: np.ndarray,
    betas: np.ndarray,
    transl: np.ndarray | None = None,
    batch_size: int = 64,
) -> PosedBodies:
    """Run the body model on (B, 24, 3) axis-angle poses (root first) and (B, 10) betas.

    Args:
        model: the body model (any gender).
        pose: (B, 24, 3) axis-angle, or (B, 24, 3, 3) rotation matrices.
        betas: (B, 10) shape coefficients.
        transl: optional (B, 3) translation added to every output.
        batch_size: samples per forward pass (bounds memory; the result does not depend on it
            beyond float32 rounding).
    """
    import torch

    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape[-2:] == (3, 3):
        rotations = pose
    else:
        rotations = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(pose.shape[:-1] + (3, 3))
    num = len(rotations)
    outputs: dict[str, list[np.ndarray]] = {"vertices": [], "joints": [], "smpl_joints": [], "h36m_joints": []}
    with torch.no_grad():
        for start in range(0, num, batch_size):
            stop = min(start + batch_size, num)
            rot = torch.as_tensor(rotations[start:stop], dtype=torch.float32)
            shape = torch.as_tensor(np.asarray(betas)[start:stop], dtype=torch.float32)
            trans = None if transl is None else torch.as_tensor(np.asarray(transl)[start:stop], dtype=torch.float32)
            result = model(rot[:, :1], rot[:, 1:], shape, trans)
            for key in outputs:
                outputs[key].append(result[key].numpy().astype(np.float64))
    return PosedBodies(**{key: np.concatenate(value) for key, value in outputs.items()})


class BodyModels:
    """The body models of an asset folder, one per gender, loaded on first use."""

    def __init__(self, folder: str | Path, part_map_file: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.part_map_file = part_map_file
        self._models: dict[str, BodyModel] = {}
        self._arrays: dict[str, np.ndarray] = {}  # per-frame lookups of shared mesh arrays

    def get(self, gender: str = "neutral") -> BodyModel:
        """The model of ``gender`` ('neutral', 'male', 'female' or a code 'n', 'm', 'f')."""
        gender = GENDER_CODES.get(gender, gender)
        if gender not in self._models:
            self._models[gender] = load_body_model(self.folder, gender, self.part_map_file)
        return self._models[gender]

    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangles, shared by every gender (computed once; do not modify)."""
        if "faces" not in self._arrays:
            self._arrays["faces"] = self.get().faces.numpy().astype(np.int64)
        return self._arrays["faces"]

    def part_map(self) -> np.ndarray:
        """(V,) part 0..23 of each vertex."""
        return self.get().part_map.numpy()

    def template(self) -> np.ndarray:
        """(V, 3) rest-pose vertices of the neutral model (SMPL's frame: y up, z forward; do not modify)."""
        if "template" not in self._arrays:
            self._arrays["template"] = self.get().smpl.v_template.numpy().astype(np.float64)
        return self._arrays["template"]

    def face_parts(self) -> np.ndarray:
        """(F,) part 0..23 of each face (PARE's minimum rule; computed once, do not modify)."""
        if "face_parts" not in self._arrays:
            self._arrays["face_parts"] = face_parts(self.faces(), self.part_map())
        return self._arrays["face_parts"]

    @property
    def procedural(self) -> bool:
        """True when the folder holds the procedural stand-in (not SMPL)."""
        from pare_model.body_model.assets import PROCEDURAL_MANIFEST

        return (self.folder / PROCEDURAL_MANIFEST).is_file()
