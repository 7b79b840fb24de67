"""The released PARE checkpoint layout and its mapping onto our modules.

Released checkpoints are PyTorch Lightning files: ``state_dict`` holds the network under
``model.`` (``model.backbone.*``, ``model.head.*``) next to SMPL buffers, which the original
kept in two places: ``model.smpl.smpl.*`` (the model's own SMPL layer) and trainer-level
modules and buffers (``smpl.*``, ``smpl_native.*``, ``J_regressor``, renderer buffers).

Every tensor of a file is sorted into exactly one group:

- network: loaded into ``backbone``/``head``; names are identical except the prefix, and
  ``head.pose_mlp.weight``, stored as (1, 6, C, 24, 1, 1) by the original's locally connected
  layer, becomes our (24, 6, C);
- body model: ``model.smpl.smpl.*``; our body model comes from the asset folder instead, and
  the import reports whether the two agree;
- trainer-level: buffers of the original training module, listed in ``TRAINER_PREFIXES``;
- unused backbone weights: tensors the original backbone holds but never uses in its forward
  pass (the backbone's ``known_unused_keys``, e.g. HRNet's 2D-pose ``final_layer``).

Anything else, and any network tensor the file lacks or has with the wrong shape, raises
:class:`CheckpointError` listing the keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from pare_model.checkpoint.container import CheckpointError
from pare_model.model_config import BackboneName, ModelConfig

MODEL_PREFIX = "model."
BODY_MODEL_PREFIX = "model.smpl.smpl."
POSE_MLP_KEY = "head.pose_mlp.weight"
TRAINER_PREFIXES = ("smpl.", "smpl_native.", "loss_fn.")
TRAINER_BUFFERS = frozenset({"J_regressor", "body_part_texture", "K", "R", "smpl_faces", "part_label_bins"})
# Our body model keeps smplx's buffer names under ``body_model.smpl.``; SPIN's extra regressor
# has its own name.
BODY_MODEL_RENAMES = {"J_regressor_extra": "body_model.j_regressor_extra"}


@dataclass
class ImportReport:
    """Where every tensor of an official checkpoint went."""

    config: ModelConfig
    network: list[str] = field(default_factory=list)
    body_model: list[str] = field(default_factory=list)
    trainer_buffers: list[str] = field(default_factory=list)
    unused_backbone: list[str] = field(default_factory=list)
    body_model_mismatch: list[str] = field(default_factory=list)
    """Body-model tensors of the file that differ from the asset folder's (none = same model)."""

    @property
    def total(self) -> int:
        return len(self.network) + len(self.body_model) + len(self.trainer_buffers) + len(self.unused_backbone)

    def summary(self) -> str:
        lines = [
            f"{self.total} tensors accounted for: {len(self.network)} loaded into the network "
            f"({self.config.backbone} + {self.config.head} head), {len(self.body_model)} body-model buffers "
            f"(taken from the asset folder instead), {len(self.trainer_buffers)} trainer-level buffers, "
            f"{len(self.unused_backbone)} backbone weights the original never uses.",
        ]
        if self.body_model_mismatch:
            lines.append(
                f"warning: {len(self.body_model_mismatch)} body-model tensors differ from the asset folder "
                f"(e.g. {', '.join(self.body_model_mismatch[:3])}): the checkpoint was trained with another body model."
            )
        return "\n".join(lines)


