"""The per-worker training loop that Ray Train runs on every rank (DDP over gloo or NCCL).

Each step: next batch from the streaming loader (time waiting on it is measured), forward,
PARE's loss with the part-segmentation schedule, a finite-loss check agreed by all ranks,
backward, Adam. Every ``log_every`` steps the ranks' sums are all-reduced and rank 0 logs them
to MLflow; every ``validate_every`` steps all ranks validate and merge their metrics; every
``checkpoint_every`` steps every rank reports to Ray Train and rank 0 attaches the checkpoint.
A restarted or resumed worker continues from the latest checkpoint with the same step count.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from pare_model.checkpoint import build_model_from_assets
from pare_model.image_input import to_model_input
from pare_model.loss_config import LOSS_TERMS
from pare_model.losses import PareLoss
from pipelines.config.loader import load_config_text
from pipelines.config.schema import PareConfig
from pipelines.training.checkpoints import LoopState, load_checkpoint, load_initial_weights, save_checkpoint
from pipelines.training.data.stream import MixSource, TrainStream, ValidationStream, make_loader
from pipelines.training.faults import Faults
from pipelines.training.lr_schedule import learning_rate_at, set_learning_rate
from pipelines.training.pictures import training_sheet
from pipelines.training.status import write_status
from pipelines.training.validation import merge_over_ranks, validate

SCORE = "val_pa_mpjpe"
"""The metric Ray Train ranks checkpoints by (lower is better)."""

NO_SCORE = 1e9
"""Score of checkpoints taken before the first validation."""

_BATCH_TENSORS = ("segm_mask", "keypoints", "joints_3d", "pose", "betas", "has_smpl", "has_joints_3d", "has_segm")


@dataclass
class Stage:
    name: str
    start_step: int
    sources: list[MixSource]


def stages_from(config: PareConfig, shards: dict) -> list[Stage]:
    """The data schedule: configured stages sorted by start, or all datasets in equal parts."""

    def sources(mix: dict[str, float]) -> list[MixSource]:
        return [MixSource(name, tuple(shards[name]["urls"]), tuple(shards[name]["samples"]), ratio)
                for name, ratio in mix.items()]  # fmt: skip

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


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class StepStats:
    """Sums over the steps since the last log, all-reduced before logging."""

    NAMES = ("loss", *LOSS_TERMS, "grad_norm", "samples", "wait_s", "step_s", "skipped", "occluders")

    def __init__(self) -> None:
        self.values = dict.fromkeys(self.NAMES, 0.0)
        self.steps = 0

    def add(self, **values: float) -> None:
        for name, value in values.items():
            self.values[name] += float(value)

    def reduced(self, world_size: int, device: torch.device) -> dict[str, float]:
        """Sums over all ranks (on ``device``: NCCL reduces GPU tensors only), as per-step means and rates."""
        tensor = torch.tensor([self.values[n] for n in self.NAMES] + [self.steps], dtype=torch.float64, device=device)
        if world_size > 1:
            dist.all_reduce(tensor)
        tensor = tensor.cpu()
        totals = dict(zip(self.NAMES, tensor[:-1].tolist(), strict=True))
        steps = max(tensor[-1].item(), 1)
        out = {f"train/{name}": totals[name] / steps for name in ("loss", *LOSS_TERMS, "grad_norm")}
        wall = totals["step_s"] / world_size
        out["train/samples_per_s"] = totals["samples"] / wall if wall > 0 else 0.0
        out["train/loader_wait_fraction"] = totals["wait_s"] / totals["step_s"] if totals["step_s"] > 0 else 0.0
        out["train/occluders_per_sample"] = totals["occluders"] / max(totals["samples"], 1)
        out["_skipped"] = totals["skipped"]
        self.__init__()
        return out


def clip_gradients(network: torch.nn.Module, max_norm: float) -> float:
    """The gradients' global norm before clipping; clipped to ``max_norm`` when it is > 0 (DDP's gradients are
    already averaged over ranks, so every rank computes the same norm and clips the same way)."""
    limit = max_norm if max_norm > 0 else float("inf")
    return float(torch.nn.utils.clip_grad_norm_(network.parameters(), limit))


def _agree_finite(loss: torch.Tensor, world_size: int) -> bool:
    """Whether the loss is finite on every rank (all skip or stop together, or DDP would hang)."""
    flag = torch.isfinite(loss).float().reshape(1)
    if world_size > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item() == 1.0)


@dataclass
class Worker:
    """What one rank holds for the whole loop."""

    loop_config: dict
    config: PareConfig
    rank: int
    world_size: int
    device: torch.device
    core: torch.nn.Module  # the plain module: checkpoints, validation, pictures
    network: torch.nn.Module  # the DDP wrapper when there are several ranks
    optimizer: torch.optim.Optimizer
    scaler: object
    state: LoopState
    logger: object  # RunLogger on rank 0, else None
    last_score: float = NO_SCORE


def _start(loop_config: dict) -> Worker:
    """Config, model, optimizer and state (resumed from Ray Train's checkpoint, or the init checkpoint), DDP, logger."""
    import ray.train

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    config = load_config_text(loop_config["config_yaml"], "from the driver")
    train = config.train
    torch.set_num_threads(train.torch_threads or train.cpus_per_worker)
    torch.manual_seed(train.seed)
    device = _device(config)
    model = build_model_from_assets(config.model, loop_config["asset_dir"])
    optimizer = torch.optim.Adam(model.parameters(), lr=train.learning_rate, weight_decay=train.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if train.precision == "fp16" and device.type == "cuda" else None
    state = LoopState()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder), model, optimizer, scaler)
        state.restarts += 1
    elif train.init_checkpoint:
        load_initial_weights(train.init_checkpoint, model)
    model.to(device)
    for group in optimizer.state.values():  # optimizer tensors follow the model to the device
        for key, value in group.items():
            if isinstance(value, torch.Tensor) and key != "step":
                group[key] = value.to(device)
    network = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"broadcast_buffers": False}) \
        if world_size > 1 else model  # fmt: skip
    logger = None
    if rank == 0:
        from pipelines.training.tracking import RunLogger

        logger = RunLogger(loop_config["tracking_uri"], loop_config["run_id"], config.tracking.timeout_s,
                           config.tracking.system_metrics)  # fmt: skip
        logger.tag("pare.restarts", str(state.restarts))
        if state.step:
            print(f"resuming at step {state.step} (restart {state.restarts})", flush=True)
    last_score = state.best_pa_mpjpe if math.isfinite(state.best_pa_mpjpe) else NO_SCORE
    return Worker(loop_config, config, rank, world_size, device, model, network, optimizer, scaler, state, logger,
                  last_score)  # fmt: skip


