"""Counting, on a CPU, what would make the host wait for a GPU: a torch function mode, no mocks.

On a GPU the host waits for the device whenever it needs a value from it (``.item()``, ``float(t)``,
``bool(t)``, a tensor used as a Python index, ``.tolist()``, ``.cpu()``...), whenever an op's output size
depends on values (boolean-mask indexing, ``nonzero``), and whenever it copies from its own memory to the
device without ``non_blocking`` (or makes a device tensor from Python data). On a CPU none of this costs
anything, so the step's code is checked structurally instead: :class:`HostReads` sees every torch call in
its block, follows which tensors the host holds (those given to it, such as the loader's batch, and
what is computed from them alone, or read back with ``.cpu()``) and records each such event on any
other tensor, the device's.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

HOST = "_pare_on_host"
"""The attribute that marks a tensor as the host's."""

READS = {
    torch.Tensor.item,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.cpu,
    torch.Tensor.nonzero,
    torch.nonzero,
    torch.Tensor.masked_select,
    torch.masked_select,
    torch.Tensor.unique,
    torch.unique,
    torch.Tensor.__repr__,
    torch.Tensor.__format__,
}
"""Calls that hand a device value to the host (or size their output by one)."""

TO_HOST = {torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.tolist}
"""Calls whose result is the host's."""

FROM_PYTHON = {torch.tensor, torch.as_tensor, torch.Tensor.new_tensor}
"""Calls that copy Python data (or a host tensor) to their device."""


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _on_host(tensor: torch.Tensor) -> bool:
    return getattr(tensor, HOST, False)


def _mark(value: Any, host: bool) -> None:
    for tensor in _tensors(value):
        try:
            setattr(tensor, HOST, host)
        except (AttributeError, RuntimeError):  # e.g. a tensor made by the autograd engine in C++
            pass


def _device_data(data: Any) -> bool:
    """Whether ``data`` is a device tensor (then making a tensor of it on its device copies nothing)."""
    return isinstance(data, torch.Tensor) and not _on_host(data)


def _device_argument(args: tuple, kwargs: dict) -> bool:
    """Whether a ``to`` call names a device (``to(device)``, ``to("cuda")``, ``to(other_tensor)``)."""
    candidates = list(args[1:]) + [kwargs.get("device"), kwargs.get("other")]
    return any(isinstance(a, torch.device | str | torch.Tensor) for a in candidates if a is not None)


class HostReads(TorchFunctionMode):
    """Records, in ``events``, each host wait its block would cause on a GPU (with where it happened), and in
    ``moved`` the (dtype, shape) of each host tensor sent to a device.

    The host's tensors: those given, what is computed from them alone, what is made without naming a device,
    and what is read back (``.cpu()``, ``.tolist()``); every other tensor is the device's (the model's
    parameters and buffers, the gradients, the optimizer's state, what is sent or made there)."""

    def __init__(self, host: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.events: list[str] = []
        self.moved: list[tuple[torch.dtype, tuple[int, ...]]] = []
        for tensor in host:
            _mark(tensor, True)

    def _record(self, func) -> None:
        frames = [f for f in traceback.extract_stack()[:-3] if "torch/" not in f.filename]
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        self.events.append(f"{getattr(func, '__name__', func)} at {where}")

    def _waits(self, func, args: tuple, kwargs: dict, on_device: list[torch.Tensor], moving: bool) -> bool:
        if func in READS:
            return bool(on_device)
        if func is torch.Tensor.__getitem__:  # a boolean mask sizes the result by its values
            return not _on_host(args[0]) and any(t.dtype == torch.bool for t in _tensors(args[1:]))
        if moving:
            return _on_host(args[0]) and not (kwargs.get("non_blocking") or (len(args) > 3 and args[3]))
        if func is torch.Tensor.new_tensor:  # Python data (or the host's) to the device of args[0]
            return not _on_host(args[0]) and not _device_data(args[1] if len(args) > 1 else kwargs.get("data"))
        if func in FROM_PYTHON and kwargs.get("device") is not None:
            return not _device_data(args[0] if args else kwargs.get("data"))
        return False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = list(_tensors(args)) + list(_tensors(kwargs))
        on_device = [t for t in inputs if not _on_host(t)]
        moving = func is torch.Tensor.to and _device_argument(args, kwargs)
        if self._waits(func, args, kwargs, on_device, moving):
            self._record(func)
        if moving and _on_host(args[0]):
            self.moved.append((args[0].dtype, tuple(args[0].shape)))
        out = func(*args, **kwargs)
        if func in TO_HOST:
            _mark(out, True)
        elif moving:
            _mark(out, False)
        elif inputs:
            _mark(out, not on_device)
        elif kwargs.get("device") is None:
            _mark(out, True)  # made without naming a device: in the host's memory
        return out