def strip_lightning(checkpoint: object) -> dict[str, torch.Tensor]:
    """The flat state dict of a Lightning checkpoint (or of a bare state dict)."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not any(str(k).startswith(MODEL_PREFIX) for k in state):
        raise CheckpointError(
            "this is not a PARE training checkpoint: expected a 'state_dict' with 'model.*' keys "
            "(the released PARE .ckpt files have one)"
        )
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"state_dict entries that are not tensors: {bad[:10]}")
    return dict(state)


def infer_config(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    """Backbone, head and sizes of an official state dict, read from its keys and shapes."""
    backbone: BackboneName
    if "model.backbone.stage4.0.fuse_layers.0.1.0.weight" in state:
        backbone = "hrnet_w32"
    elif "model.backbone.layer4.0.conv1.weight" in state:
        backbone = "resnet50"
    else:
        raise CheckpointError("cannot tell the backbone: neither HRNet stage4 nor ResNet layer4 keys are present")
    if "model.head.pose_mlp.weight" in state:
        final = state["model.head.smpl_final_layer.weight"]  # (64, C, 1, 1)
        return ModelConfig(
            backbone=backbone, head="pare", num_features_smpl=final.shape[0], num_branch_filters=final.shape[1]
        )
    if "model.head.fc1.weight" in state:
        return ModelConfig(backbone=backbone, head="hmr")
    raise CheckpointError("cannot tell the head: neither PARE (pose_mlp) nor HMR (fc1) keys are present")


def _to_ours(key: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
    name = key[len(MODEL_PREFIX) :]
    if name == POSE_MLP_KEY:
        if tensor.ndim != 6 or tensor.shape[0] != 1 or tensor.shape[4:] != (1, 1):
            raise CheckpointError(f"{key} has shape {tuple(tensor.shape)}; expected (1, 6, C, 24, 1, 1)")
        tensor = tensor[0, :, :, :, 0, 0].permute(2, 0, 1).contiguous()  # (24, 6, C)
    return name, tensor


def _to_official(name: str, tensor: torch.Tensor) -> tuple[str, torch.Tensor]:
    if name == POSE_MLP_KEY:
        tensor = tensor.permute(1, 2, 0)[None, :, :, :, None, None].contiguous()  # (1, 6, C, 24, 1, 1)
    return MODEL_PREFIX + name, tensor


def split_official(
    state: Mapping[str, torch.Tensor], network_keys: Mapping[str, torch.Size], unused_backbone: frozenset[str]
) -> tuple[dict[str, torch.Tensor], ImportReport]:
    """Map an official state dict onto our network keys; raise listing every key that does not fit."""
    report = ImportReport(config=infer_config(state))
    network: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        if key.startswith(BODY_MODEL_PREFIX):
            report.body_model.append(key)
        elif key.startswith(TRAINER_PREFIXES) or key in TRAINER_BUFFERS:
            report.trainer_buffers.append(key)
        elif key.startswith("model.backbone.") and key[len("model.backbone.") :] in unused_backbone:
            report.unused_backbone.append(key)
        elif key.startswith(MODEL_PREFIX) and key[len(MODEL_PREFIX) :] in network_keys:
            name, value = _to_ours(key, tensor)
            network[name] = value
            report.network.append(key)
        else:
            unknown.append(key)
    missing = sorted(set(network_keys) - set(network))
    wrong_shape = [
        f"{MODEL_PREFIX}{name}: file {tuple(value.shape)}, model {tuple(network_keys[name])}"
        for name, value in network.items()
        if tuple(value.shape) != tuple(network_keys[name])
    ]
    if unknown or missing or wrong_shape:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} unexpected keys: {', '.join(sorted(unknown)[:20])}")
        if missing:
            parts.append(f"{len(missing)} missing keys: {', '.join(MODEL_PREFIX + k for k in missing[:20])}")
        if wrong_shape:
            parts.append(f"{len(wrong_shape)} shape mismatches: {'; '.join(wrong_shape[:20])}")
        raise CheckpointError(
            f"the checkpoint does not match the {report.config.backbone} + {report.config.head} network: "
            + " | ".join(parts)
        )
    return network, report


def body_model_key(official_key: str) -> str:
    """Our state-dict key for a ``model.smpl.smpl.*`` tensor."""
    name = official_key[len(BODY_MODEL_PREFIX) :]
    return BODY_MODEL_RENAMES.get(name, "body_model.smpl." + name)


def to_official_state_dict(
    network_state: Mapping[str, torch.Tensor], body_model_state: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Our network (and optionally body-model) tensors in the released checkpoint's layout.

    Body-model buffers go where the original keeps them: smplx's under ``model.smpl.smpl.``,
    the H36M regressor as the trainer-level ``J_regressor``; our own index buffers are skipped.
    """
    official = dict(_to_official(name, tensor) for name, tensor in network_state.items())
    renames = {ours: BODY_MODEL_PREFIX + theirs for theirs, ours in BODY_MODEL_RENAMES.items()}
    renames["body_model.j_regressor_h36m"] = "J_regressor"
    for name, tensor in (body_model_state or {}).items():
        if name in renames:
            official[renames[name]] = tensor
        elif name.startswith("body_model.smpl."):
            official[BODY_MODEL_PREFIX + name.removeprefix("body_model.smpl.")] = tensor
    return official
