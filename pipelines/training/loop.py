"""The per-worker training loop that Ray Train runs on every rank (DDP over gloo or NCCL).

:func:`train_loop` builds this rank's :class:`~pipelines.training.trainer.Trainer`: the model,
optimizer and state (:func:`start_worker`), the step (:class:`~pipelines.training.step.StepRunner`:
forward, PARE's loss with the part-segmentation schedule, a finite check agreed by all ranks,
backward, clipping, Adam at the scheduled rate), the data schedule, and the hooks
(:mod:`pipelines.training.hooks`: every ``log_every`` steps the ranks' sums are all-reduced and
rank 0 logs them to MLflow; every ``validate_every`` steps all ranks validate and merge their
metrics; every ``checkpoint_every`` steps every rank reports to Ray Train and rank 0 attaches the
checkpoint). A restarted or resumed worker continues from the latest checkpoint with the same step.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch

from pare_model.input_limits import limits_environment
from pare_model.losses import PareLoss
from pare_model.model import build_model_from_assets
from pipelines.config.loader import load_config_text
from pipelines.config.schema import PareConfig
from pipelines.config.train import TrainConfig
from pipelines.console import VERBOSE_ENV
from pipelines.data.batch import TrainingBatch
from pipelines.data.stream import MixSource, TrainStream, ValidationStream, make_loader
from pipelines.training.checkpoints import LoopState, load_checkpoint, load_initial_weights, save_checkpoint
from pipelines.training.faults import FaultInjection, Faults
from pipelines.training.hooks import (
    SCORE,
    CheckpointReport,
    MlflowMetrics,
    Pictures,
    Progress,
    Status,
    Validation,
    WindowMetrics,
    WorkerNodes,
)
from pipelines.training.loop_config import DatasetShards, LoopConfig
from pipelines.training.lr_schedule import learning_rate_at
from pipelines.training.precision import Precision, resolve_precision
from pipelines.training.progress import ProgressWriter
from pipelines.training.step import NanPolicy, StepRunner, clip_gradients
from pipelines.training.trainer import NO_SCORE, Hook, Rank, Trainer
from pipelines.training.validation import merge_over_ranks, validate

__all__ = ["SCORE", "clip_gradients", "stage_at", "stages_from", "train_loop", "worker_environment"]


@dataclass
class Stage:
    name: str
    start_step: int
    sources: list[MixSource]


def stages_from(config: PareConfig, shards: Mapping[str, DatasetShards]) -> list[Stage]:
    """The data schedule: configured stages sorted by start, or all datasets in equal parts."""

    def sources(mix: dict[str, float]) -> list[MixSource]:
        return [
            MixSource(name, tuple(shards[name]["urls"]), tuple(shards[name]["samples"]), ratio)
            for name, ratio in mix.items()
        ]

    if not config.data.stages:
        return [Stage("all", 0, sources(dict.fromkeys(shards, 1.0)))]
    ordered = sorted(config.data.stages.items(), key=lambda item: item[1].start_step)
    stages = [Stage(name, stage.start_step, sources(stage.mix)) for name, stage in ordered]
    stages[0].start_step = 0  # the first stage covers the start of the run
    return stages


def stage_at(stages: list[Stage], step: int) -> Stage:
    return [stage for stage in stages if stage.start_step <= step][-1]


def _device(config: PareConfig) -> torch.device:
    if config.train.use_gpu:
        import ray.train.torch

        return ray.train.torch.get_device()
    return torch.device("cpu")


def build_optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the model's parameters (PARE's optimizer); ``train.lr_schedule`` sets its rate at each step.

    Fused (one kernel over all parameters, on CUDA and CPU): it can skip a non-finite step on the device's word
    (``found_inf``), so the step never waits for the device to ask (:mod:`pipelines.training.step`)."""
    parameters = list(model.parameters())
    fused = all(p.device.type in ("cuda", "cpu") and p.is_floating_point() for p in parameters)
    return torch.optim.Adam(
        parameters, lr=learning_rate_at(train, 0), weight_decay=train.weight_decay, fused=fused or None
    )


