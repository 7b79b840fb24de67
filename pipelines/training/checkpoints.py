"""What a training checkpoint holds and how the loop saves and restores it.

A checkpoint folder (reported to Ray Train, which copies it to ``storage_path``) holds:

- ``model.pt``: the network alone in the project's model format
  (:mod:`pare_model.checkpoint.native`), usable by ``pare predict`` / ``pare evaluate``;
- ``state.pt``: optimizer, gradient scaler, step, epoch, counters and torch's random state (the CPU's and,
  where the process uses CUDA, each visible GPU's), plain tensors and numbers (read with ``weights_only=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pare_model.checkpoint.native import read_model_checkpoint, save_model_checkpoint
from pare_model.model_config import ModelConfig
from pipelines.io.storage import local_file

MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"


@dataclass
class LoopState:
    """The loop's counters, saved with every checkpoint."""

    step: int = 0
    epoch: int = 0
    nan_skips: int = 0
    skipped_samples: int = 0
    best_pa_mpjpe: float = float("inf")
    restarts: int = 0


def save_checkpoint(
    folder: Path, network: dict, model_config: ModelConfig, optimizer, scaler, state: LoopState, metadata: dict
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_model_checkpoint(folder / MODEL_FILE, network, model_config, metadata | {"step": state.step})
    payload = {
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "loop": {
            "step": state.step,
            "epoch": state.epoch,
            "nan_skips": state.nan_skips,
            "skipped_samples": state.skipped_samples,
            "best_pa_mpjpe": state.best_pa_mpjpe,
            "restarts": state.restarts,
        },
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    torch.save(payload, folder / STATE_FILE)


def load_checkpoint(folder: Path, model, optimizer, scaler) -> LoopState:
    """Restore weights, optimizer and scaler in place; returns the loop counters."""
    checkpoint = read_model_checkpoint(folder / MODEL_FILE)
    model.load_network_state_dict(checkpoint.network)
    payload = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(_as_built(payload["optimizer"], optimizer))
    if scaler is not None and payload["scaler"]:
        scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(payload["torch_rng"])
    cuda_states = payload.get("cuda_rng") or []  # absent before 2026-12; empty from a CPU worker
    if cuda_states and torch.cuda.is_initialized() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    loop = payload["loop"]
    return LoopState(
        **{k: loop[k] for k in ("step", "epoch", "nan_skips", "skipped_samples", "best_pa_mpjpe", "restarts")}
    )


def _as_built(saved: dict, optimizer) -> dict:
    """The saved optimizer state with the implementation flags of ``optimizer`` as built now (``fused``,
    ``foreach``, ``capturable``): ``load_state_dict`` takes them from the file, and a checkpoint of an unfused Adam
    must not turn a fused one back (its state then follows the parameters to their device)."""
    groups = [
        group | {key: current[key] for key in ("fused", "foreach", "capturable") if key in current}
        for group, current in zip(saved["param_groups"], optimizer.param_groups, strict=False)
    ]
    return {**saved, "param_groups": groups}


def load_initial_weights(path: str, model) -> None:
    """Start from a model checkpoint (e.g. stage 1's for stage 2), local or remote (``s3://...``); the architecture
    must match."""
    with local_file(path) as local:
        checkpoint = read_model_checkpoint(local)
    model.load_network_state_dict(checkpoint.network)
