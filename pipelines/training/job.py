"""``pare train``: the driver. Resolves data and body model, opens the MLflow run, runs Ray Train, registers the model.

The driver reads the shard manifests (so a wrong path fails before any worker starts), makes
or finds the MLflow run of ``train.run_name`` and hands its id to the workers with the resolved
config. Ray Train runs :func:`pipelines.training.loop.train_loop` on ``train.num_workers``
workers; a worker that dies is replaced and every worker restarts from the latest checkpoint
(``train.max_failures`` times). Rerunning the same command with the same ``run_name`` and
``storage_path`` resumes from the latest checkpoint and logs into the same MLflow run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pare_model.errors import UserFacingError
from pipelines.body_model_source import prepare_assets
from pipelines.config.loader import to_yaml
from pipelines.config.schema import PareConfig
from pipelines.config.train import TrainConfig
from pipelines.console import verbose
from pipelines.data.shard_folders import resolve_training_shards
from pipelines.io.cluster import init_ray
from pipelines.preflight import check_body_model, check_shard_folders
from pipelines.tracking_store import failing_clearly, prepare_tracking
from pipelines.training import faults
from pipelines.training.loop_config import LoopConfig
from pipelines.training.progress import ProgressWatcher, clear_progress
from pipelines.training.status import clear_status, read_status, status_uri


class TrainingError(UserFacingError):
    """Training could not finish; the message says why and what to do."""


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    experiment_id: str
    tracking_uri: str
    run_name: str
    steps: int
    best_pa_mpjpe: float
    checkpoint: str
    best_checkpoint: str
    registered_model: str
    resumed: bool
    seconds: float
    skipped_samples: int = 0
    """Samples and shard reads the loaders skipped (unreadable, or ground truth with NaN or infinity)."""


def _storage_path(path: str) -> str:
    return path if "://" in path else str(Path(path).resolve())


def _config_hash(config_yaml: str) -> str:
    return hashlib.sha256(config_yaml.encode()).hexdigest()


def _check_init_checkpoint(path: str, config: PareConfig) -> None:
    """The workers would fail on it the same way on every restart: check it once, here."""
    from pare_model.checkpoint import read_model_checkpoint
    from pare_model.checkpoint.fit import check_network
    from pipelines.io.storage import StorageError, local_file

    try:
        with local_file(path) as local:  # a remote one (s3://...) is copied for the check
            if not local.exists():  # a folder: the reader says what to pass instead
                raise TrainingError(f"train.init_checkpoint {path} does not exist")
            checkpoint = read_model_checkpoint(local)
    except StorageError as error:
        raise TrainingError(f"train.init_checkpoint: {error}") from None
    check_network(
        checkpoint.network,
        config.model,
        f"train.init_checkpoint {path}",
        model="the configured model (model.* in the config)",
    )


def _check_bf16_gpus() -> None:
    """``train.precision=bf16`` on this machine's GPUs (a cluster's workers check their own when they start)."""
    import torch

    for index in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(index)
        if major < 8:
            raise TrainingError(
                f"train.precision=bf16 but GPU {index} ({torch.cuda.get_device_name(index)}, compute capability "
                f"{major}.{minor}) has no bf16 (it needs 8.0 or later); use train.precision=fp16 or auto (fp32 there)"
            )


def _check(config: PareConfig) -> None:
    """What would fail the same way in every Ray Train worker and on every restart, checked before any starts."""
    train = config.train
    if train.use_gpu:
        import torch

        if not torch.cuda.is_available() and not train.ray_address:
            raise TrainingError("train.use_gpu=true but this machine has no CUDA GPU; set train.use_gpu=false")
        if train.precision == "bf16" and torch.cuda.is_available():
            _check_bf16_gpus()
    elif train.precision == "fp16":
        raise TrainingError("train.precision=fp16 needs GPUs; use auto, fp32 or bf16 on CPU workers")
    if train.init_checkpoint:
        _check_init_checkpoint(train.init_checkpoint, config)
    _check_occluders(config)


PROCEDURAL_OCCLUDERS = (
    "Synthetic occlusion: procedural occluders, as loader.occlusion.bank is not set (PARE pastes Pascal VOC "
    "objects: build a bank with `pare occluders build --voc VOCdevkit/VOC2012 --out FILE`, then set "
    "loader.occlusion.bank=FILE)."
)
"""The driver's one console line when training falls back to procedural occluders."""


