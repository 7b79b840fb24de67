"""GPU check: the figures one CUDA GPU owes this project, in one table, in under 8 minutes.

    .venv/bin/python bench/gpu_check.py            # one CUDA GPU: hrnet_w32 at 224 px, batch 64
    .venv/bin/python bench/gpu_check.py --tiny     # CPU, tiny sizes, same code paths (CI runs this)

Everything runs through the project's own code:

1. bench/model_step.py's training step (forward + PareLoss + backward + Adam) for hrnet_w32 at batch 64 in
   fp32, bf16 and channels_last + bf16 (the model config is the one trained in 2);
1b. bench/device_step.py: the training's own step (StepRunner, bf16, channels-last, fused Adam) on the device,
   printed step by step: the host's time to issue it against the device's to run it (the host's share), and
   the synchronisations counted by ``torch.cuda.set_sync_debug_mode("warn")`` (the goal is none between logs);
2. `pare train`'s job on synthetic shards (train.use_gpu=true, bf16, 200 steps, 8 loader processes):
   steps/s and the share of step time spent waiting for the loader, as the loop logged them to MLflow;
3. `pare evaluate`'s job (evaluate.use_gpu=true) with the model trained in 2 on synthetic 3DPW-like shards.

Goals printed next to the figures: a bf16 training step at least 2x as fast as fp32, no synchronisation in a
training step between two logs, and the loader wait under 5 % of step time with 8 loader processes. ``--tiny`` runs on the CPU with resnet_small at 64 px and a handful
of steps: its figures say nothing about speed, and its goals are not judged. Asked for CUDA (the default
without ``--tiny``) where torch sees none, it stops with exit status 2 and says why: it never falls back to
the CPU. Prints figures; never passes or fails on time.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import importlib.util
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import torch

    from pare_model.model_config import ModelConfig
    from pipelines.config.schema import PareConfig
    from pipelines.synthetic_shards import SyntheticShards

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

BENCH = Path(__file__).resolve().parent
PROG = "bench/gpu_check.py"
BUDGET_MIN = 8.0
BF16_GOAL = 2.0
"""The bf16 training step's speed-up over fp32 asked for."""
WAIT_GOAL = 0.05
"""The loader-wait share of step time asked for, with ``GOAL_LOADER_WORKERS`` loader processes."""
GOAL_LOADER_WORKERS = 8
STEP_SETTINGS = (("fp32", "fp32"), ("bf16", "bf16"), ("channels_last_bf16", "channels_last + bf16"))
"""bench/model_step.py's settings measured, with their names in the table."""


@dataclass(frozen=True)
class Sizes:
    """What the check runs: the model, the batch, how many steps and samples, and the loader and actor CPUs."""

    backbone: str
    image_size: int
    batch: int
    step_repeats: int
    step_warmup: int
    device_steps: int
    train_steps: int
    log_every: int
    loader_workers: int
    cpus_per_worker: int
    train_samples: int
    test_frames: int
    source_size: int
    samples_per_shard: int
    eval_batch: int
    cpus_per_actor: int
    judged: bool
    """Whether the goals are judged (not on the tiny CPU run, whose figures say nothing about speed)."""


def full_sizes() -> Sizes:
    """One CUDA GPU: PARE's hrnet_w32 at 224 px and batch 64, 200 training steps, 8 loader processes."""
    cpus = os.cpu_count() or 1
    return Sizes(
        backbone="hrnet_w32",
        image_size=224,
        batch=64,
        step_repeats=20,
        step_warmup=3,
        device_steps=20,
        train_steps=200,
        log_every=20,
        loader_workers=GOAL_LOADER_WORKERS,
        cpus_per_worker=max(1, min(GOAL_LOADER_WORKERS, cpus - 1)),
        train_samples=400,
        test_frames=120,
        source_size=640,
        samples_per_shard=50,
        eval_batch=64,
        cpus_per_actor=max(1, min(4, cpus - 1)),
        judged=True,
    )


def tiny_sizes() -> Sizes:
    """The same code paths at toy sizes, for CI on a CPU: a narrow resnet_small at 64 px, a handful of steps."""
    return Sizes(
        backbone="resnet_small",
        image_size=64,
        batch=2,
        step_repeats=1,
        step_warmup=1,
        device_steps=3,
        train_steps=6,
        log_every=2,
        loader_workers=1,
        cpus_per_worker=1,
        train_samples=12,
        test_frames=6,
        source_size=128,
        samples_per_shard=100,
        eval_batch=8,
        cpus_per_actor=1,
        judged=False,
    )


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    part: str
    setting: str
    figures: str
    goal: str


