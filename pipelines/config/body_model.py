"""Configuration of the body model: which one, and where its files are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class BodyModelConfig:
    """Which body model the jobs use and where its asset files live."""

    source: Literal["procedural", "files"] = "procedural"
    """'procedural': the generated stand-in (not SMPL), written to asset_dir on first use.
    'files': real SMPL assets that you placed in asset_dir yourself."""

    asset_dir: str = "outputs/body_model"
    """Folder with SMPL_<GENDER>.pkl or .npz, J_regressor_extra.npy, J_regressor_h36m.npy
    and smpl_mean_params.npz. Relative paths are relative to the working directory."""

    gender: Literal["neutral", "male", "female"] = "neutral"
    """Which model file to load; PARE trains and evaluates with the neutral model."""

    seed: int = 0
    """Seed of the procedural stand-in (source=procedural only); each seed is a slightly
    different person."""

    part_map: str = ""
    """Optional per-vertex part map: a .npy of 6890 part ids (0..23) or a Meshcapade-style
    segmentation .json. Empty: each vertex's largest skinning weight decides its part."""

    def __post_init__(self) -> None:
        if not self.asset_dir.strip():
            raise ValueError("asset_dir must name a folder")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