def _check_occluders(config: PareConfig) -> None:
    """A configured occluder bank loads (every loader process would fail on it, on every restart); without one,
    one line on the console says that procedural occluders stand in for the paper's Pascal VOC objects."""
    occlusion = config.loader.occlusion
    if not occlusion.enabled or occlusion.probability == 0.0:
        return
    if not occlusion.bank:
        print(PROCEDURAL_OCCLUDERS, flush=True)
        return
    from preprocessing.augment.synthetic_occlusion import OccluderBankError, load_bank

    try:
        load_bank(occlusion.bank)
    except OccluderBankError as error:
        raise TrainingError(f"loader.occlusion.bank: {error}") from None


def _user_message(error: UserFacingError) -> str:
    """The error's own message; a DataLoader worker's error arrives as "Caught X in DataLoader worker ... X: msg"."""
    text = str(error)
    if text.startswith("Caught ") and "Original Traceback" in text:
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    return text


def train_loop_stopping_on_user_errors(loop_config: dict[str, Any]) -> None:
    """:func:`~pipelines.training.loop.train_loop`, but a user error stops the run instead of being retried.

    Ray Train's worker entry point: ``loop_config`` is the plain dict of a :class:`LoopConfig` (Ray Train
    passes ``train_loop_config`` on as a dict). Ray Train restarts failed workers ``train.max_failures``
    times; an error in the user's data or files would fail the same way each time, for minutes, before
    the message. The worker records it as a deliberate stop in the status file, which the driver raises
    as one line.
    """
    from pipelines.training.loop import train_loop
    from pipelines.training.status import write_status

    config = LoopConfig(**loop_config)
    try:
        train_loop(config)
    except UserFacingError as error:
        write_status(config.status_uri, {"state": "stopped", "reason": "user_error", "message": _user_message(error)})


def _check_storage(storage: str) -> None:
    """Checkpoints, the status and the progress file go to ``storage``: a remote one that cannot be written (no such
    bucket, refused credentials, an unreachable endpoint) fails here, before Ray starts, naming
    ``train.storage_path``. A local folder is made when the run starts (a failed command leaves none behind)."""
    from pipelines.io.storage import Storage, StorageError, is_remote

    if not is_remote(storage):
        return
    try:
        Storage(storage).check_writable()
    except StorageError as error:
        hint = " S3 credentials and AWS_ENDPOINT_URL come from the environment (docs/cluster.md)."
        raise TrainingError(f"train.storage_path: {error}{hint}") from None


def _checkpoint_uri(storage: str, checkpoint) -> str:
    """Where a Ray Train checkpoint is: its ``path`` is within the storage's filesystem, without the URI scheme
    (``bucket/prefix/run/checkpoint_...`` for ``s3://bucket/prefix``)."""
    if "://" not in storage:
        return checkpoint.path
    return f"{storage.split('://', 1)[0]}://{checkpoint.path.lstrip('/')}"


def _preflight(config: PareConfig, storage: str):
    """Everything checked before Ray starts: config, tracking store, storage, shards, body model; (shards, asset_dir)."""
    from pipelines.training.tracking import resolve_tracking_uri

    _check(config)
    # timeouts before the first MLflow call, and an unreachable server named in seconds, not minutes
    prepare_tracking(resolve_tracking_uri(config.tracking, storage), config.tracking.timeout_s)
    _check_storage(storage)
    shards = resolve_training_shards(config.data)
    for name, folders in shards.datasets.items():
        check_shard_folders(folders, f"data.datasets.{name}")
    check_shard_folders(shards.validation, "data.validation")
    asset_dir = str(prepare_assets(config.body_model).resolve())
    check_body_model(asset_dir)
    return shards, asset_dir


def _open_logged_run(config: PareConfig, storage: str, shards) -> tuple:
    """The MLflow run of ``train.run_name`` (made or found) with the config and datasets logged; (handle, yaml)."""
    from omegaconf import OmegaConf

    from pipelines.training.tracking import log_setup, open_run, resolve_tracking_uri

    config_yaml = to_yaml(config)
    uri = resolve_tracking_uri(config.tracking, storage)
    with failing_clearly(uri, config.tracking.timeout_s, f"setting up the run {config.train.run_name!r}"):
        handle = open_run(config.tracking, config.train.run_name, storage)
        log_setup(
            handle,
            OmegaConf.to_container(OmegaConf.create(config_yaml)),
            config_yaml,
            _config_hash(config_yaml),
            shards.all_folders(),
        )
    return handle, config_yaml