def _restore(config: PareConfig, model, optimizer, scaler) -> LoopState:
    """The state of Ray Train's latest checkpoint (a restart or a rerun), else ``init_checkpoint``'s weights."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        if config.train.init_checkpoint:
            load_initial_weights(config.train.init_checkpoint, model)
        return LoopState()
    with checkpoint.as_directory() as folder:
        state = load_checkpoint(Path(folder), model, optimizer, scaler)
    state.restarts += 1
    return state


@dataclass
class Worker:
    """What one rank builds before the loop: its place, the model (plain and DDP-wrapped), optimizer and state."""

    loop_config: LoopConfig
    config: PareConfig
    where: Rank
    core: torch.nn.Module
    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: object
    state: LoopState
    logger: object  # RunLogger on rank 0, else None
    precision: Precision


def start_worker(loop_config: LoopConfig) -> Worker:
    """Config, model, optimizer and state (resumed, or from the init checkpoint), DDP and, on rank 0, the logger."""
    import ray.train

    context = ray.train.get_context()
    config = load_config_text(loop_config.config_yaml, "from the driver")
    train = config.train
    torch.set_num_threads(train.torch_threads or train.cpus_per_worker)
    torch.manual_seed(train.seed)
    where = Rank(context.get_world_rank(), context.get_world_size(), _device(config))
    precision = resolve_precision(train.precision, train.channels_last, where.device)
    if where.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the input size never changes: find the fastest convolutions once
    model = build_model_from_assets(config.model, loop_config.asset_dir)
    model.to(where.device, memory_format=precision.memory_format)  # before the optimizer: its state follows
    optimizer = build_optimizer(model, train)
    scaler = torch.amp.GradScaler("cuda") if precision.name == "fp16" else None
    state = _restore(config, model, optimizer, scaler)
    network = model if where.world_size == 1 else _data_parallel(model)
    if train.compile:
        network = torch.compile(network)
    logger = None
    if where.is_main:
        from pipelines.training.tracking import RunLogger

        logger = RunLogger(
            loop_config.tracking_uri,
            loop_config.run_id,
            config.tracking.timeout_s,
            config.tracking.system_metrics,
        )
    return Worker(loop_config, config, where, model, network, optimizer, scaler, state, logger, precision)


def _data_parallel(model: torch.nn.Module) -> torch.nn.Module:
    """DDP through Ray Train, with the gradients living in DDP's all-reduce buckets.

    The CPU backend returns a 1x1 convolution's weight gradient with other strides on its two
    size-1 dimensions than the weight's. When backward makes a new gradient tensor, DDP compares
    strides, warns that they "do not match bucket view strides" and copies it into its bucket each
    step. Gradients made once with the parameters' layout, kept as views of the buckets
    (``gradient_as_bucket_view``) and zeroed in place (``zero_grad(set_to_none=False)`` in the step),
    are accumulated into by backward instead: no copy, no second gradient buffer, no warning.
    Buffers are not synchronised in every forward pass (the body model's are constant, BatchNorm's
    are shared before validation by :func:`share_rank0_buffers`).
    """
    import ray.train.torch

    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.grad = torch.zeros_like(parameter)
    kwargs = {"forward_sync_buffers": False, "gradient_as_bucket_view": True}
    return ray.train.torch.prepare_model(model, parallel_strategy_kwargs=kwargs)


class DataSchedule:
    """The batches of the step's data stage: a new stream whenever the schedule enters another stage."""

    def __init__(self, w: Worker, on_stage) -> None:
        self.w, self.on_stage = w, on_stage
        self.stages = stages_from(w.config, w.loop_config.shards)
        self.stage: Stage | None = None
        self.batches = None

    def __call__(self, step: int) -> TrainingBatch:
        current = stage_at(self.stages, step)
        if current is not self.stage:
            config, where = self.w.config, self.w.where
            self.stage = current
            stream = TrainStream(
                current.sources,
                config.loader,
                config.model.image_size,
                where.rank,
                where.world_size,
                config.train.seed,
                start_step=step,
            )
            self.batches = iter(make_loader(stream, config.loader, device=where.device))
            self.on_stage(current.name)
        return next(self.batches)


def _validation(w: Worker):
    """The Validation hook's measurement: ``val/*`` merged over ranks; {} without validation data."""

    def run(trainer: Trainer) -> dict:
        config, urls, where = w.config, w.loop_config.validation_urls, w.where
        if not urls:
            return {}
        per_rank = config.data.validation_max_samples // where.world_size if config.data.validation_max_samples else 0
        val_loader = make_loader(
            ValidationStream(urls, config.loader, config.model.image_size, where.rank, where.world_size, per_rank),
            config.loader,
            drop_last=False,
            device=where.device,
        )
        share_rank0_buffers(w.core, where.world_size)
        ours, baseline = validate(w.core, val_loader, where.device, w.precision.memory_format)
        ours, baseline = merge_over_ranks(ours), merge_over_ranks(baseline)
        if ours.count == 0:
            return {}
        values = {f"val/{k}": v for k, v in ours.compute().items() if isinstance(v, float)}
        values |= {f"val/baseline_{k}": v for k, v in baseline.compute().items() if isinstance(v, float)}
        return values | {"val/samples": ours.count}

    return run


