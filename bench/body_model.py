"""Body model throughput: procedural generation, asset loading, and forward passes.

Prints figures only (never pass/fail). Run:  .venv/bin/python bench/body_model.py [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from pare_model.body_model import load_body_model
from pare_model.body_model.procedural.files import write_asset_folder
from pare_model.body_model.procedural.generator import generate
from pare_model.geometry import axis_angle_to_matrix


def _timed(function, repeats: int) -> float:
    """Best wall time of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="1,16,64")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {device}"
    )

    seconds = _timed(lambda: generate(0), repeats=2)
    print(f"procedural generation (3 genders + extras, in memory): {seconds:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        model = generate(0)
        for fmt in ("pkl", "npz"):
            folder = Path(tmp) / fmt
            write = _timed(lambda folder=folder, fmt=fmt: write_asset_folder(model, folder, fmt), repeats=1)
            load = _timed(lambda folder=folder: load_body_model(folder), repeats=3)
            size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            print(f"{fmt}: write {write:.2f} s, load {load:.3f} s, folder {size:.1f} MB")
        body = load_body_model(Path(tmp) / "pkl").to(device)

    print(f"\n{'batch':>6} {'forward meshes/s':>17} {'fwd+bwd meshes/s':>17}")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        fwd, bwd = _forward_rates(body, batch, device)
        print(f"{batch:>6} {fwd:>17.0f} {bwd:>17.0f}")


def _forward_rates(body: torch.nn.Module, batch: int, device: torch.device) -> tuple[float, float]:
    """Meshes per second for a forward pass, and for forward plus backward to the shape."""
    rotations = axis_angle_to_matrix(torch.randn(batch, 24, 3, device=device) * 0.3)
    betas = torch.randn(batch, 10, device=device)

    def forward():
        with torch.no_grad():
            body(rotations[:, :1], rotations[:, 1:], betas)
        _sync(device)

    def forward_backward():
        shape = betas.clone().requires_grad_(True)
        body(rotations[:, :1], rotations[:, 1:], shape)["vertices"].sum().backward()
        _sync(device)

    forward()  # warm-up
    repeats = max(3, 200 // batch)
    fwd = repeats * batch / sum(_timed(forward, 1) for _ in range(repeats))
    bwd = repeats * batch / sum(_timed(forward_backward, 1) for _ in range(repeats))
    return fwd, bwd


if __name__ == "__main__":
    main()
