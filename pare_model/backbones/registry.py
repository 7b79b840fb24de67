"""Backbones by name: ``build_backbone("hrnet_w32")``; an unknown name lists the valid ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pare_model.backbones.base import Backbone
from pare_model.backbones.debug import debug
from pare_model.backbones.hrnet import hrnet_w32
from pare_model.backbones.resnet import resnet50
from pare_model.backbones.small import resnet_small
from pare_model.errors import UserFacingError

BACKBONES: dict[str, Callable[..., Backbone]] = {
    "hrnet_w32": hrnet_w32,
    "resnet50": resnet50,
    "resnet_small": resnet_small,
    "debug": debug,
}
"""Name -> builder. 'resnet_small' is a narrow ResNet-18 for CPU runs; 'debug' is a tiny test-only network."""


class UnknownBackboneError(UserFacingError, ValueError):
    """The configured backbone name is not in :data:`BACKBONES`."""


def build_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build the backbone called ``name`` with freshly initialised weights."""
    try:
        builder = BACKBONES[name]
    except KeyError:
        raise UnknownBackboneError(f"unknown backbone {name!r}; valid names: {', '.join(sorted(BACKBONES))}") from None
    return builder(**kwargs)