def _loop_config(config_yaml: str, asset_dir: str, handle, status: str, shards) -> LoopConfig:
    """What every worker's loop gets: the resolved config, the run, the status folder and the shard URLs."""
    return LoopConfig(
        config_yaml=config_yaml,
        asset_dir=asset_dir,
        run_id=handle.run_id,
        tracking_uri=handle.tracking_uri,
        status_uri=status,
        shards={
            name: {"urls": [u for f in folders for u in f.urls], "samples": [n for f in folders for n in f.samples]}
            for name, folders in shards.datasets.items()
        },
        validation_urls=[u for f in shards.validation for u in f.urls],
        faults=faults.from_environment(),
    )


def _trainer(config: PareConfig, loop_config: LoopConfig, storage: str):
    """Ray Train's TorchTrainer for the loop: workers, failure policy and checkpoint retention."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig

    from pipelines.training.loop import SCORE, worker_environment

    train = config.train
    return _torch_trainer_class()(
        train_loop_stopping_on_user_errors,
        train_loop_config=dataclasses.asdict(loop_config),  # a dict at the Ray boundary; rebuilt on the workers
        torch_config=TorchConfig(backend="nccl" if train.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=train.num_workers,
            use_gpu=train.use_gpu,
            resources_per_worker={"CPU": train.cpus_per_worker} | ({"GPU": 1} if train.use_gpu else {}),
        ),
        run_config=RunConfig(
            name=train.run_name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=train.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=train.keep_checkpoints, checkpoint_score_attribute=SCORE, checkpoint_score_order="min"
            ),
            worker_runtime_env={"env_vars": worker_environment()},
        ),
    )


def _torch_trainer_class():
    """Ray Train's TorchTrainer, less its dataset manager when the run passes no Ray Datasets, as ours never does
    (each worker streams its shards itself).

    Ray Train starts that manager, an actor holding the Ray Datasets' shards, at every start of the workers
    whether or not there are datasets: a process that imports Ray Data and torch (about 3 s of CPU, measured
    2026-12-03) and then only waits. ``tests/test_train_job.py`` checks that a run starts none; a Ray upgrade that
    renames the hook fails that test rather than this run.
    """
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback

    class Trainer(TorchTrainer):
        def _create_default_callbacks(self):
            callbacks = super()._create_default_callbacks()
            if self.datasets:
                return callbacks
            return [callback for callback in callbacks if not isinstance(callback, DatasetsCallback)]

    return Trainer


def _fit(trainer, client, handle, status: str, max_failures: int):
    """Run the trainer; a failure or a deliberate stop marks the MLflow run and raises one user-facing line."""
    import ray.train

    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as error:
        client.set_terminated(handle.run_id, "FAILED")
        from pipelines.user_errors import user_error_of

        message = user_error_of(error) or f"training failed after {max_failures} restarts: {error}"
        raise TrainingError(message) from error
    except BaseException:
        client.set_terminated(handle.run_id, "KILLED")
        raise
    final = read_status(status) or {}
    if final.get("state") == "stopped":
        client.set_tag(handle.run_id, "pare.stopped", final.get("reason", "?"))
        client.set_terminated(handle.run_id, "FAILED")
        raise TrainingError(final.get("message", "training stopped"))
    if result.checkpoint is None:
        client.set_terminated(handle.run_id, "FAILED")
        raise TrainingError(
            "training ended without a checkpoint; see the workers' logs (their folder is printed "
            "above, or rerun with pare --verbose)"
        )
    return result, final


def _record(config: PareConfig, client, handle, result, best, asset_dir: str, storage: str) -> str:
    """Log and register the final model and mark the run finished; returns 'name/version' or ''. An unreachable
    server only leaves the tracking record incomplete: the checkpoints are safe in storage."""
    try:
        registered = _log_final_model(config, handle, result.checkpoint, asset_dir)
        client.set_tag(handle.run_id, "pare.best_checkpoint", _checkpoint_uri(storage, best))
        client.set_tag(handle.run_id, "pare.latest_checkpoint", _checkpoint_uri(storage, result.checkpoint))
        client.set_terminated(handle.run_id, "FINISHED")
        return registered
    except Exception as error:
        print(
            f"MLflow at {handle.tracking_uri} is unreachable or refused the final model ({type(error).__name__}: "
            f"{str(error)[:200]}); the checkpoints are in {storage}/{config.train.run_name}. Rerun the same command "
            "when the server is back to log and register the model.",
            flush=True,
        )
        return ""


START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
"""Ray Train's limit on starting its workers, read by its controller, which the driver's value reaches."""
_USER_START_TIMEOUT = os.environ.get(START_TIMEOUT_ENV, "")
"""The limit the user set in the environment, which wins over ``train.worker_start_timeout_s``."""
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"
"""Ray Train's switch for its per-run actor that tells the workers when their node is about to be drained. The
loop does not read that signal (it checkpoints every ``train.checkpoint_every`` steps, and a run resumes after a
lost node), so the actor would only cost a process per run: off unless the environment sets it."""


def _ray_train_environment(train: TrainConfig) -> None:
    """Ray Train's settings read by its controller, which the driver's environment reaches."""
    os.environ[START_TIMEOUT_ENV] = _USER_START_TIMEOUT or str(train.worker_start_timeout_s)
    os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")


def run_training(config: PareConfig) -> TrainingResult:
    """Train as configured; returns where the run, its checkpoints and its model are."""
    from mlflow.tracking import MlflowClient

    from pipelines.training.loop import SCORE, worker_environment

    started = time.monotonic()
    train = config.train
    storage = _storage_path(train.storage_path)
    shards, asset_dir = _preflight(config, storage)
    handle, config_yaml = _open_logged_run(config, storage, shards)
    status = status_uri(storage, train.run_name)
    if "://" not in storage:
        Path(status).mkdir(parents=True, exist_ok=True)
    clear_status(status)
    clear_progress(status)
    loop_config = _loop_config(config_yaml, asset_dir, handle, status, shards)
    os.environ.update(worker_environment())
    _ray_train_environment(train)
    init_ray(train.ray_address)
    trainer = _trainer(config, loop_config, storage)
    client = MlflowClient(handle.tracking_uri)
    with ProgressWatcher(status, train.max_steps, enabled=not verbose()):
        result, final = _fit(trainer, client, handle, status, train.max_failures)
    best = (
        min(result.best_checkpoints, key=lambda pair: pair[1].get(SCORE, float("inf")))[0]
        if result.best_checkpoints
        else result.checkpoint
    )
    _publish(status, {"latest": result.checkpoint, "best": best})
    registered = _record(config, client, handle, result, best, asset_dir, storage)
    return TrainingResult(
        run_id=handle.run_id,
        experiment_id=handle.experiment_id,
        tracking_uri=handle.tracking_uri,
        run_name=train.run_name,
        steps=int(final.get("step", 0)),
        best_pa_mpjpe=float(final.get("best_pa_mpjpe", float("nan"))),
        checkpoint=f"{status}/latest/model.pt",
        best_checkpoint=f"{status}/best/model.pt",
        registered_model=registered,
        resumed=handle.resumed,
        seconds=time.monotonic() - started,
        skipped_samples=int(final.get("skipped_samples", 0)),
    )


def _publish(status: str, checkpoints: dict) -> None:
    """Copy the named checkpoints' model.pt to ``<run folder>/<name>/model.pt``: stable paths for
    ``train.init_checkpoint``, ``pare predict`` and ``pare evaluate``."""
    from pipelines.io.storage import Storage

    storage = Storage(status)
    for name, checkpoint in checkpoints.items():
        with checkpoint.as_directory() as folder:
            storage.write_bytes(f"{name}/model.pt", (Path(folder) / "model.pt").read_bytes())


def _log_final_model(config: PareConfig, handle, checkpoint, asset_dir: str) -> str:
    """Log the final network as an MLflow pyfunc model and register it; returns 'name/version' or ''."""
    from pipelines.training.mlflow_model import log_model

    with checkpoint.as_directory() as folder:
        return log_model(handle, Path(folder) / "model.pt", asset_dir, config.tracking.registered_model)
