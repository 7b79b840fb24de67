"""Initial backbone weights from a user-supplied file, with a report of what loaded.

Accepted files: the COCO 2D-pose ``pose_hrnet_w32_256x192.pth`` for HRNet-W32, an ImageNet
``resnet50-*.pth`` for ResNet-50, or any state dict saved from our backbones. A plain state
dict, one wrapped as ``{"state_dict": ...}``, and ``module.``-prefixed keys (DataParallel)
are all accepted. Every tensor whose name and shape match is loaded; the rest is reported.
Nothing is ever downloaded; files are read with ``weights_only=True``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pare_model.backbones.base import Backbone
from pare_model.errors import UserFacingError
from pare_model.input_limits import check_torch_file

COUNTER_SUFFIX = "num_batches_tracked"
DATA_PARALLEL_PREFIX = "module."

Shape = tuple[int, ...]


class BackboneWeightsError(UserFacingError):
    """An initial backbone weights file is missing, unreadable or does not fit the backbone."""


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_backbone_weights` did with each tensor of the model and the file."""

    source: str
    """The file path, or 'a state dict in memory'."""
    total: int
    """Tensors (parameters and buffers) in the backbone's state dict."""
    loaded: tuple[str, ...]
    """Our tensors now holding the file's values."""
    missing: tuple[str, ...]
    """Our tensors with no entry in the file (they keep their initial values)."""
    missing_counters: tuple[str, ...]
    """BatchNorm ``num_batches_tracked`` counters absent from the file (files saved before
    PyTorch 0.4.1 lack them; with a fixed momentum they do not affect the output)."""
    unexpected: tuple[str, ...]
    """File entries this backbone has no tensor for (and does not know as unused)."""
    shape_mismatch: tuple[tuple[str, Shape, Shape], ...]
    """(name, shape in the file, our shape) for names present in both with different shapes."""
    ignored: tuple[str, ...]
    """File entries the backbone lists as ``known_unused_keys`` (e.g. HRNet's ``final_layer``)."""

    @property
    def ok(self) -> bool:
        """True when every tensor on both sides is loaded, ignored, or a missing BN counter."""
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def summary(self) -> str:
        """A few lines for users: counts, then the affected modules."""
        kept = len(self.missing) + len(self.missing_counters) + len(self.shape_mismatch)
        lines = [f"loaded {len(self.loaded):,} of {self.total:,} tensors from {self.source}"]
        if kept:
            names = list(self.missing) + [name for name, _, _ in self.shape_mismatch]
            detail = _group(names) if names else "none besides the counters"
            if self.missing_counters:
                detail += f"; plus {len(self.missing_counters):,} BatchNorm num_batches_tracked counters"
            lines.append(f"{kept:,} kept their initial values: {detail}")
        for name, file_shape, our_shape in self.shape_mismatch:
            lines.append(f"shape differs: {name} is {list(file_shape)} in the file, {list(our_shape)} here")
        if self.unexpected:
            lines.append(f"{len(self.unexpected):,} tensors in the file were not used: {_group(self.unexpected)}")
        if self.ignored:
            lines.append(f"ignored {len(self.ignored):,} tensors this backbone never uses: {', '.join(self.ignored)}")
        return "\n".join(lines)

    def problems(self) -> str:
        """The full key lists behind ``ok`` being False (for strict loading errors)."""
        parts = []
        if self.missing:
            parts.append(f"missing from the file ({len(self.missing)}): {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"not in this backbone ({len(self.unexpected)}): {', '.join(self.unexpected)}")
        if self.shape_mismatch:
            listed = ", ".join(f"{n} (file {list(f)}, ours {list(o)})" for n, f, o in self.shape_mismatch)
            parts.append(f"different shapes ({len(self.shape_mismatch)}): {listed}")
        return "\n".join(parts)


def _group(names: Iterable[str]) -> str:
    """'upsample_stage_2 (6), upsample_stage_3 (12)': counts per top-level module."""
    counts = Counter(name.split(".", 1)[0] for name in names)
    return ", ".join(f"{module} ({count})" for module, count in counts.items())


def _read(path: Path, backbone: Backbone) -> Any:
    what = f"it should be {backbone.expected_weights}"
    if not path.is_file():
        raise BackboneWeightsError(
            f"initial backbone weights file {path} does not exist; {what}. Nothing is downloaded."
        )
    try:
        check_torch_file(path)  # the sizes its zip declares, before torch.load reads a record
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types (pickle, zip, EOF, OS) for a bad file
        raise BackboneWeightsError(f"cannot read {path} as a PyTorch weights file ({error}); {what}") from error


def _as_state_dict(obj: Any, source: str) -> dict[str, Any]:
    """Unwrap ``{"state_dict": ...}`` and strip DataParallel's ``module.`` prefix."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BackboneWeightsError(f"{source} holds no state dict (a mapping from names to tensors)")
    return {k.removeprefix(DATA_PARALLEL_PREFIX): v for k, v in obj.items()}


def compare_state_dicts(backbone: Backbone, state: Mapping[str, Any], source: str) -> LoadReport:
    """Sort every name of the backbone and of ``state`` into the report's categories."""
    ours = backbone.state_dict()
    unused = set(backbone.known_unused_keys)
    loaded, missing, counters, mismatch = [], [], [], []
    for name, tensor in ours.items():
        theirs = state.get(name)
        if isinstance(theirs, torch.Tensor) and tuple(theirs.shape) == tuple(tensor.shape):
            loaded.append(name)
        elif isinstance(theirs, torch.Tensor):
            mismatch.append((name, tuple(theirs.shape), tuple(tensor.shape)))
        elif name.endswith(COUNTER_SUFFIX):
            counters.append(name)
        else:
            missing.append(name)
    extra = [name for name in state if name not in ours]
    return LoadReport(
        source=source,
        total=len(ours),
        loaded=tuple(loaded),
        missing=tuple(missing),
        missing_counters=tuple(counters),
        unexpected=tuple(name for name in extra if name not in unused),
        shape_mismatch=tuple(mismatch),
        ignored=tuple(name for name in extra if name in unused),
    )


def load_backbone_weights(
    backbone: Backbone,
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    strict: bool = False,
) -> LoadReport:
    """Copy every tensor of ``source`` whose name and shape match into ``backbone``.

    Args:
        backbone: a backbone from :func:`pare_model.backbones.build_backbone`.
        source: a weights file path, or a state dict already in memory.
        strict: raise :class:`BackboneWeightsError` listing the keys unless every tensor on
            both sides is loaded or known to be unused; nothing is loaded in that case.

    Raises:
        BackboneWeightsError: the file is missing or unreadable, holds no state dict, none of
            its tensors fit this backbone, or (``strict``) some do not.
    """
    if isinstance(source, Mapping):
        label, raw = "a state dict in memory", source
    else:
        path = Path(source)
        label, raw = str(path), _read(path, backbone)
    state = _as_state_dict(raw, label)
    report = compare_state_dicts(backbone, state, label)
    if not report.loaded:
        sample = ", ".join(list(state)[:5])
        raise BackboneWeightsError(
            f"none of the {len(state):,} entries in {label} fit {type(backbone).__name__} (first keys: {sample}); "
            f"it should be {backbone.expected_weights}"
        )
    if strict and not report.ok:
        raise BackboneWeightsError(f"{label} does not fit {type(backbone).__name__} exactly:\n{report.problems()}")
    result = backbone.load_state_dict({name: state[name] for name in report.loaded}, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    return report
