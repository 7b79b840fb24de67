"""Regression heads behind one interface: ``head(features) -> dict`` of SMPL predictions.

The names are also the static ``Literal`` :data:`pare_model.model_config.HeadName` of the
typed config; ``tests/test_registry.py`` keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from pare_model.heads.hmr_head import HmrHead
from pare_model.heads.pare_head import PareHead
from pare_model.registry import Registry, UnknownNameError


class UnknownHeadError(UnknownNameError, ValueError):
    """The configured head name is not in :data:`HEADS`."""


HEADS: Registry[Callable[..., nn.Module]] = Registry("head", UnknownHeadError)
HEADS.register("pare", PareHead)
HEADS.register("hmr", HmrHead)


def build_head(name: str, **kwargs) -> nn.Module:
    """Construct a registered head; an unknown name raises :class:`UnknownHeadError` listing the valid ones."""
    return HEADS.get(name)(**kwargs)


__all__ = ["HEADS", "HmrHead", "PareHead", "UnknownHeadError", "build_head"]