def _report(w: Worker, metrics: dict) -> None:
    """Report to Ray Train, rank 0 with the checkpoint."""
    import ray.train
    from ray.train import Checkpoint

    metrics = metrics | {"step": w.state.step, SCORE: w.last_score}
    with tempfile.TemporaryDirectory() as folder:
        if w.rank == 0:
            save_checkpoint(Path(folder), w.core.network_state_dict(), w.config.model, w.optimizer, w.scaler, w.state,
                            {"run_id": w.loop_config["run_id"], "run_name": w.config.train.run_name})  # fmt: skip
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder) if w.rank == 0 else None)


def _validate(w: Worker) -> dict:
    """Validation metrics merged over ranks (``val/*``), and the score and best score updated; {} without data."""
    config, urls = w.config, w.loop_config["validation_urls"]
    if not urls:
        return {}
    per_rank = config.data.validation_max_samples // w.world_size if config.data.validation_max_samples else 0
    val_loader = make_loader(
        ValidationStream(urls, config.loader, config.model.image_size, w.rank, w.world_size, per_rank),
        config.loader, drop_last=False,
    )  # fmt: skip
    share_rank0_buffers(w.core, w.world_size)
    ours, baseline = validate(w.core, val_loader, w.device)
    ours, baseline = merge_over_ranks(ours), merge_over_ranks(baseline)
    if ours.count == 0:
        return {}
    values = {f"val/{k}": v for k, v in ours.compute().items() if isinstance(v, float)}
    values |= {f"val/baseline_{k}": v for k, v in baseline.compute().items() if isinstance(v, float)}
    values["val/samples"] = ours.count
    w.last_score = values["val/pa_mpjpe"]
    w.state.best_pa_mpjpe = min(w.state.best_pa_mpjpe, w.last_score)
    values["val/best_pa_mpjpe"] = w.state.best_pa_mpjpe
    return values


