"""SMPL-format body models: asset loading, the torch layer, parts, and the procedural stand-in."""

from pare_model.body_model.assets import GENDERS, BodyModelAssets, Gender, load_body_model_assets
from pare_model.body_model.layer import BodyModel

__all__ = ["GENDERS", "BodyModel", "BodyModelAssets", "Gender", "load_body_model", "load_body_model_assets"]


def load_body_model(folder, gender: Gender = "neutral", part_map_file=None) -> BodyModel:
    """Read an asset folder and build the body model for ``gender``."""
    return BodyModel.from_assets(load_body_model_assets(folder, gender, part_map_file))
