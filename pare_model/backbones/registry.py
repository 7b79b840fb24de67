"""Backbones by name: ``build_backbone("hrnet_w32")``; an unknown name lists the valid ones.

The names are also the static ``Literal`` :data:`pare_model.model_config.BackboneName` of the
typed config; ``tests/test_registry.py`` keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pare_model.backbones.base import Backbone
from pare_model.backbones.debug import debug
from pare_model.backbones.hrnet import hrnet_w32
from pare_model.backbones.resnet import resnet50
from pare_model.backbones.small import resnet_small
from pare_model.registry import Registry, UnknownNameError


class UnknownBackboneError(UnknownNameError, ValueError):
    """The configured backbone name is not in :data:`BACKBONES`."""


BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone", UnknownBackboneError)
"""Name -> builder. 'resnet_small' is a narrow ResNet-18 for CPU runs; 'debug' is a tiny test-only network."""
BACKBONES.register("hrnet_w32", hrnet_w32)
BACKBONES.register("resnet50", resnet50)
BACKBONES.register("resnet_small", resnet_small)
BACKBONES.register("debug", debug)


def build_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build the backbone called ``name`` with freshly initialised weights."""
    return BACKBONES.get(name)(**kwargs)