def _worker_nodes(where: Rank):
    """The WorkerNodes hook's gathering: every rank's Ray node, in rank order (a collective)."""

    def gather() -> list[dict[str, str]]:
        from pipelines.io.cluster import current_node

        node = current_node()
        if where.world_size == 1:
            return [node]
        import torch.distributed as dist

        nodes: list = [None] * where.world_size
        dist.all_gather_object(nodes, node)
        return nodes

    return gather


def _checkpoint_saver(w: Worker):
    def save(trainer: Trainer, folder: Path) -> None:
        save_checkpoint(
            folder,
            w.core.network_state_dict(),
            w.config.model,
            w.optimizer,
            w.scaler,
            trainer.state,
            {"run_id": w.loop_config.run_id, "run_name": w.config.train.run_name},
        )

    return save


def _report(metrics: dict, folder: str | None) -> None:
    import ray.train
    from ray.train import Checkpoint

    ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder) if folder else None)


def default_hooks(w: Worker, status_uri: str) -> list[Hook]:
    """The hooks of every run, in order: each reads what the ones before it put in ``trainer.metrics``."""
    faces = w.core.body_model.faces.cpu().numpy()
    writer = ProgressWriter(status_uri, w.config.train.max_steps) if w.where.is_main else None
    return [
        WorkerNodes(_worker_nodes(w.where), w.logger),
        WindowMetrics(),
        Pictures(w.logger, faces),
        Validation(_validation(w)),
        MlflowMetrics(w.logger),
        Progress(writer),
        CheckpointReport(_checkpoint_saver(w), _report),
        Status(status_uri),
    ]


def train_loop(loop_config: LoopConfig) -> None:
    """Build this rank's trainer, register the hooks, run (Ray Train's ``train_loop_per_worker`` is
    :func:`pipelines.training.job.train_loop_stopping_on_user_errors`, which rebuilds ``loop_config``)."""
    w = start_worker(loop_config)
    config = w.config
    runner = StepRunner(
        w.network,
        w.optimizer,
        PareLoss(config.loss),
        config.train,
        w.where.device,
        w.where.world_size,
        w.scaler,
        NanPolicy(config.train.nan_policy, config.train.max_nan_skips),
        precision=w.precision,
    )
    schedule = DataSchedule(w, lambda name: w.logger and w.logger.tag("pare.stage", name))
    trainer = Trainer(
        config,
        w.where,
        w.core,
        runner,
        schedule,
        w.state,
        last_score=w.state.best_pa_mpjpe if math.isfinite(w.state.best_pa_mpjpe) else NO_SCORE,
    )
    faults = Faults.parse(loop_config.faults)
    trainer.register([*default_hooks(w, loop_config.status_uri), *([FaultInjection(faults)] if faults.any() else [])])
    if w.logger is not None:
        w.logger.attach(trainer.say)  # the logger's notices reach the user through the driver's progress
        w.logger.tag("pare.precision", w.precision.describe().removeprefix("precision: "))
    trainer.say(w.precision.describe())
    if w.where.device.type == "cuda" and config.tracking.system_metrics and not find_spec("pynvml"):
        trainer.say("no GPU system metrics: they need nvidia-ml-py (pip install 'pare-pipeline[gpu]')")
    if w.state.step:
        trainer.say(f"resuming at step {w.state.step} (restart {w.state.restarts})")
    trainer.run()


def share_rank0_buffers(module, world_size: int) -> None:
    """Give every rank rank 0's BatchNorm statistics, so that validation measures the model rank 0 checkpoints.

    DDP runs with ``broadcast_buffers=False`` (the body model's buffers are large and constant), so each
    rank's running statistics follow its own batches; without this, the ranks' shares of the validation
    set would be measured with slightly different models (0.1 mm of PA-MPJPE in the tests).
    """
    if world_size == 1:
        return
    import torch.distributed as dist

    for name, buffer in module.named_buffers():
        if not name.startswith("body_model."):
            dist.broadcast(buffer, src=0)


def worker_environment() -> dict[str, str]:
    """Environment of the training workers (numba cache, quiet libraries, MLflow system-metric settings, input limits)."""
    passed = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_SYSTEM_METRICS_") or k == VERBOSE_ENV}
    passed |= limits_environment()
    return passed | {
        "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "pare-numba")),
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
