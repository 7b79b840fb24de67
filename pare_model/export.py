"""The model as a graph for deployment: uint8 RGB crops in, a tuple of named tensors out.

``torch.jit.trace`` and ``torch.onnx.export`` need a module that takes tensors and returns
tensors, so :class:`ExportModule` wraps the network:

- its input is what :func:`pare_model.image_input.to_model_input` takes, (B, S, S, 3) uint8 RGB
  crops; the ImageNet normalisation runs inside the graph, by that same function;
- its output is the values of the prediction dict in the order of :func:`output_names`;
- the body model layer is optional: without it (:class:`Network`) the graph ends at the head's
  pose, shape and camera (and part maps); with it (the whole :class:`~pare_model.model.PareModel`)
  vertices, 3D joints, the camera translation and projected 2D joints come out too.

The forward pass is the model's own, unchanged. Pure torch: files are written by
``pipelines.export``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import torch
from torch import nn

from pare_model.heads.mean_params import MEAN_PARAM_SHAPES
from pare_model.image_input import to_model_input
from pare_model.model import build_network
from pare_model.model_config import HeadName, ModelConfig

HEAD_OUTPUTS = ("pred_pose", "pred_shape", "pred_cam")
"""Every head: (B, 24, 3, 3) rotation matrices, (B, 10) betas, (B, 3) weak-perspective camera [s, tx, ty]."""
PART_OUTPUTS = ("pred_segm_mask", "pred_part_attention")
"""PARE head only: (B, 25, h, w) part logits (background first), (B, 24, h, w) part attention; h = w = S / 4."""
BODY_OUTPUTS = ("pred_cam_t", "pred_vertices", "pred_keypoints_3d", "pred_keypoints_2d")
"""With the body model: (B, 3) camera translation, (B, 6890, 3) vertices, (B, 49, 3) joints (SPIN order),
(B, 49, 2) joints projected into the crop, in [-1, 1]."""

INPUT_NAME = "crops"
TRACE_BATCH = 1
"""The batch size the graph is traced at. smplx makes a zero translation of the batch size it sees
when none is given; traced at batch 1 that constant broadcasts over any batch, while every other
size in the graph is recorded as the input's. Checking at another batch size catches a regression."""


def output_names(head: HeadName, with_body_model: bool) -> tuple[str, ...]:
    """The exported outputs, in order, for a ``head`` with or without the body model."""
    return HEAD_OUTPUTS + (PART_OUTPUTS if head == "pare" else ()) + (BODY_OUTPUTS if with_body_model else ())


class Network(nn.Module):
    """Backbone and head without the body model: (B, 3, S, S) normalised images -> the head's dict.

    Its state dict has the keys of :meth:`PareModel.network_state_dict`.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.backbone(images))


def build_network_module(config: ModelConfig, network: Mapping[str, torch.Tensor]) -> Network:
    """The network of ``config`` holding the weights ``network`` (every key must match), in eval mode."""
    # The mean parameters are head buffers, so ``network`` replaces these zeros.
    placeholder = {name: np.zeros(shape, dtype=np.float32) for name, shape in MEAN_PARAM_SHAPES.items()}
    module = Network(*build_network(config, placeholder))
    module.load_state_dict(dict(network), strict=True)
    return module.eval()


class ExportModule(nn.Module):
    """(B, S, S, 3) uint8 RGB crops -> the outputs ``names`` of ``model`` (a ``PareModel`` or a :class:`Network`)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(names)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = cast(Mapping[str, torch.Tensor], self.model(to_model_input(crops)))
        return tuple(output[name] for name in self.names)


def example_crops(num: int, image_size: int, seed: int = 0) -> torch.Tensor:
    """(num, S, S, 3) uint8 crops of uniform noise, the same for the same arguments."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (num, image_size, image_size, 3), generator=generator, dtype=torch.uint8)


def trace(module: ExportModule, image_size: int) -> torch.jit.ScriptModule:
    """``module`` traced into TorchScript at :data:`TRACE_BATCH` crops of ``image_size``."""
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer warnings about shapes read as Python numbers: the result is checked at another batch size.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # TorchScript is deprecated from torch 2.13 on, but still the format many C++ deployments load.
        warnings.filterwarnings("ignore", message="`torch.jit.trace", category=DeprecationWarning)  # and trace_method
        return torch.jit.trace(module.eval(), example_crops(TRACE_BATCH, image_size), check_trace=False)
