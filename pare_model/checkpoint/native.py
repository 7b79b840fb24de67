"""The project's own model checkpoint: the network weights plus the config that built them.

A ``.pt`` file holding a plain dict (``format``, ``version``, ``model_config``, ``network``,
``metadata``), readable with ``torch.load(weights_only=True)``. The body model is not stored:
its tensors come from the asset folder, which keeps licensed SMPL data out of shared weights.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from pare_model.checkpoint.container import CheckpointError, read_checkpoint_file
from pare_model.checkpoint.fit import check_network
from pare_model.model_config import ModelConfig

FORMAT = "pare-pipeline-model"
VERSION = 1


@dataclass(frozen=True)
class ModelCheckpoint:
    config: ModelConfig
    network: Mapping[str, torch.Tensor]
    metadata: Mapping[str, object]


def is_native(payload: object) -> bool:
    return isinstance(payload, Mapping) and payload.get("format") == FORMAT


def save_model_checkpoint(
    path: str | Path, network: Mapping[str, torch.Tensor], config: ModelConfig, metadata: Mapping | None = None
) -> Path:
    """Write atomically (temporary file, then rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": dataclasses.asdict(config),
        "network": {k: v.detach().cpu() for k, v in network.items()},
        "metadata": dict(metadata or {}),
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)
    return path


def parse_model_checkpoint(payload: Mapping, source: str) -> ModelCheckpoint:
    """The checkpoint in ``payload`` (read from ``source``), its weights checked against its config."""
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{source}: checkpoint format version {payload.get('version')} is not {VERSION}")
    try:
        config = ModelConfig(**payload["model_config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{source}: its model_config is not valid here: {error}") from error
    network, metadata = payload.get("network"), payload.get("metadata", {})
    if not isinstance(network, Mapping) or not isinstance(metadata, Mapping):
        raise CheckpointError(f"{source}: its 'network' and 'metadata' entries must be mappings; is the file complete?")
    check_network(network, config, source)
    return ModelCheckpoint(config, network, metadata)


def read_model_checkpoint(path: str | Path) -> ModelCheckpoint:
    payload = read_checkpoint_file(path)
    if not is_native(payload):
        raise CheckpointError(
            f"{path} is not a pare-pipeline model checkpoint; import released PARE checkpoints first with "
            "`pare checkpoint import --official FILE.ckpt --out FILE.pt`"
        )
    return parse_model_checkpoint(payload, str(path))
