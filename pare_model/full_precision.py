"""Float32 islands under mixed precision: the body model, its joint regressors and the camera projection.

Under ``torch.autocast`` (bf16 or fp16) matrix products run in the low precision. That suits the network's
convolutions, but not geometry: bf16 keeps 8 bits of mantissa, so the body model's blend shapes and skinning
put the vertices 2.2 mm off on average and up to 19 mm, the joints up to 14 mm (measured against fp32 on the
procedural body, 2026-12), and the 6D-to-rotation decoding and the projection (f = 5000) suffer the same way.
:func:`float32` runs a function with autocast off and its floating-point tensor arguments in float32, so
these stay exact whatever precision the network trains in; outside autocast it changes nothing.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch

AUTOCAST_DEVICES = ("cpu", "cuda")
"""The device types whose autocast the islands switch off (the ones this project trains on)."""

F = TypeVar("F", bound=Callable[..., Any])


def _as_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    return value


def float32(function: F) -> F:
    """Decorate ``function`` (or a module's ``forward``) to run in float32 under any autocast."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        active = [device for device in AUTOCAST_DEVICES if torch.is_autocast_enabled(device)]
        if not active:
            return function(*args, **kwargs)
        with contextlib.ExitStack() as stack:
            for device in active:
                stack.enter_context(torch.autocast(device, enabled=False))
            args = tuple(_as_float32(arg) for arg in args)
            return function(*args, **{key: _as_float32(value) for key, value in kwargs.items()})

    return cast(F, run)
