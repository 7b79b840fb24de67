"""The training's own step on a device, step by step: how long the host takes to issue it, how long the device
takes to run it, and how many times the host waited for the device (synchronisations).

    .venv/bin/python bench/device_step.py --device cuda                     # hrnet_w32, 224 px, batch 64, bf16
    .venv/bin/python bench/device_step.py --device cpu --backbone resnet_small --image-size 64 --batch 2 --steps 3

It runs :class:`pipelines.training.step.StepRunner` (forward, PareLoss, backward, clipping, the fused Adam) on a
synthetic batch as the loader hands it over (uint8 images and targets in pinned memory on CUDA), with logging
due only after the last step, as in training between two logs. On CUDA each step runs under
``torch.cuda.set_sync_debug_mode("warn")``, which warns at every synchronising call: their count is the
step's synchronisations (the goal is none). The host's share is the time the host spent issuing the step over
the time the device spent running it (CUDA events): under 100 % the device never waits for the host. On a CPU
both are the same work and synchronisations do not exist ("n/a"). Prints figures; never passes or fails.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

SYNC_WARNING = "synchroniz"
"""What torch's warnings under ``set_sync_debug_mode("warn")`` say ("called a synchronizing CUDA operation")."""


@dataclass(frozen=True)
class StepFigures:
    """One step: host milliseconds to issue it, device milliseconds to run it, synchronisations (None on a CPU)."""

    host_ms: float
    device_ms: float
    syncs: int | None

    @property
    def host_share(self) -> float:
        return self.host_ms / self.device_ms if self.device_ms > 0 else float("nan")


def loader_batch(batch_size: int, image_size: int, label_size: int, pin: bool) -> dict:
    """A batch as the loader makes it: CPU tensors (pinned for a GPU), uint8 images."""
    generator = torch.Generator().manual_seed(0)
    keypoints = torch.rand(batch_size, 49, 3, generator=generator) * 2 - 1
    keypoints[..., 2] = 1.0
    batch = {
        "image": torch.randint(0, 256, (batch_size, image_size, image_size, 3), dtype=torch.uint8, generator=generator),
        "segm_mask": torch.randint(0, 25, (batch_size, label_size, label_size), generator=generator),
        "keypoints": keypoints,
        "joints_3d": torch.cat(
            [torch.randn(batch_size, 24, 3, generator=generator), torch.ones(batch_size, 24, 1)], -1
        ),
        "pose": torch.randn(batch_size, 72, generator=generator) * 0.2,
        "betas": torch.randn(batch_size, 10, generator=generator),
        "has_smpl": torch.ones(batch_size),
        "has_joints_3d": torch.ones(batch_size),
        "has_segm": torch.ones(batch_size),
        "skipped": torch.zeros(batch_size, dtype=torch.int64),
        "occluders": torch.zeros(batch_size, dtype=torch.int64),
    }
    return {k: v.pin_memory() if pin else v for k, v in batch.items()}


def counting_syncs(device: torch.device, function) -> int | None:
    """Run ``function``; how many times it synchronised with the CUDA device (None on other devices)."""
    if device.type != "cuda":
        function()
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            function()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum(SYNC_WARNING in str(warning.message) for warning in caught)


def timed_step(runner, batch: dict, step: int, device: torch.device) -> StepFigures:
    """One step: the host's time to issue it, the device's to run it (CUDA events), its synchronisations."""
    if device.type != "cuda":
        started = time.perf_counter()
        runner(batch, step, 0.0)
        elapsed = 1000 * (time.perf_counter() - started)
        return StepFigures(elapsed, elapsed, None)
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    started = time.perf_counter()
    begin.record()
    syncs = counting_syncs(device, lambda: runner(batch, step, 0.0))
    end.record()
    host_ms = 1000 * (time.perf_counter() - started)
    end.synchronize()  # outside the step: to read the device's time
    return StepFigures(host_ms, begin.elapsed_time(end), syncs)


def build_runner(config, asset_dir: str, device: torch.device):
    """The training's step for ``config`` on ``device``: model, fused Adam, PareLoss, the resolved precision."""
    from pare_model.losses import PareLoss
    from pare_model.model import build_model_from_assets
    from pipelines.training.loop import build_optimizer
    from pipelines.training.precision import resolve_precision
    from pipelines.training.step import StepRunner

    train = config.train
    precision = resolve_precision(train.precision, train.channels_last, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = build_model_from_assets(config.model, asset_dir).to(device, memory_format=precision.memory_format)
    optimizer = build_optimizer(model, train)
    return StepRunner(model, optimizer, PareLoss(config.loss), train, device, precision=precision)


def measure_steps(config, asset_dir: str, device: torch.device, steps: int, warmup: int) -> dict:
    """Per-step figures of ``steps`` steps after ``warmup`` ones, and the synchronisations of the logging read
    that follows them (the one place the step's values reach the host)."""
    runner = build_runner(config, asset_dir, device)
    label_size = config.loader.label_size
    batch = loader_batch(config.loader.batch_size, config.model.image_size, label_size, device.type == "cuda")
    for step in range(warmup):
        runner(batch, step, 0.0)
    runner.settle()
    runner.stats.reduced(1, device)
    figures = [timed_step(runner, batch, warmup + step, device) for step in range(steps)]
    logging_syncs = counting_syncs(device, lambda: (runner.settle(), runner.stats.reduced(1, device)))
    return {"steps": figures, "logging_syncs": logging_syncs, "precision": runner.precision.describe()}


def summary(result: dict) -> str:
    """One line: the median host share and the synchronisations per non-logging step and in the logging read."""
    figures = result["steps"]
    share = statistics.median(f.host_share for f in figures)
    syncs = [f.syncs for f in figures]
    if syncs[0] is None:
        return f"host work {100 * share:.0f} % of step time (CPU: the host does all), syncs n/a on CPU"
    return (
        f"host work {100 * share:.0f} % of device time (median of {len(figures)} steps), "
        f"{max(syncs)} syncs per non-logging step (max), {result['logging_syncs']} in the logging read"
    )


def per_step_table(result: dict) -> str:
    lines = ["| step | host ms | device ms | host share | syncs |", "| ---: | ---: | ---: | ---: | ---: |"]
    for index, f in enumerate(result["steps"]):
        syncs = "n/a" if f.syncs is None else str(f.syncs)
        lines.append(f"| {index} | {f.host_ms:.1f} | {f.device_ms:.1f} | {100 * f.host_share:.0f} % | {syncs} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backbone", default="hrnet_w32")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    from pare_model.body_model.procedural.files import write_asset_folder
    from pare_model.body_model.procedural.generator import generate
    from pipelines.config.loader import load_config

    config = load_config(
        None,
        [
            f"model.backbone={args.backbone}",
            f"model.image_size={args.image_size}",
            f"loader.batch_size={args.batch}",
            f"train.precision={args.precision}",
        ],
    )
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        write_asset_folder(generate(0), Path(folder), "npz")
        result = measure_steps(config, folder, device, args.steps, args.warmup)
    print(f"device {device}, {args.backbone} {args.image_size} px, batch {args.batch}, {result['precision']}")
    print(per_step_table(result))
    print(summary(result))


if __name__ == "__main__":
    main()
