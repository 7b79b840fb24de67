"""The SMPL mean parameters as head buffers (``init_pose``, ``init_shape``, ``init_cam``).

Both heads carry them under the released checkpoints' names: the HMR head starts its
iterations from them, the PARE head uses them to initialise its shape and camera biases.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

MEAN_PARAM_SHAPES = {"pose": (144,), "shape": (10,), "cam": (3,)}


def register_mean_params(module: nn.Module, mean_params: Mapping[str, np.ndarray]) -> None:
    """Register (1, 144), (1, 10) and (1, 3) float32 buffers on ``module``."""
    for name, shape in MEAN_PARAM_SHAPES.items():
        value = np.asarray(mean_params[name], dtype=np.float32)
        if value.shape != shape:
            raise ValueError(f"mean parameter {name!r} must have shape {shape}, got {value.shape}")
        module.register_buffer(f"init_{name}", torch.from_numpy(value.copy())[None])
