"""PARE's model side: the network (backbones, PARE and HMR heads), losses, metrics, checkpoint import,
the body model layer, geometry and the procedural body model generator.

Pure torch and numpy: nothing here imports ray, mlflow or webdataset, and constructors take
arrays, never paths. Asset files are read in one place, :mod:`pare_model.body_model.assets`.
The public names below load lazily, so light modules (``pare_model.errors``) cost no torch
import.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "BodyModel": "pare_model.body_model",
    "load_body_model": "pare_model.body_model",
    "load_official_checkpoint": "pare_model.checkpoint",
    "import_official_checkpoint": "pare_model.checkpoint",
    "build_model_from_assets": "pare_model.model",
}
"""Public name -> the module that defines it."""

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'pare_model' has no attribute {name!r}")
