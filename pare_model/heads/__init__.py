"""Regression heads behind one interface: ``head(features) -> dict`` of SMPL predictions."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from pare_model.heads.hmr_head import HmrHead
from pare_model.heads.pare_head import PareHead

HEADS: dict[str, Callable[..., nn.Module]] = {"pare": PareHead, "hmr": HmrHead}


def build_head(name: str, **kwargs) -> nn.Module:
    """Construct a registered head; unknown names raise with the list of valid ones."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; valid heads: {', '.join(sorted(HEADS))}")
    return HEADS[name](**kwargs)


__all__ = ["HEADS", "HmrHead", "PareHead", "build_head"]
