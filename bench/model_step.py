"""Model throughput: images/s for forward and for a training step, per backbone and setting.

A training step here is forward + PARE's full loss + backward + Adam update on a synthetic
batch (the same tensors every step; data loading is measured elsewhere). Settings:

- ``fp32``: float32, NCHW;
- ``bf16``: bfloat16 autocast (CPU or CUDA);
- ``channels_last``: float32 with channels-last memory format for the model and input;
- ``channels_last_bf16``: both, channels-last with bfloat16 autocast.

Prints a table; never pass/fail. Run, e.g.:
  .venv/bin/python bench/model_step.py --backbones hrnet_w32,resnet50 --batch-sizes 1,8,32
  .venv/bin/python bench/model_step.py --device cuda --batch-sizes 32,64 --steps 20
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import tempfile
import time
from pathlib import Path

import torch

from pare_model.body_model.procedural.files import write_asset_folder
from pare_model.body_model.procedural.generator import generate
from pare_model.checkpoint import build_model_from_assets
from pare_model.losses import LossConfig, PareLoss
from pare_model.model_config import ModelConfig

SETTINGS = ("fp32", "bf16", "channels_last", "channels_last_bf16")


def synthetic_batch(batch_size: int, device: torch.device, label_size: int = 224) -> dict[str, torch.Tensor]:
    """Loss targets for ``batch_size`` samples, part labels ``label_size`` pixels square."""
    generator = torch.Generator().manual_seed(0)
    keypoints = torch.rand(batch_size, 49, 3, generator=generator) * 2 - 1
    keypoints[..., 2] = 1.0
    batch = {
        "keypoints": keypoints,
        "joints_3d": torch.cat(
            [torch.randn(batch_size, 24, 3, generator=generator) * 0.3, torch.ones(batch_size, 24, 1)], -1
        ),
        "pose": torch.randn(batch_size, 72, generator=generator) * 0.2,
        "betas": torch.randn(batch_size, 10, generator=generator),
        "segm_mask": torch.randint(0, 25, (batch_size, label_size, label_size), generator=generator),
        "has_smpl": torch.ones(batch_size),
        "has_joints_3d": torch.ones(batch_size),
        "has_segm": torch.ones(batch_size),
    }
    return {k: v.to(device) for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _autocast(setting: str, device: torch.device):
    if setting.endswith("bf16"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure(
    model,
    loss_fn,
    batch_size: int,
    setting: str,
    device: torch.device,
    steps: int,
    warmup: int,
    image_size: int = 224,
) -> tuple[float, float]:
    """(forward images/s, training-step images/s) on ``image_size`` square inputs and part labels."""
    memory_format = torch.channels_last if setting.startswith("channels_last") else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    images = torch.randn(batch_size, 3, image_size, image_size, device=device).contiguous(memory_format=memory_format)
    batch = synthetic_batch(batch_size, device, image_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def forward() -> None:
        with torch.no_grad(), _autocast(setting, device):
            model(images)

    def train_step() -> None:
        with _autocast(setting, device):
            loss, _ = loss_fn(model(images), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    rates = []
    for mode, function in (("eval", forward), ("train", train_step)):
        model.train(mode == "train")
        for _ in range(warmup):
            function()
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            function()
        _sync(device)
        rates.append(batch_size * steps / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="hrnet_w32,resnet50")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"subset of {','.join(SETTINGS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    device = torch.device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({device_name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("body model: procedural stand-in (not SMPL); loss: PareLoss defaults incl. part segmentation")
    with tempfile.TemporaryDirectory() as folder:
        write_asset_folder(generate(0), Path(folder), "npz")
        print(f"{'backbone':<10} {'batch':>5} {'setting':<18} {'forward img/s':>14} {'train img/s':>12}")
        for backbone in args.backbones.split(","):
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                for setting in args.settings.split(","):
                    torch.manual_seed(0)
                    model = build_model_from_assets(ModelConfig(backbone=backbone), folder)
                    forward, train = measure(
                        model, PareLoss(LossConfig()), batch_size, setting, device, args.steps, args.warmup
                    )
                    print(f"{backbone:<10} {batch_size:>5} {setting:<18} {forward:>14.2f} {train:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
