"""Logging evaluation and analysis results to MLflow: into the training run, or a new run linked to it.

Logging into a finished training run adds metrics and artifacts without changing its status.
A new run goes to the training run's experiment when it is known (else ``tracking.experiment``),
is tagged ``pare.evaluated_run`` and, in the same experiment, nested under the training run
(``mlflow.parentRunId``) so the UI shows them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.config.schema import PareConfig
from pipelines.evaluation.source import EvaluationError, ModelSource


@dataclass(frozen=True)
class Logged:
    run_id: str
    tracking_uri: str
    into_training_run: bool


def _training_run(client, run_id: str):
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _create_experiment(client, config: PareConfig, source: ModelSource) -> str:
    """A new experiment; with a sqlite store its artifacts go beside the database, not into ./mlruns."""
    location = None
    if source.tracking_uri.startswith("sqlite:///"):
        location = (Path(source.tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return client.create_experiment(config.tracking.experiment, artifact_location=location)


def _new_run(client, config: PareConfig, source: ModelSource, training, kind: str) -> str:
    if training is not None:
        experiment_id = training.info.experiment_id
    else:
        experiment = client.get_experiment_by_name(config.tracking.experiment)
        experiment_id = experiment.experiment_id if experiment else _create_experiment(client, config, source)
    tags = {"pare.kind": kind, "pare.checkpoint": source.location or source.label}
    if training is not None:
        tags |= {"pare.evaluated_run": training.info.run_id, "mlflow.parentRunId": training.info.run_id}
    run = client.create_run(experiment_id, run_name=f"{kind}-{source.label}", tags=tags)
    return run.info.run_id


def check_logging(config: PareConfig, source: ModelSource) -> None:
    """Before any work: the store results will be logged to answers (skipped when log_to is 'none')."""
    if config.evaluate.log_to == "none":
        return
    from pipelines.tracking_store import prepare_tracking

    prepare_tracking(
        source.tracking_uri,
        config.tracking.timeout_s,
        setting="tracking.tracking_uri (or evaluate.log_to=none to log nothing)",
    )


def log_results(
    config: PareConfig,
    source: ModelSource,
    metrics: dict[str, float],
    files: Sequence[Path],
    artifact_dir: str,
    params: dict[str, str],
    kind: str,
) -> Logged | None:
    """Log metrics (at the checkpoint's step), params (new runs only) and files; None when log_to is 'none'."""
    if config.evaluate.log_to == "none":
        return None
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipelines.tracking_store import quiet_mlflow_env

    quiet_mlflow_env(config.tracking.timeout_s)
    client = MlflowClient(source.tracking_uri)
    try:
        training = _training_run(client, source.training_run_id)
        into_training = config.evaluate.log_to == "training_run" and training is not None
        run_id = training.info.run_id if into_training else _new_run(client, config, source, training, kind)
        import time

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, source.step) for k, v in sorted(metrics.items())]
        new_params = [] if into_training else [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for start in range(0, max(len(batch), len(new_params)), 100):
            client.log_batch(run_id, metrics=batch[start : start + 100], params=new_params[start : start + 100])
        for path in files:
            client.log_artifact(run_id, str(path), artifact_dir)
        if not into_training:
            client.set_terminated(run_id)
    except (MlflowException, OSError) as error:
        raise EvaluationError(
            f"could not log to MLflow at {source.tracking_uri} ({error}); the results are on disk. Check the server, "
            "or set evaluate.log_to=none"
        ) from None
    return Logged(run_id, source.tracking_uri, into_training)