def _non_finite(w: Worker, consecutive: int, stage: Stage, epoch: int, what: str) -> bool:
    """Handle a batch whose loss (or gradients: ``what``) is not finite on some rank; True when the run must stop
    (the policy, or too many in a row), after rank 0 wrote why to the status file."""
    train, state = w.config.train, w.state
    state.nan_skips += 1
    if train.nan_policy == "stop" or consecutive > train.max_nan_skips:
        verb = "is" if what == "loss" else "are"
        message = (f"the {what} {verb} not finite at step {state.step} (stage {stage.name}, epoch {epoch}); "
                   "lower train.learning_rate, check the data with `pare shards validate`, or set "
                   "train.nan_policy=skip to drop such batches")  # fmt: skip
        if w.rank == 0:
            write_status(w.loop_config["status_uri"], {"state": "stopped", "reason": "non_finite_loss",
                                                       "step": state.step, "message": message})  # fmt: skip
            if w.logger:
                w.logger.metrics({"train/nan_skips": state.nan_skips}, state.step)
                w.logger.close()
        return True
    w.optimizer.zero_grad(set_to_none=True)
    if w.logger:
        print(f"step {state.step}: non-finite {what}, batch skipped ({state.nan_skips} so far)", flush=True)
    return False


def _optimize(w: Worker, loss: torch.Tensor) -> float:
    """Backward, clipping and the optimizer step (through the gradient scaler for fp16); the gradients' norm.

    A finite loss can still have non-finite gradients; then the step is not taken (one NaN step would make
    every weight NaN) and the caller handles the batch like a non-finite loss."""
    w.optimizer.zero_grad(set_to_none=True)
    clip = w.config.train.grad_clip_norm
    if w.scaler is not None:
        w.scaler.scale(loss).backward()
        w.scaler.unscale_(w.optimizer)
        grad_norm = clip_gradients(w.network, clip)
        w.scaler.step(w.optimizer)
        w.scaler.update()
        return grad_norm
    loss.backward()
    grad_norm = clip_gradients(w.network, clip)
    if math.isfinite(grad_norm):  # DDP averaged the gradients: every rank sees the same norm and decides alike
        w.optimizer.step()
    return grad_norm


def _window_metrics(w: Worker, stats: StepStats, terms: dict) -> dict:
    """The logging window's metrics, all-reduced over ranks."""
    reduced = stats.reduced(w.world_size, w.device)
    w.state.skipped_samples += int(reduced.pop("_skipped"))
    return reduced | {
        "train/learning_rate": w.optimizer.param_groups[0]["lr"],
        "train/segm_weight": terms["segm_weight"].item(),
        "train/epoch": w.state.epoch,
        "train/skipped_samples": w.state.skipped_samples,
        "train/nan_skips": w.state.nan_skips,
    }


def _log(w: Worker, metrics: dict, step: int) -> None:
    w.logger.metrics(metrics, step)
    if any(k.startswith("val/") for k in metrics):
        shown = ("val/mpjpe", "val/pa_mpjpe", "val/baseline_pa_mpjpe", "val/orient_error_median")
        print(f"step {step}: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(metrics.items()) if k in shown),
              flush=True)  # fmt: skip


