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


def train_loop(loop_config: dict) -> None:
    """Ray Train's ``train_loop_per_worker``."""
    import ray.train
    from ray.train import Checkpoint

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    config = load_config_text(loop_config["config_yaml"], "from the driver")
    train, loader_config = config.train, config.loader
    torch.set_num_threads(train.torch_threads or train.cpus_per_worker)
    torch.manual_seed(train.seed)
    faults = Faults.parse(loop_config.get("faults", {}))
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
    core = model  # the plain module: checkpoints, validation, pictures

    logger = None
    if rank == 0:
        from pipelines.training.tracking import RunLogger

        logger = RunLogger(loop_config["tracking_uri"], loop_config["run_id"], config.tracking.timeout_s,
                           config.tracking.system_metrics)  # fmt: skip
        logger.tag("pare.restarts", str(state.restarts))
        if state.step:
            print(f"resuming at step {state.step} (restart {state.restarts})", flush=True)

    loss_fn = PareLoss(config.loss)
    stages = stages_from(config, loop_config["shards"])
    validation_urls = loop_config["validation_urls"]
    faces = core.body_model.faces.cpu().numpy()
    last_score = state.best_pa_mpjpe if math.isfinite(state.best_pa_mpjpe) else NO_SCORE
    stats = StepStats()
    stage, batches = None, None
    consecutive_nan = 0
    network.train()

    def report(metrics: dict, with_checkpoint: bool) -> None:
        metrics = metrics | {"step": state.step, SCORE: last_score}
        if not with_checkpoint:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            if rank == 0:
                save_checkpoint(Path(folder), core.network_state_dict(), config.model, optimizer, scaler, state,
                                {"run_id": loop_config["run_id"], "run_name": train.run_name})  # fmt: skip
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder) if rank == 0 else None)

    def run_validation() -> dict:
        nonlocal last_score
        if not validation_urls:
            return {}
        val_loader = make_loader(
            ValidationStream(validation_urls, loader_config, config.model.image_size, rank, world_size,
                             config.data.validation_max_samples // world_size if config.data.validation_max_samples
                             else 0),
            loader_config, drop_last=False,
        )  # fmt: skip
        share_rank0_buffers(core, world_size)
        ours, baseline = validate(core, val_loader, device)
        ours, baseline = merge_over_ranks(ours), merge_over_ranks(baseline)
        if ours.count == 0:
            return {}
        values = {f"val/{k}": v for k, v in ours.compute().items() if isinstance(v, float)}
        values |= {f"val/baseline_{k}": v for k, v in baseline.compute().items() if isinstance(v, float)}
        values["val/samples"] = ours.count
        last_score = values["val/pa_mpjpe"]
        state.best_pa_mpjpe = min(state.best_pa_mpjpe, last_score)
        values["val/best_pa_mpjpe"] = state.best_pa_mpjpe
        return values

    while state.step < train.max_steps:
        current = stage_at(stages, state.step)
        if current is not stage:
            stage = current
            stream = TrainStream(stage.sources, loader_config, config.model.image_size, rank, world_size,
                                 train.seed, start_step=state.step)  # fmt: skip
            batches = iter(make_loader(stream, loader_config))
            if logger:
                logger.tag("pare.stage", stage.name)
        started = time.perf_counter()
        batch = next(batches)
        waited = time.perf_counter() - started
        faults.maybe_kill(state.step, rank, world_size)
        epoch = state.step // train.steps_per_epoch
        images = to_model_input(batch["image"]).to(device, non_blocking=True)
        targets = {k: batch[k].to(device, non_blocking=True) for k in _BATCH_TENSORS}
        with _autocast(train.precision, device):
            pred = network(images)
            loss, terms = loss_fn(pred, targets, step=state.step, epoch=epoch)
        if faults.nan_now(state.step):
            loss = loss * float("nan")
        if not _agree_finite(loss.detach(), world_size):
            consecutive_nan += 1
            state.nan_skips += 1
            if train.nan_policy == "stop" or consecutive_nan > train.max_nan_skips:
                message = (f"the loss is not finite at step {state.step} (stage {stage.name}, epoch {epoch}); "
                           "lower train.learning_rate, check the data with `pare shards validate`, or set "
                           "train.nan_policy=skip to drop such batches")  # fmt: skip
                if rank == 0:
                    write_status(loop_config["status_uri"], {"state": "stopped", "reason": "non_finite_loss",
                                                             "step": state.step, "message": message})  # fmt: skip
                    if logger:
                        logger.metrics({"train/nan_skips": state.nan_skips}, state.step)
                        logger.close()
                return
            optimizer.zero_grad(set_to_none=True)
            if logger:
                print(f"step {state.step}: non-finite loss, batch skipped ({state.nan_skips} so far)", flush=True)
            continue
        consecutive_nan = 0
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = clip_gradients(network, train.grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            grad_norm = clip_gradients(network, train.grad_clip_norm)
            optimizer.step()
        state.step += 1
        state.epoch = state.step // train.steps_per_epoch
        stats.steps += 1
        stats.add(loss=loss.item(), **{n: terms[n].item() for n in LOSS_TERMS}, grad_norm=grad_norm,
                  samples=len(images), wait_s=waited, step_s=time.perf_counter() - started,
                  skipped=batch["skipped"].sum().item(), occluders=batch["occluders"].sum().item())  # fmt: skip
        step = state.step
        metrics: dict = {}
        if step % train.log_every == 0 or step == train.max_steps:
            reduced = stats.reduced(world_size, device)
            state.skipped_samples += int(reduced.pop("_skipped"))
            metrics |= reduced | {
                "train/learning_rate": optimizer.param_groups[0]["lr"],
                "train/segm_weight": terms["segm_weight"].item(),
                "train/epoch": state.epoch,
                "train/skipped_samples": state.skipped_samples,
                "train/nan_skips": state.nan_skips,
            }
        if train.images_every and step % train.images_every == 0 and logger:
            logger.image(
                training_sheet(batch, {k: v.detach() for k, v in pred.items()}, faces, config.model.focal_length),
                f"images/step_{step:07d}.png",
            )
        final = step == train.max_steps
        if step % train.validate_every == 0 or final:
            metrics |= run_validation()
        if logger and metrics:
            logger.metrics(metrics, step)
            if any(k.startswith("val/") for k in metrics):
                print(f"step {step}: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(metrics.items())
                                                   if k in ("val/mpjpe", "val/pa_mpjpe", "val/baseline_pa_mpjpe",
                                                            "val/orient_error_median")),
                      flush=True)  # fmt: skip
        if step % train.checkpoint_every == 0 or final:
            report({k.replace("/", "_"): v for k, v in metrics.items()}, with_checkpoint=True)
    if rank == 0:
        write_status(loop_config["status_uri"], {"state": "finished", "step": state.step,
                                                 "best_pa_mpjpe": state.best_pa_mpjpe})  # fmt: skip
        if logger:
            logger.close()


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
