"""MLflow for training: the run is made on the driver, rank 0 logs into it, and a lost server never stops training.

- :func:`open_run` (driver): resolves the tracking URI (default: sqlite under a local storage
  path; a remote one such as ``s3://`` needs ``tracking.tracking_uri``), finds the run of this ``train.run_name`` in the experiment or creates it, so that a
  rerun or a restart after a failure logs into the same run with continuous steps.
- :func:`log_setup` (driver): flattened params, the resolved config as YAML, its hash as a tag,
  and every shard folder's manifest as an MLflow dataset (digest: the manifest's sha256).
- :class:`RunLogger` (rank 0): batched metrics, pictures and artifacts. Every call is guarded:
  when the server cannot be reached, training carries on, says so once, counts what it could
  not log, and tries again later.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pare_model.errors import UserFacingError
from pipelines.config.train import TrackingConfig
from pipelines.tracking_store import quiet_mlflow_env

log = logging.getLogger(__name__)

RUN_NAME_TAG = "pare.run_name"
STORAGE_TAG = "pare.storage"
CONFIG_HASH_TAG = "pare.config_hash"
DIGEST_CHARS = 32
"""MLflow stores at most 36 characters of a dataset digest; the first 32 hex digits of the manifest sha256."""


def resolve_tracking_uri(config: TrackingConfig, storage_path: str) -> str:
    """``tracking.tracking_uri``, else ``MLFLOW_TRACKING_URI``, else sqlite under a local storage path."""
    if config.tracking_uri:
        return config.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if "://" in storage_path:
        raise UserFacingError(
            f"train.storage_path is remote ({storage_path}) but there is no MLflow server to log to (the default "
            "sqlite store cannot live there): set tracking.tracking_uri (e.g. http://mlflow:5000) or the "
            "MLFLOW_TRACKING_URI environment variable; a local sqlite:///FILE.db works when every worker runs "
            "on this machine"
        )
    return f"sqlite:///{Path(storage_path).resolve() / 'mlflow.db'}"


@dataclass(frozen=True)
class RunHandle:
    run_id: str
    experiment_id: str
    tracking_uri: str
    resumed: bool


def _experiment(client, config: TrackingConfig, tracking_uri: str) -> str:
    """The experiment's id, created on first use; with a sqlite store its artifacts go beside the database file
    (``<storage_path>/mlartifacts`` for the default store), not into MLflow's default ``./mlruns``."""
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:///"):
        location = (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return client.create_experiment(config.experiment, artifact_location=location)


def open_run(config: TrackingConfig, run_name: str, storage_path: str) -> RunHandle:
    """The MLflow run of ``run_name`` in the experiment (created on first use); marked RUNNING."""
    from mlflow.tracking import MlflowClient

    tracking_uri = resolve_tracking_uri(config, storage_path)
    client = MlflowClient(tracking_uri)
    experiment_id = _experiment(client, config, tracking_uri)
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}' and tags.`{STORAGE_TAG}` = '{storage_path}'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if runs:
        run_id = runs[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return RunHandle(run_id, experiment_id, tracking_uri, resumed=True)
    run = client.create_run(experiment_id, run_name=run_name, tags={RUN_NAME_TAG: run_name, STORAGE_TAG: storage_path})
    return RunHandle(run.info.run_id, experiment_id, tracking_uri, resumed=False)


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}; lists and empty mappings become their text."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def log_setup(handle: RunHandle, config_tree: dict, config_yaml: str, config_hash: str, folders) -> None:
    """Params, config YAML and hash, and the shard manifests as datasets; on a resumed run, only what is new."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(handle.tracking_uri)
    run = client.get_run(handle.run_id)
    known = dict(run.data.params)
    params = flatten(config_tree)
    changed = {k for k, v in params.items() if k in known and known[k] != v[:6000]}
    if changed:
        log.warning(
            "the config changed since this run started (%s); the run keeps its first values",
            ", ".join(sorted(changed)[:8]),
        )
    new = [Param(k, v[:6000]) for k, v in sorted(params.items()) if k not in known]
    for start in range(0, len(new), 100):
        client.log_batch(handle.run_id, params=new[start : start + 100])
    client.set_tag(handle.run_id, CONFIG_HASH_TAG, config_hash)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(config_yaml)
        client.log_artifact(handle.run_id, str(path))
    inputs = []
    for context, shard_folder in folders:
        with warnings.catch_warnings():
            # MLflow 3 registers LocalArtifactDatasetSource twice (for the schemes "" and "file") and warns that a
            # local path "can be interpreted in multiple ways" between the two identical classes; nothing to choose
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple")
            source = resolve_dataset_source(shard_folder.uri)
        name = f"{shard_folder.manifest.get('dataset', '?')}/{shard_folder.manifest.get('split', '?')}"
        dataset = MetaDataset(source=source, name=name, digest=shard_folder.digest[:DIGEST_CHARS])
        tags = [InputTag("mlflow.data.context", "validation" if context == "validation" else "train")]
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags))
    if inputs:
        client.log_inputs(handle.run_id, datasets=inputs)
    del mlflow


class RunLogger:
    """Rank 0's logger: metrics buffered and sent in batches; every failure is survived and reported once."""

    RETRY_AFTER_S = 30.0

    def __init__(self, tracking_uri: str, run_id: str, timeout_s: float, system_metrics: bool) -> None:
        from mlflow.tracking import MlflowClient

        quiet_mlflow_env(timeout_s, retries=0)
        self.client = MlflowClient(tracking_uri)
        self.tracking_uri, self.run_id = tracking_uri, run_id
        self.held: list[str] = []  # notices before :meth:`attach`
        self.say: Callable[[str], None] = self._hold
        self.pending: list = []
        self.unreachable_since: float | None = None
        self.dropped = 0
        self.monitor = None
        if system_metrics:
            self._guard(self._start_monitor)

    def _hold(self, message: str) -> None:
        print(message, flush=True)
        self.held.append(message)

    def attach(self, say: Callable[[str], None]) -> None:
        """Send the notices (server lost, server back) to ``say`` from now on, the trainer's line for the user
        that the driver shows; those said before go there first."""
        self.say = say
        for message in self.held:
            say(message)
        self.held.clear()

    def _start_monitor(self) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.monitor = SystemMetricsMonitor(self.run_id, resume_logging=True, tracking_uri=self.tracking_uri)
        self.monitor.start()

    def _guard(self, action, *args) -> bool:
        if self.unreachable_since is not None and time.monotonic() - self.unreachable_since < self.RETRY_AFTER_S:
            return False
        try:
            action(*args)
        except Exception as error:  # the server, the network or the store: training must go on
            if self.unreachable_since is None:
                self.say(
                    f"MLflow at {self.tracking_uri} is unreachable ({type(error).__name__}: {str(error)[:200]}); "
                    "training continues and will retry logging"
                )
            self.unreachable_since = time.monotonic()
            return False
        if self.unreachable_since is not None:
            self.say(f"MLflow at {self.tracking_uri} is reachable again; {self.dropped} values could not be logged")
            self.unreachable_since = None
        return True

    def metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.pending.extend(Metric(k, float(v), now, step) for k, v in values.items())
        self.flush()

    def flush(self) -> None:
        while self.pending:
            batch = self.pending[:1000]
            if not self._guard(lambda b=batch: self.client.log_batch(self.run_id, metrics=b)):
                if len(self.pending) > 100_000:  # a long outage: keep memory bounded
                    self.dropped += len(self.pending) - 100_000
                    self.pending = self.pending[-100_000:]
                return
            self.pending = self.pending[len(batch) :]

    def image(self, image, artifact_file: str) -> None:
        if not self._guard(lambda: self.client.log_image(self.run_id, image, artifact_file=artifact_file)):
            self.dropped += 1

    def artifact(self, path: str, artifact_path: str | None = None) -> None:
        if not self._guard(lambda: self.client.log_artifact(self.run_id, path, artifact_path)):
            self.dropped += 1

    def tag(self, key: str, value: str) -> None:
        self._guard(lambda: self.client.set_tag(self.run_id, key, value))

    def close(self) -> None:
        self.flush()
        if self.monitor is not None:
            try:
                self.monitor.finish()
            except Exception:  # the monitor logs its last values; losing them is harmless
                pass
