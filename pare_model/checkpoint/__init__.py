"""Model checkpoints: import of released PARE files, and the project's own format.

- :func:`load_official_checkpoint` reads a released PARE ``.ckpt`` and returns a ready model;
- :func:`load_model` reads either kind, so every command accepts both;
- :func:`read_network_checkpoint` reads either kind's network weights and config without a body
  model (for ``pare export`` of the network alone).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pare_model.backbones import PARE_FINAL_LAYER_SHAPES, HRNet, build_backbone
from pare_model.body_model.assets import Gender
from pare_model.checkpoint.container import CheckpointError, read_checkpoint_file
from pare_model.checkpoint.fit import check_network, expected_network_shapes
from pare_model.checkpoint.native import (
    ModelCheckpoint,
    is_native,
    parse_model_checkpoint,
    read_model_checkpoint,
    save_model_checkpoint,
)
from pare_model.checkpoint.official import (
    ImportReport,
    body_model_key,
    infer_config,
    split_official,
    strip_lightning,
    to_official_state_dict,
)
from pare_model.model import PareModel, build_model_from_assets  # re-exported: a public entry point


def _unused_backbone_keys(model: PareModel) -> frozenset[str]:
    return frozenset(model.backbone.known_unused_keys)


def _compare_body_model(state: dict, model: PareModel, report: ImportReport) -> None:
    ours = model.state_dict()
    for key in report.body_model:
        mine = ours.get(body_model_key(key))
        theirs = state[key]
        if mine is not None and mine.shape == theirs.shape and not torch.allclose(mine.float(), theirs.float()):
            report.body_model_mismatch.append(key)


def import_official_state(
    state: dict, body_model_dir: str | Path, gender: Gender = "neutral"
) -> tuple[PareModel, ImportReport]:
    """Build the matching model and load an official state dict into it."""
    model = build_model_from_assets(infer_config(state), body_model_dir, gender)
    network_keys = {k: v.shape for k, v in model.network_state_dict().items()}
    network, report = split_official(state, network_keys, _unused_backbone_keys(model))
    model.load_network_state_dict(network)
    _compare_body_model(state, model, report)
    return model.eval(), report


def import_official_checkpoint(path: str | Path, body_model_dir: str | Path) -> tuple[PareModel, ImportReport]:
    """Read a released PARE ``.ckpt`` (weights_only) into a model; also return the import report."""
    return import_official_state(strip_lightning(read_checkpoint_file(path)), body_model_dir)


def load_official_checkpoint(path: str | Path, body_model_dir: str | Path) -> PareModel:
    """A ready (eval-mode) model from a released PARE checkpoint and a body model folder."""
    return import_official_checkpoint(path, body_model_dir)[0]


def load_model(path: str | Path, body_model_dir: str | Path) -> PareModel:
    """A ready model from either a pare-pipeline ``.pt`` or a released PARE ``.ckpt``."""
    payload = read_checkpoint_file(path)
    if is_native(payload):
        checkpoint = parse_model_checkpoint(payload, str(path))
        model = build_model_from_assets(checkpoint.config, body_model_dir)
        model.load_network_state_dict(checkpoint.network)
        return model.eval()
    model, report = import_official_state(strip_lightning(payload), body_model_dir)
    check_network(model.network_state_dict(), report.config, str(path))  # non-finite weights
    return model


def read_network_checkpoint(path: str | Path) -> ModelCheckpoint:
    """The network weights and model config of a pare-pipeline ``.pt`` or a released PARE ``.ckpt``.

    No body model is needed: a released file is split exactly as :func:`import_official_state`
    splits it, against the network's shapes built on the ``meta`` device, and its body-model and
    trainer tensors are left out. The weights are checked (every tensor present, the right shape,
    finite).
    """
    payload = read_checkpoint_file(path)
    if is_native(payload):
        return parse_model_checkpoint(payload, str(path))
    state = strip_lightning(payload)
    config = infer_config(state)
    with torch.device("meta"):
        unused = frozenset(build_backbone(config.backbone).known_unused_keys)
    network_keys = {k: torch.Size(v) for k, v in expected_network_shapes(config).items()}
    network, report = split_official(state, network_keys, unused)
    check_network(network, config, str(path))
    return ModelCheckpoint(config, network, {"imported_from": str(path), "import_summary": report.summary()})


def export_official_checkpoint(model: PareModel, path: str | Path, include_body_model: bool = True) -> Path:
    """Write ``model`` as a Lightning-style checkpoint in the released layout (for interop and tests)."""
    body = {k: v for k, v in model.state_dict().items() if k.startswith("body_model.")} if include_body_model else None
    state = to_official_state_dict(model.network_state_dict(), body)
    if isinstance(model.backbone, HRNet):  # the released files carry HRNet's unused 2D-pose layer
        state.update({f"model.backbone.{k}": torch.zeros(shape) for k, shape in PARE_FINAL_LAYER_SHAPES.items()})
    path = Path(path)
    torch.save({"state_dict": state, "epoch": 0, "global_step": 0}, path)
    return path


__all__ = [
    "CheckpointError",
    "ImportReport",
    "ModelCheckpoint",
    "build_model_from_assets",
    "export_official_checkpoint",
    "import_official_checkpoint",
    "load_model",
    "load_official_checkpoint",
    "read_model_checkpoint",
    "read_network_checkpoint",
    "save_model_checkpoint",
]
