"""Image backbones in pure torch, by name, each describing its output map (``feature_info``).

- ``hrnet_w32``: HRNet-W32 with PARE's conv fusion, 480 channels at stride 4 (the released PARE);
- ``resnet50``: ResNet-50 trunk, 2048 channels at stride 32 (heads add transposed convs,
  :func:`make_deconv_layers`);
- ``debug``: a tiny test-only network at stride 4.

State-dict keys follow the original code (HRNet, PARE) and torchvision (ResNet-50), so their
weight files load without renaming: see :func:`load_backbone_weights`.
"""

from pare_model.backbones.base import Backbone, FeatureInfo
from pare_model.backbones.deconv import make_deconv_layers
from pare_model.backbones.hrnet import PARE_FINAL_LAYER_SHAPES, HRNet, StageConfig, hrnet_stages, hrnet_w32
from pare_model.backbones.pretrained import BackboneWeightsError, LoadReport, load_backbone_weights
from pare_model.backbones.registry import BACKBONES, UnknownBackboneError, build_backbone
from pare_model.backbones.resnet import ResNet50, resnet50

__all__ = [
    "BACKBONES",
    "PARE_FINAL_LAYER_SHAPES",
    "Backbone",
    "BackboneWeightsError",
    "FeatureInfo",
    "HRNet",
    "LoadReport",
    "ResNet50",
    "StageConfig",
    "UnknownBackboneError",
    "build_backbone",
    "hrnet_stages",
    "hrnet_w32",
    "load_backbone_weights",
    "make_deconv_layers",
    "resnet50",
]
