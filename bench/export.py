"""CPU inference speed of the exported model: eager PyTorch against TorchScript and onnxruntime.

For each backbone and crop size, a freshly initialised PARE model (with the body model layer, so
crops in, vertices and joints out: what a deployment runs; the procedural stand-in, not SMPL) is
written as TorchScript and ONNX by ``pare export``'s own writer, and each runtime runs the same
uint8 crops. onnxruntime gets as many threads as torch. Milliseconds per batch are the median of
``--steps`` timed runs after ``--warmup`` untimed ones.

Prints a table; never pass/fail. Run, e.g.:
  .venv/bin/python bench/export.py
  .venv/bin/python bench/export.py --models resnet_small:128 --batch-sizes 1,16 --steps 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from pare_model.body_model.procedural.files import write_asset_folder
from pare_model.body_model.procedural.generator import generate
from pare_model.checkpoint import build_model_from_assets
from pare_model.export import ExportModule, example_crops, output_names
from pare_model.model_config import ModelConfig
from pipelines.export.check import import_onnxruntime
from pipelines.export.job import write_file


def _median_ms(run: Callable[[torch.Tensor], object], crops: torch.Tensor, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        run(crops)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run(crops)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _runtimes(module: ExportModule, folder: Path, image_size: int) -> dict[str, Callable[[torch.Tensor], object]]:
    """Runtime name -> a function that runs the model on crops."""
    description = {"bench": True}
    write_file(module, "torchscript", folder / "model.ts", image_size, description)
    write_file(module, "onnx", folder / "model.onnx", image_size, description)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load is deprecated in torch 2.13
        scripted = torch.jit.load(str(folder / "model.ts"))
    onnxruntime = import_onnxruntime()  # telemetry off, as `pare export` runs it
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def eager(crops: torch.Tensor) -> object:
        with torch.no_grad():
            return module(crops)

    def torchscript(crops: torch.Tensor) -> object:
        with torch.no_grad():
            return scripted(crops)

    def onnx(crops: torch.Tensor) -> object:
        return session.run(None, {"crops": crops.numpy()})

    return {"eager PyTorch": eager, "TorchScript": torchscript, "onnxruntime": onnx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet_small:128,hrnet_w32:224", help="backbone:crop_size, ...")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (TorchScript optimises in them)")
    args = parser.parse_args()
    print(
        f"cpu: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, onnxruntime {import_onnxruntime().__version__}"
    )
    print("model: freshly initialised PARE head + body model layer (procedural stand-in, not SMPL); uint8 crops in")
    header = f"{'backbone':<13} {'crop':>4} {'batch':>5} {'runtime':<14} {'ms/batch':>9} {'crops/s':>8} {'vs eager':>8}"
    with tempfile.TemporaryDirectory() as folder:
        body_dir = Path(folder) / "body_model"
        write_asset_folder(generate(0), body_dir, "npz")
        print(header)
        for spec in args.models.split(","):
            name, size = spec.split(":")
            torch.manual_seed(0)
            model = build_model_from_assets(ModelConfig(backbone=name, image_size=int(size)), body_dir).eval()
            module = ExportModule(model, output_names("pare", with_body_model=True)).eval()
            runtimes = _runtimes(module, Path(folder), int(size))
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                crops = example_crops(batch_size, int(size))
                eager_ms = 0.0
                for runtime, run in runtimes.items():
                    ms = _median_ms(run, crops, args.steps, args.warmup)
                    eager_ms = eager_ms or ms
                    print(
                        f"{name:<13} {size:>4} {batch_size:>5} {runtime:<14} {ms:>9.1f} "
                        f"{1000 * batch_size / ms:>8.1f} {eager_ms / ms:>7.2f}x",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