def _after_step(w: Worker, stats: StepStats, terms: dict, batch: dict, pred: dict, faces) -> None:
    """What is due after the step: the logging window, a picture, validation, MLflow, the checkpoint."""
    train, step = w.config.train, w.state.step
    final = step == train.max_steps
    metrics = _window_metrics(w, stats, terms) if step % train.log_every == 0 or final else {}
    if train.images_every and step % train.images_every == 0 and w.logger:
        w.logger.image(
            training_sheet(batch, {k: v.detach() for k, v in pred.items()}, faces, w.config.model.focal_length),
            f"images/step_{step:07d}.png",
        )
    if step % train.validate_every == 0 or final:
        metrics |= _validate(w)
    if w.logger and metrics:
        _log(w, metrics, step)
    if step % train.checkpoint_every == 0 or final:
        _report(w, {k.replace("/", "_"): v for k, v in metrics.items()})


def train_loop(loop_config: dict) -> None:
    """Ray Train's ``train_loop_per_worker``."""
    w = _start(loop_config)
    config, state = w.config, w.state
    train, loader_config = config.train, config.loader
    faults = Faults.parse(loop_config.get("faults", {}))
    loss_fn = PareLoss(config.loss)
    stages = stages_from(config, loop_config["shards"])
    faces = w.core.body_model.faces.cpu().numpy()
    stats, stage, batches, consecutive_nan = StepStats(), None, None, 0
    w.network.train()
    while state.step < train.max_steps:
        current = stage_at(stages, state.step)
        if current is not stage:
            stage = current
            stream = TrainStream(stage.sources, loader_config, config.model.image_size, w.rank, w.world_size,
                                 train.seed, start_step=state.step)  # fmt: skip
            batches = iter(make_loader(stream, loader_config))
            if w.logger:
                w.logger.tag("pare.stage", stage.name)
        started = time.perf_counter()
        batch = next(batches)
        waited = time.perf_counter() - started
        faults.maybe_kill(state.step, w.rank, w.world_size)
        epoch = state.step // train.steps_per_epoch
        images = to_model_input(batch["image"]).to(w.device, non_blocking=True)
        targets = {k: batch[k].to(w.device, non_blocking=True) for k in _BATCH_TENSORS}
        with _autocast(train.precision, w.device):
            pred = w.network(images)
            loss, terms = loss_fn(pred, targets, step=state.step, epoch=epoch)
        if faults.nan_now(state.step):
            loss = loss * float("nan")
        if not _agree_finite(loss.detach(), w.world_size):
            consecutive_nan += 1
            if _non_finite(w, consecutive_nan, stage, epoch, "loss"):
                return
            continue
        set_learning_rate(w.optimizer, learning_rate_at(train, state.step))
        grad_norm = _optimize(w, loss)
        if w.scaler is None and not math.isfinite(grad_norm):
            consecutive_nan += 1
            if _non_finite(w, consecutive_nan, stage, epoch, "gradients"):
                return
            continue
        consecutive_nan = 0
        state.step += 1
        state.epoch = state.step // train.steps_per_epoch
        stats.steps += 1
        stats.add(loss=loss.item(), **{n: terms[n].item() for n in LOSS_TERMS}, grad_norm=grad_norm,
                  samples=len(images), wait_s=waited, step_s=time.perf_counter() - started,
                  skipped=batch["skipped"].sum().item(), occluders=batch["occluders"].sum().item())  # fmt: skip
        _after_step(w, stats, terms, batch, pred, faces)
    if w.rank == 0:
        write_status(loop_config["status_uri"], {"state": "finished", "step": state.step,
                                                 "best_pa_mpjpe": state.best_pa_mpjpe})  # fmt: skip
        if w.logger:
            w.logger.close()


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
    """Environment of the training workers (numba cache, quiet libraries, MLflow system-metric settings)."""
    passed = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_SYSTEM_METRICS_")}
    return passed | {
        "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "pare-numba")),
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
