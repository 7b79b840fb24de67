"""Run an exported file and compare its outputs with eager PyTorch, output by output.

The relative difference of an output is ``max |exported - eager| / (max |eager| + EPS)`` over all
its values: the largest error measured against the output's own scale, so that 1e-4 means the
same for vertices in metres as for attention maps that sum to one.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pare_model.export import INPUT_NAME

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript")

TOLERANCE = 1e-4
"""The largest relative difference an output may have."""
EPS = 1e-8
"""Added to the eager output's largest magnitude, so an output of zeros still divides."""


@dataclass(frozen=True)
class Difference:
    """One output of the exported file against eager PyTorch."""

    name: str
    shape: tuple[int, ...]  # the exported output's shape
    max_abs: float
    max_rel: float
    ok: bool


ONNXRUNTIME_TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"
"""onnxruntime (1.32 on Linux) writes a device id and an event database under the user's cache folder
(``Microsoft/DeveloperTools/.onnxruntime``) and a ``.ses`` file in the temp folder unless this variable is set when
it starts; setting it afterwards does nothing."""


def import_onnxruntime():
    """onnxruntime, with its telemetry off: nothing written outside the files a command names."""
    os.environ[ONNXRUNTIME_TELEMETRY_ENV] = "1"
    import onnxruntime

    onnxruntime.disable_telemetry_events()  # in case it was imported before, without the variable
    return onnxruntime


def exported_runner(path: Path, fmt: Format, names: Sequence[str]) -> Callable[[torch.Tensor], list[np.ndarray]]:
    """A function giving the outputs ``names`` of the exported file at ``path`` for (B, S, S, 3) uint8 crops."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`torch.jit.load` is deprecated", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")

        def run_torchscript(crops: torch.Tensor) -> list[np.ndarray]:
            with torch.no_grad():
                return [value.numpy() for value in module(crops)]

        return run_torchscript
    session = import_onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda crops: list(session.run(list(names), {INPUT_NAME: crops.numpy()}))


def compare(
    names: Sequence[str], exported: Sequence[np.ndarray], eager: Sequence[np.ndarray], tolerance: float = TOLERANCE
) -> list[Difference]:
    """One :class:`Difference` per output; a shape mismatch or a non-finite value fails it."""
    rows = []
    for name, got, want in zip(names, exported, eager, strict=True):
        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        if got.shape != want.shape:
            rows.append(Difference(name, got.shape, math.nan, math.nan, False))
            continue
        max_abs = float(np.abs(got - want).max()) if got.size else 0.0
        scale = float(np.abs(want).max()) if want.size else 0.0
        max_rel = max_abs / (scale + EPS)
        rows.append(Difference(name, got.shape, max_abs, max_rel, bool(max_rel <= tolerance)))  # NaN fails
    return rows


def table(rows: Sequence[Difference]) -> str:
    """The differences as an aligned text table."""
    header = ("output", "shape", "max abs diff", "max rel diff", "check")
    cells = [
        (row.name, str(row.shape), f"{row.max_abs:.2e}", f"{row.max_rel:.2e}", "OK" if row.ok else "FAILED")
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *cells]
    ]
    return "\n".join(line.rstrip() for line in lines)