@functools.cache
def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module (bench/ is no package, and names such as ``train`` are too common to import
    from the path)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {BENCH / name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def fail(message: str) -> NoReturn:
    """Stop with exit status 2 and one line on stderr, as `pare` does."""
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def require_device(device: str) -> None:
    """CUDA asked for where torch sees none stops the check: a GPU check must never measure the CPU quietly."""
    import torch

    if not device.startswith("cuda") or torch.cuda.is_available():
        return
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    fail(
        f"--device {device} asks for CUDA, but torch {torch.__version__} ({build}) sees no CUDA GPU "
        "(torch.cuda.is_available() is False). Run it on a machine with an NVIDIA GPU, its driver and a CUDA "
        "build of torch (pip install torch from the CUDA wheel index, https://download.pytorch.org/whl/), "
        "or pass --tiny for the small CPU check"
    )


def verdict(met: bool, judged: bool, why_not: str) -> str:
    """'met' or 'MISSED', or why the goal is not judged on this run."""
    return ("met" if met else "MISSED") if judged else f"not judged ({why_not})"


def release_gpu_memory(device: torch.device) -> None:
    """Hand the driver's cached CUDA memory back before the Ray workers need the GPU."""
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def model_step_rows(sizes: Sizes, model_config: ModelConfig, assets: Path, device_name: str) -> list[Row]:
    """bench/model_step.py's forward and training-step rates for each setting, a fresh model for each."""
    import torch

    from pare_model.checkpoint import build_model_from_assets
    from pare_model.losses import LossConfig, PareLoss

    model_step = bench_module("model_step")
    device = torch.device(device_name)
    rates: dict[str, tuple[float, float]] = {}
    for setting, _ in STEP_SETTINGS:
        torch.manual_seed(0)
        model = build_model_from_assets(model_config, str(assets))
        rates[setting] = model_step.measure(
            model,
            PareLoss(LossConfig()),
            sizes.batch,
            setting,
            device,
            sizes.step_repeats,
            sizes.step_warmup,
            sizes.image_size,
        )
        del model
        release_gpu_memory(device)
    part = f"model step: {sizes.backbone} {sizes.image_size} px, batch {sizes.batch}"
    rows = []
    for setting, name in STEP_SETTINGS:
        forward, train = rates[setting]
        figures = f"train {train:.1f} img/s ({1000 * sizes.batch / train:.0f} ms/step), forward {forward:.1f} img/s"
        ratio = train / rates["fp32"][1]
        goal = (
            "reference for the bf16 goal"
            if setting == "fp32"
            else f"bf16 >= {BF16_GOAL:g}x fp32: {ratio:.2f}x, {verdict(ratio >= BF16_GOAL, sizes.judged, 'tiny run')}"
        )
        rows.append(Row(part, name, figures, goal))
    return rows


def device_step_row(sizes: Sizes, config: PareConfig, assets: Path, device_name: str) -> Row:
    """bench/device_step.py's per-step figures of the training's step (printed as they come), and its row."""
    import torch

    device_step = bench_module("device_step")
    device = torch.device(device_name)
    result = device_step.measure_steps(config, str(assets), device, sizes.device_steps, sizes.step_warmup)
    release_gpu_memory(device)
    print(f"training step on {device_name}, step by step ({result['precision']}):")
    print(device_step.per_step_table(result), flush=True)
    syncs = [figures.syncs for figures in result["steps"]]
    if syncs[0] is None:
        goal = "0 syncs per non-logging step: not judged (no CUDA: nothing to synchronise with)"
    else:
        goal = f"0 syncs per non-logging step: {verdict(max(syncs) == 0, True, '')}"
    return Row(
        f"training step on the device: {sizes.backbone} {sizes.image_size} px, batch {sizes.batch}",
        "StepRunner, bf16, channels-last, fused Adam",
        device_step.summary(result),
        goal,
    )


def training_args(sizes: Sizes, gpu: bool) -> argparse.Namespace:
    """bench/train.py's options for one bf16 run of ``sizes``."""
    return argparse.Namespace(
        steps=sizes.train_steps,
        backbone=sizes.backbone,
        image_size=sizes.image_size,
        batch=sizes.batch,
        loader_workers=sizes.loader_workers,
        cpus_per_worker=sizes.cpus_per_worker,
        log_every=sizes.log_every,
        gpu=gpu,
        precision="bf16",
        branch_filters=16,
    )


def train_row(sizes: Sizes, config: PareConfig, gpu: bool) -> tuple[Row, str]:
    """`pare train`'s job with ``config`` on one Ray Train worker; (its row, the final checkpoint)."""
    from pipelines.training.job import run_training

    result = run_training(config)
    figures = bench_module("train").read_figures(result, sizes.batch, 1)
    setting = (
        f"train.use_gpu={str(gpu).lower()}, bf16, {sizes.train_steps} steps, batch {sizes.batch}, "
        f"{sizes.loader_workers} loader process{'es' if sizes.loader_workers != 1 else ''}"
    )
    wait = figures["wait"]
    why_not = "tiny run" if not sizes.judged else f"{sizes.loader_workers} loader processes"
    judged = sizes.judged and sizes.loader_workers == GOAL_LOADER_WORKERS
    row = Row(
        "pare train: synthetic shards, 1 worker",
        setting,
        f"{figures['steps_per_s']:.2f} steps/s, {figures['samples_per_s']:.1f} samples/s, "
        f"loader wait {100 * wait:.1f} % of step time",
        f"loader wait < {100 * WAIT_GOAL:g} % with {GOAL_LOADER_WORKERS} loader processes: "
        f"{verdict(wait < WAIT_GOAL, judged, why_not)}",
    )
    return row, result.checkpoint


def evaluate_row(sizes: Sizes, root: Path, made: SyntheticShards, checkpoint: str, gpu: bool) -> Row:
    """`pare evaluate`'s job on one Ray actor with the trained model, nothing logged to MLflow."""
    from pipelines.config.loader import load_config
    from pipelines.evaluation.job import run_evaluation

    config = load_config(
        None,
        [
            f"body_model.asset_dir={made.body_model}",
            f"evaluate.checkpoint={checkpoint}",
            f"evaluate.shards=[{made.validation}]",
            "evaluate.num_actors=1",
            f"evaluate.cpus_per_actor={sizes.cpus_per_actor}",
            f"evaluate.batch_size={sizes.eval_batch}",
            f"evaluate.use_gpu={str(gpu).lower()}",
            f"evaluate.output_dir={root / 'evaluate'}",
            "evaluate.log_to=none",
        ],
    )
    result = run_evaluation(config)
    samples = result.summary["3dpw"]["num_samples"]
    return Row(
        "pare evaluate: synthetic 3DPW-like shards, 1 actor",
        f"evaluate.use_gpu={str(gpu).lower()}, batch {sizes.eval_batch}",
        f"{samples} samples in {result.seconds:.1f} s = {samples / result.seconds:.1f} samples/s "
        "(actor start-up included)",
        "no goal set",
    )


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (ready for docs/benchmarks.md)."""
    lines = ["| part | setting | figures | goal |", "| --- | --- | --- | --- |"]
    lines += [f"| {row.part} | {row.setting} | {row.figures} | {row.goal} |" for row in rows]
    return "\n".join(lines)


def machine(device: str) -> str:
    """The device, torch and CPUs the figures come from."""
    import torch

    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine()
    cuda = f", CUDA {torch.version.cuda}" if device == "cuda" else ""
    return (
        f"device: {device} ({name}), torch {torch.__version__}{cuda}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )


def run_check(sizes: Sizes, device: str, root: Path) -> list[Row]:
    """Shards, then the model step, the training's step on the device, training and evaluation; the table's
    rows."""
    from pipelines.config.loader import load_config
    from pipelines.synthetic_shards import make_synthetic_shards

    made = make_synthetic_shards(
        root, sizes.train_samples, sizes.test_frames, sizes.source_size, samples_per_shard=sizes.samples_per_shard
    )
    gpu = device == "cuda"
    args = training_args(sizes, gpu)
    overrides = bench_module("train").training_overrides(root, made.train, made.body_model, 1, args)
    config = load_config(None, overrides)
    rows = model_step_rows(sizes, config.model, made.body_model, device)
    rows.append(device_step_row(sizes, config, made.body_model, device))
    row, checkpoint = train_row(sizes, config, gpu)
    return [*rows, row, evaluate_row(sizes, root, made, checkpoint, gpu)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """--tiny and --device; the device defaults to cuda, or to cpu with --tiny."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="toy sizes on the CPU (CI): the same code paths and table")
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default=None,
        help="cuda (the default) or cpu (the default with --tiny); cuda where torch sees no GPU stops with status 2",
    )
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = "cpu" if args.tiny else "cuda"
    return args


def main(argv: list[str] | None = None) -> None:
    """Check the device, run the three parts in a temporary folder, print the table."""
    args = parse_args(argv)
    require_device(args.device)
    from pipelines.console import quiet_libraries
    from pipelines.user_errors import user_error_of

    quiet_libraries()  # as `pare` does: Ray's and the libraries' logs stay in their folders
    sizes = tiny_sizes() if args.tiny else full_sizes()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pare-gpu-check-") as folder:
        try:
            rows = run_check(sizes, args.device, Path(folder))
        except Exception as error:
            message = user_error_of(error)
            if message is None:
                raise  # a bug: the whole traceback
            fail(message)
    minutes = (time.perf_counter() - started) / 60
    kind = "tiny run: toy sizes, the goals not judged" if args.tiny else "full run"
    print(f"\nGPU check ({kind}); {machine(args.device)}")
    print(", ".join(f"{k}={v}" for k, v in dataclasses.asdict(sizes).items()))
    print(table(rows))
    print(f"finished in {minutes:.1f} min (the full check's budget on one GPU: {BUDGET_MIN:g} min)", flush=True)


if __name__ == "__main__":
    main()
