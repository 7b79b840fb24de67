"""Model throughput: images/s for forward and for a training step, per backbone and setting.

A training step here is forward + PARE's full loss + backward + the training's fused Adam update on a
synthetic batch (the same tensors every step; data loading is measured elsewhere). Settings:

- ``fp32``: float32, NCHW;
- ``bf16``: bfloat16 autocast (CPU or CUDA), NCHW;
- ``channels_last``: float32 with channels-last memory format for the model and input;
- ``channels_last_bf16``: both, channels-last with bfloat16 autocast;
- ``auto``: what ``train.precision: auto`` picks on this device (``channels_last_bf16`` where it runs bf16
  natively, else ``channels_last``), through the training's own resolution;
- any of them with ``+compile`` (e.g. ``auto+compile``): the model compiled with ``torch.compile``, as
  ``train.compile`` does; the ``warm-up s`` column then holds the compilation (the first forward and
  training step).

The settings are measured interleaved: ``--rounds`` rounds, each running every setting ``--steps`` steps, so a
machine whose load changes during the run slows them alike; each figure is the median over the rounds, and the
last column is the training step's speed over ``fp32`` measured the same way. Prints a table; never pass/fail.
Run, e.g.:
  .venv/bin/python bench/model_step.py --backbones hrnet_w32 --batch-sizes 8 --settings fp32,auto
  .venv/bin/python bench/model_step.py --backbones resnet_small --image-size 128 --branch-filters 32 \
      --label-size 32 --batch-sizes 16 --settings fp32,auto          # the quickstart's network
  .venv/bin/python bench/model_step.py --device cuda --batch-sizes 32,64 --steps 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pare_model.body_model.procedural.files import write_asset_folder
from pare_model.body_model.procedural.generator import generate
from pare_model.checkpoint import build_model_from_assets
from pare_model.losses import LossConfig, PareLoss
from pare_model.model_config import ModelConfig
from pipelines.config.train import TrainConfig
from pipelines.training.loop import build_optimizer
from pipelines.training.precision import Precision, resolve_precision

SETTINGS = ("fp32", "bf16", "channels_last", "channels_last_bf16", "auto")


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


def precision_of(setting: str, device: torch.device) -> Precision:
    """The training's :class:`Precision` for a setting of this script."""
    setting = setting.removesuffix("+compile")
    if setting == "auto":
        return resolve_precision("auto", True, device)
    name = "bf16" if setting.endswith("bf16") else "fp32"
    return Precision(name, setting.startswith("channels_last"), f"bench setting {setting}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@dataclass
class Setup:
    """One setting ready to run: its model, input, targets and optimizer."""

    setting: str
    model: torch.nn.Module
    loss_fn: PareLoss
    precision: Precision
    device: torch.device
    images: torch.Tensor
    batch: dict[str, torch.Tensor]
    optimizer: torch.optim.Optimizer
    rates: dict[str, list[float]] = field(default_factory=lambda: {"eval": [], "train": []})
    warmup_s: float = 0.0

    def forward(self) -> None:
        with torch.no_grad(), self.precision.autocast(self.device):
            self.model(self.images)

    def train_step(self) -> None:
        with self.precision.autocast(self.device):
            loss, _ = self.loss_fn(self.model(self.images), self.batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def run(self, mode: str, steps: int) -> None:
        """``steps`` forward passes (``eval``) or training steps (``train``); their rate joins ``rates[mode]``."""
        self.model.train(mode == "train")
        function = self.train_step if mode == "train" else self.forward
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            function()
        _sync(self.device)
        self.rates[mode].append(len(self.images) * steps / (time.perf_counter() - start))


def prepare(
    model, loss_fn, batch_size: int, setting: str, device: torch.device, image_size: int = 224, label_size: int = 0
) -> Setup:
    """``model`` on ``device`` in the setting's memory format, with a synthetic batch (labels ``label_size`` square,
    default the image size) and the training's optimizer."""
    precision = precision_of(setting, device)
    model = model.to(device, memory_format=precision.memory_format)
    optimizer = build_optimizer(model, TrainConfig())
    if setting.endswith("+compile"):
        model = torch.compile(model)
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    images = images.contiguous(memory_format=precision.memory_format)
    batch = synthetic_batch(batch_size, device, label_size or image_size)
    return Setup(setting, model, loss_fn, precision, device, images, batch, optimizer)


def measure(
    model,
    loss_fn,
    batch_size: int,
    setting: str,
    device: torch.device,
    steps: int,
    warmup: int,
    image_size: int = 224,
    label_size: int = 0,
) -> tuple[float, float]:
    """(forward images/s, training-step images/s) of one setting on ``image_size`` square inputs."""
    setup = prepare(model, loss_fn, batch_size, setting, device, image_size, label_size)
    for mode in ("eval", "train"):
        setup.run(mode, warmup)
        setup.rates[mode].clear()
        setup.run(mode, steps)
    return setup.rates["eval"][0], setup.rates["train"][0]


def interleaved(setups: list[Setup], steps: int, warmup: int, rounds: int) -> None:
    """Warm every setting up, then ``rounds`` rounds of every setting in turn (forward, then training steps)."""
    for setup in setups:
        started = time.perf_counter()
        for mode in ("eval", "train"):
            setup.run(mode, warmup)
            setup.rates[mode].clear()
        setup.warmup_s = time.perf_counter() - started
    for _ in range(rounds):
        for setup in setups:
            setup.run("eval", steps)
            setup.run("train", steps)


def machine(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return (
        f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start"
    )


def model_config(backbone: str, args: argparse.Namespace) -> ModelConfig:
    if args.branch_filters:
        return ModelConfig(
            backbone=backbone,
            image_size=args.image_size,
            num_branch_filters=args.branch_filters,
            num_features_smpl=args.branch_filters,
        )
    return ModelConfig(backbone=backbone, image_size=args.image_size)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="hrnet_w32,resnet50")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help=f"subset of {','.join(SETTINGS)}, each with +compile or not"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--label-size", type=int, default=0, help="part-label side; 0: the image size")
    parser.add_argument("--branch-filters", type=int, default=0, help="PARE branch width; 0: the model's default")
    parser.add_argument("--steps", type=int, default=3, help="steps per setting per round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    settings = args.settings.split(",")
    print(machine(device))
    print(f"auto here: {resolve_precision('auto', True, device).describe()}")
    print("body model: procedural stand-in (not SMPL); loss: PareLoss defaults incl. part segmentation")
    print(f"{args.rounds} interleaved rounds of {args.steps} steps per setting; medians over the rounds")
    header = (
        f"{'backbone':<12} {'batch':>5} {'setting':<20} {'forward img/s':>14} {'train img/s':>12} "
        f"{'train x fp32':>13} {'warm-up s':>10}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as folder:
        write_asset_folder(generate(0), Path(folder), "npz")
        for backbone in args.backbones.split(","):
            config = model_config(backbone, args)
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                setups = []
                for setting in settings:
                    torch.manual_seed(0)
                    model = build_model_from_assets(config, folder)
                    loss_fn = PareLoss(LossConfig())
                    setups.append(
                        prepare(model, loss_fn, batch_size, setting, device, args.image_size, args.label_size)
                    )
                interleaved(setups, args.steps, args.warmup, args.rounds)
                fp32 = next((statistics.median(s.rates["train"]) for s in setups if s.setting == "fp32"), None)
                for setup in setups:
                    forward, train = (statistics.median(setup.rates[mode]) for mode in ("eval", "train"))
                    ratio = f"{train / fp32:.2f}x" if fp32 else "-"
                    print(
                        f"{backbone:<12} {batch_size:>5} {setup.setting:<20} {forward:>14.2f} {train:>12.2f} "
                        f"{ratio:>13} {setup.warmup_s:>10.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
