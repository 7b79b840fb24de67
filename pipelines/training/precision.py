"""What the training step computes in: ``train.precision`` resolved on each worker for its own device.

``auto`` (the default) is bf16 autocast where the hardware runs bf16 natively, float32 elsewhere:

- a CUDA GPU with bf16 (compute capability 8.0 and later: A100, H100, L4, RTX 30xx...);
- a CPU with AVX512-BF16 or AMX (AMD Zen 4 and later, Intel Cooper Lake and Sapphire Rapids and later),
  as torch's cpuinfo detects them when the worker starts.

On such a CPU the training step of HRNet-W32 runs about twice as fast in bf16 with channels-last as in
float32 (docs/benchmarks.md); without these instructions bf16 is emulated, and much slower than float32.
The explicit ``fp32``, ``bf16`` and ``fp16`` (CUDA only, with a gradient scaler) are kept; ``bf16`` on a GPU
without it is refused before training starts. Whatever the network runs in, the body model, its joint
regressors and the camera projection run in float32 (:mod:`pare_model.full_precision`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from pare_model.errors import UserFacingError


@dataclass(frozen=True)
class Precision:
    """The resolved setting: the autocast dtype (none for float32), the memory format and why."""

    name: str
    """fp32, bf16 or fp16."""

    channels_last: bool
    """Model and input in channels-last (NHWC) memory format."""

    why: str
    """How ``train.precision`` led here, for the console and MLflow."""

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The forward pass's mixed-precision context (none for float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    def describe(self) -> str:
        """One line for the console, e.g. ``precision: bf16 autocast, channels-last (train.precision=auto: ...)``."""
        compute = "float32" if self.dtype is None else f"{self.name} autocast"
        layout = "channels-last" if self.channels_last else "NCHW"
        return f"precision: {compute}, {layout} ({self.why})"


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """(whether ``device`` runs bf16 natively, what it is)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        has = torch.cuda.is_bf16_supported(including_emulation=False)
        return has, f"{name}, compute capability {major}.{minor}, {'has' if has else 'has no'} bf16"
    if device.type == "cpu":
        features = [
            name
            for name, present in (
                ("avx512_bf16", torch.cpu._is_avx512_bf16_supported),
                ("AMX", torch.cpu._is_amx_tile_supported),
            )
            if present()
        ]
        if features:
            return True, f"this CPU runs bf16 natively ({', '.join(features)})"
        return False, "this CPU has neither avx512_bf16 nor AMX: bf16 would be emulated"
    return False, f"device {device.type}"


def resolve_precision(setting: str, channels_last: bool, device: torch.device) -> Precision:
    """``train.precision`` and ``train.channels_last`` for ``device``; raises for a setting the device cannot run."""
    native, what = native_bf16(device)
    if setting == "auto":
        return Precision("bf16" if native else "fp32", channels_last, f"train.precision=auto: {what}")
    if setting == "bf16" and device.type == "cuda" and not native:
        raise UserFacingError(
            f"train.precision=bf16 but the GPU has no bf16 ({what}); use train.precision=fp16 or auto (float32 there)"
        )
    if setting == "fp16" and device.type != "cuda":
        raise UserFacingError("train.precision=fp16 needs GPUs; use auto, fp32 or bf16 on CPU workers")
    return Precision(setting, channels_last, f"train.precision={setting}")
