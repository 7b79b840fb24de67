"""PARE's model side: the body model layer, geometry, and (soon) the network, losses and metrics.

Pure torch and numpy: nothing here imports ray, mlflow or webdataset, and constructors take
arrays, never paths. Asset files are read in one place, :mod:`pare_model.body_model.assets`.
The public names below load lazily, so light modules (``pare_model.errors``) cost no torch
import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BodyModel", "load_body_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pare_model import body_model

        return getattr(body_model, name)
    raise AttributeError(f"module 'pare_model' has no attribute {name!r}")
