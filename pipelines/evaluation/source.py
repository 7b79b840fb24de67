"""Which model is evaluated, which training run it came from, and where results are logged.

``evaluate.checkpoint`` names a file, local or remote (``s3://bucket/pare/train/run/best/model.pt``);
its metadata (written by ``pare train``) holds the MLflow run id and step. ``evaluate.run_id`` names
a training run instead: its published best model (``<storage_path>/<run_name>/best/model.pt``) is
evaluated. A remote checkpoint is copied into the output folder for the driver to read, and each
Ray actor copies it for itself, so the actors need no shared filesystem with the driver. The
tracking URI is ``tracking.tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the ``mlflow.db``
that ``pare train`` left beside a local checkpoint's run folder, else sqlite in the output folder.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from pare_model.errors import UserFacingError
from pipelines.config.schema import PareConfig
from pipelines.io.storage import fetch_file, is_remote


class EvaluationError(UserFacingError):
    """Evaluation cannot run as configured; the message says how to fix it."""


@dataclass(frozen=True)
class ModelSource:
    checkpoint: str
    """Local checkpoint file ('' for the mean-pose and ground-truth predictors)."""
    label: str
    """Short name of what is evaluated, for run names and pictures."""
    step: int
    training_run_id: str
    tracking_uri: str
    location: str = ""
    """Where the checkpoint is (a local path or a URI such as ``s3://...``); the actors load it from there."""


def _nearby_store(checkpoint: str) -> str:
    """sqlite store of ``pare train``'s default layout: <storage>/mlflow.db beside <storage>/<run>/best/model.pt."""
    if is_remote(checkpoint):
        return ""
    for parent in list(Path(checkpoint).resolve().parents)[:4]:
        if (parent / "mlflow.db").is_file():
            return f"sqlite:///{parent / 'mlflow.db'}"
    return ""


def tracking_uri_for(config: PareConfig, checkpoint: str = "") -> str:
    uri = config.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    uri = uri or (_nearby_store(checkpoint) if checkpoint else "")
    return uri or f"sqlite:///{Path(config.evaluate.output_dir).resolve() / 'mlflow.db'}"


def _checkpoint_of_run(config: PareConfig, run_id: str) -> tuple[str, str, str]:
    """(local checkpoint file, its location, tracking URI) of a ``pare train`` run's best model."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = config.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise EvaluationError(
            "evaluate.run_id needs the MLflow store the run is in: set tracking.tracking_uri (for a local "
            "`pare train` run: sqlite:///<train.storage_path>/mlflow.db) or MLFLOW_TRACKING_URI"
        )
    from pipelines.tracking_store import prepare_tracking

    prepare_tracking(uri, config.tracking.timeout_s, read_only=True)
    try:
        run = MlflowClient(uri).get_run(run_id)
    except MlflowException as error:
        raise EvaluationError(f"MLflow run {run_id} is not in {uri}: {error.message}") from None
    tags = run.data.tags
    storage, name = tags.get("pare.storage"), tags.get("pare.run_name")
    candidates = [f"{storage}/{name}/best/model.pt"] if storage and name else []
    if tags.get("pare.best_checkpoint"):
        candidates.append(tags["pare.best_checkpoint"].rstrip("/") + "/model.pt")
    for candidate in candidates:
        local = _local_copy(candidate, Path(config.evaluate.output_dir))
        if local:
            return local, candidate, uri
    raise EvaluationError(
        f"MLflow run {run_id} is not a finished `pare train` run with a best model ({candidates or 'no pare.storage tag'}"
        " not found); pass evaluate.checkpoint=FILE instead"
    )


def _local_copy(location: str, folder: Path) -> str:
    """The checkpoint as a local path (a remote one copied into ``folder/checkpoint``), or '' when it does not exist."""
    if not is_remote(location):
        path = Path(location.removeprefix("file://"))
        return str(path) if path.exists() else ""  # a folder: the reader says what to pass instead
    target = folder / "checkpoint" / posixpath.basename(location.rstrip("/"))
    return str(target) if fetch_file(location, target) else ""


def _label(location: str) -> str:
    """Short name of a checkpoint: ``<run>-<folder>`` for ``pare train``'s ``.../<run>/best/model.pt``, else its stem."""
    parts = location.rstrip("/").split("/")
    if parts[-1] == "model.pt" and len(parts) >= 3:
        return f"{parts[-3]}-{parts[-2]}"
    return posixpath.splitext(parts[-1])[0]


def resolve_source(config: PareConfig) -> ModelSource:
    """What to evaluate, from ``evaluate.checkpoint`` / ``evaluate.run_id`` / ``evaluate.predictor``."""
    evaluate = config.evaluate
    if evaluate.predictor != "model":
        return ModelSource("", evaluate.predictor, 0, evaluate.run_id, tracking_uri_for(config))
    if evaluate.checkpoint and evaluate.run_id:
        raise EvaluationError("give evaluate.checkpoint or evaluate.run_id, not both")
    if evaluate.run_id:
        checkpoint, location, uri = _checkpoint_of_run(config, evaluate.run_id)
    elif evaluate.checkpoint:
        location = evaluate.checkpoint
        checkpoint = _local_copy(location, Path(evaluate.output_dir))
        if not checkpoint:
            raise EvaluationError(f"evaluate.checkpoint {location} does not exist")
        uri = tracking_uri_for(config, location)
    else:
        raise EvaluationError(
            "nothing to evaluate: pass --checkpoint FILE (a `pare train` model.pt or a released PARE .ckpt) or "
            "--run RUN_ID (an MLflow training run), or evaluate.predictor=mean_pose for the baseline"
        )
    step, run_id = 0, evaluate.run_id
    from pare_model.checkpoint.container import read_checkpoint_file
    from pare_model.checkpoint.native import is_native, parse_model_checkpoint

    payload = read_checkpoint_file(checkpoint)
    if is_native(payload):  # checked here so that no actor fails on it (its weights against its config)
        metadata = parse_model_checkpoint(payload, checkpoint).metadata
        step, run_id = int(metadata.get("step", 0) or 0), run_id or str(metadata.get("run_id", "") or "")
    location = location if is_remote(location) else str(Path(checkpoint).resolve())
    return ModelSource(checkpoint, _label(location), step, run_id, uri, location)
