"""Whether a checkpoint's weights fit the network its config describes, before anything is built for real.

:func:`expected_network_shapes` builds the configured backbone and head on PyTorch's ``meta``
device (shapes without memory or time, even for HRNet-W32), so ``pare checkpoint info`` and the
drivers of ``pare train`` / ``pare evaluate`` can check a file in a second and say what is wrong:
an unknown backbone or head, missing or unexpected tensors, wrong shapes, non-finite values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import numpy as np
import torch

from pare_model.backbones.registry import BACKBONES
from pare_model.checkpoint.container import CheckpointError
from pare_model.heads import HEADS
from pare_model.heads.mean_params import MEAN_PARAM_SHAPES
from pare_model.model import build_network
from pare_model.model_config import ModelConfig
from pare_model.registry import UnknownNameError

MAX_LISTED = 5
"""Tensor names listed in a message; the count says how many more there are."""


def check_names(config: ModelConfig, source: str) -> None:
    """Refuse a backbone or head name this version does not know, listing the known ones."""
    try:
        BACKBONES.check(config.backbone)
        HEADS.check(config.head)
    except UnknownNameError as error:
        raise CheckpointError(f"{source}: {error}") from None


def expected_network_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of :meth:`PareModel.network_state_dict` for ``config`` (no weights made)."""
    mean_params = {name: np.zeros(shape, dtype=np.float32) for name, shape in MEAN_PARAM_SHAPES.items()}
    with torch.device("meta"):
        backbone, head = build_network(config, mean_params)
    shapes = {f"backbone.{k}": tuple(v.shape) for k, v in backbone.state_dict().items()}
    return shapes | {f"head.{k}": tuple(v.shape) for k, v in head.state_dict().items()}


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def check_network(
    network: Mapping[str, object], config: ModelConfig, source: str, model: str = "its stated model"
) -> None:
    """Raise :class:`CheckpointError` unless ``network`` has exactly the tensors ``config``'s model has, finite.

    ``model`` says in the message which model that is (the file's own config, or the run's).
    """
    check_names(config, source)
    expected = expected_network_shapes(config)
    not_tensors = sorted(k for k, v in network.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(f"{source}: network entries that are not tensors: {_listed(not_tensors)}")
    tensors = cast(Mapping[str, torch.Tensor], network)
    missing = sorted(set(expected) - set(network))
    unexpected = sorted(set(network) - set(expected))
    wrong = sorted(k for k in set(expected) & set(network) if tuple(tensors[k].shape) != expected[k])
    if missing or unexpected or wrong:
        found = [
            f"{len(missing)} missing ({_listed(missing)})" if missing else "",
            f"{len(unexpected)} unexpected ({_listed(unexpected)})" if unexpected else "",
            f"{len(wrong)} of another shape ({_listed(wrong)})" if wrong else "",
        ]
        raise CheckpointError(
            f"{source}: its weights do not fit {model} (backbone {config.backbone}, head {config.head}): "
            + "; ".join(part for part in found if part)
        )
    non_finite = sorted(k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if non_finite:
        raise CheckpointError(
            f"{source}: {len(non_finite)} weight tensors hold NaN or infinite values ({_listed(non_finite)}); "
            "the model is unusable (a diverged run?): use an earlier checkpoint"
        )
