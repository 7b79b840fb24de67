"""Read the runs of one MLflow experiment for comparison, and log a comparison back as a run.

:func:`read_comparison` resolves the experiment, selects runs (all of them, or given run ids
and run names), chooses the metrics (given, or every ``val/*`` and ``eval/*`` metric plus
``train/loss``), and reads each chosen metric's full history once: the final value is the one
at the last step, the best one is the min or max over the history (:func:`lower_is_better`).
NaN values count as values at their step but never as a best value.

Earlier comparison runs (tagged :data:`COMPARE_TAG`) and the evaluation and occlusion-analysis runs
of ``pare evaluate`` / ``pare occlusion-analysis`` (tagged ``pare.kind``; their metrics are in their
training run by default) are left out unless asked for by name or id.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Experiment, Run, ViewType
from mlflow.tracking import MlflowClient

from pare_model.errors import UserFacingError
from pipelines.tracking_store import first_line, prepare_tracking, read_only_uri

COMPARE_TAG = "pare.compare_runs"
"""Tag of a comparison run: the comma-separated ids of the runs it compares."""

LOWER_IS_BETTER_MARKERS = ("mpjpe", "pve", "loss", "error", "nan_skips", "skipped", "wait")
DEFAULT_PREFIXES = ("val/", "eval/")
DEFAULT_EXTRA_METRICS = ("train/loss",)
RUN_NAME_TAG = "mlflow.runName"
COMPARE_TIMEOUT_S = 30.0
"""Seconds one MLflow request may take (a metric history of a long run is the slowest)."""


class CompareError(UserFacingError):
    """The experiment, runs, metrics or tracking URI asked for do not exist or cannot be used."""


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better.

    True when the name contains one of :data:`LOWER_IS_BETTER_MARKERS` (errors such as
    ``val/pa_mpjpe`` and ``val/pve``, losses, counts of skipped or NaN steps, loader wait
    time); false otherwise (accuracies, throughput, ...), where the largest value is best.
    """
    name = metric.lower()
    return any(marker in name for marker in LOWER_IS_BETTER_MARKERS)


@dataclass(frozen=True)
class Point:
    """One logged value of a metric."""

    step: int
    value: float
    timestamp: int = 0


@dataclass
class RunData:
    """What a comparison needs from one run; metrics missing from the run are absent from the dicts."""

    run_id: str
    run_name: str
    status: str
    params: dict[str, str]
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[Point]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Run name and short id, e.g. ``lr-3e-4 (1a2b3c4d)``."""
        return f"{self.run_name} ({self.run_id[:8]})"


@dataclass
class Comparison:
    """The selected runs of an experiment, in start order, and the metrics to compare."""

    tracking_uri: str
    experiment: str
    experiment_id: str
    metrics: list[str]
    runs: list[RunData]


def resolve_tracking_uri(given: str | None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else an error that says how to choose a store."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise CompareError(
            "no MLflow tracking URI: pass --tracking-uri (e.g. http://mlflow:5000) or set MLFLOW_TRACKING_URI; "
            "training without a tracking URI logs to sqlite:///<train.storage_path>/mlflow.db"
        )
    return uri


def find_experiment(client: MlflowClient, name: str) -> Experiment:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment
    names = sorted(e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY))
    raise CompareError(f"no experiment named {name!r}; experiments in this store: {', '.join(names) or 'none'}")


def list_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    """Every active run of the experiment, oldest first (all result pages)."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], order_by=["attributes.start_time ASC"], max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def run_name(run: Run) -> str:
    return run.info.run_name or run.data.tags.get(RUN_NAME_TAG, "") or run.info.run_id[:8]


def _describe(runs: Iterable[Run]) -> str:
    return ", ".join(f"{run_name(run)} ({run.info.run_id})" for run in runs)


def select_runs(runs: Sequence[Run], wanted: Sequence[str] | None, experiment: str) -> list[Run]:
    """The runs named by id or run name (every run of a name given), in the order asked; all but comparison runs if none."""
    if not runs:
        raise CompareError(f"experiment {experiment!r} has no runs yet; train or evaluate into it first")
    if not wanted:
        chosen = [run for run in runs if COMPARE_TAG not in run.data.tags and "pare.kind" not in run.data.tags]
        if not chosen:
            raise CompareError(f"experiment {experiment!r} only holds comparison runs; nothing to compare")
        return chosen
    chosen: list[Run] = []
    for key in wanted:
        matches = [run for run in runs if key in (run.info.run_id, run_name(run))]
        if not matches:
            raise CompareError(
                f"no run {key!r} (by id or run name) in experiment {experiment!r}; runs: {_describe(runs)}"
            )
        seen = {run.info.run_id for run in chosen}
        chosen.extend(run for run in matches if run.info.run_id not in seen)
    return chosen


def choose_metrics(runs: Sequence[Run], requested: Sequence[str] | None) -> list[str]:
    """The requested metrics (each logged by at least one run), else the default set, else every metric."""
    available = sorted({name for run in runs for name in run.data.metrics})
    if not available:
        raise CompareError("the selected runs have logged no metrics")
    if requested:
        unknown = [name for name in requested if name not in available]
        if unknown:
            raise CompareError(
                f"unknown metric(s) {', '.join(unknown)}; metrics in the selected runs: {', '.join(available)}"
            )
        return list(dict.fromkeys(requested))
    default = [name for name in available if name.startswith(DEFAULT_PREFIXES)]
    default += [name for name in DEFAULT_EXTRA_METRICS if name in available]
    return default or available


def summarize(history: Sequence[Point], metric: str) -> tuple[float, float]:
    """(final, best) of a non-empty history: the value at the last step (latest write wins) and the min/max."""
    final = max(history, key=lambda point: (point.step, point.timestamp)).value
    finite = [point.value for point in history if not math.isnan(point.value)]
    if not finite:
        return final, math.nan
    return final, (min(finite) if lower_is_better(metric) else max(finite))


def read_run(client: MlflowClient, run: Run, metrics: Sequence[str]) -> RunData:
    data = RunData(run.info.run_id, run_name(run), run.info.status, dict(run.data.params))
    for metric in metrics:
        if metric not in run.data.metrics:
            continue
        history = [
            Point(m.step, float(m.value), m.timestamp) for m in client.get_metric_history(run.info.run_id, metric)
        ]
        history.sort(key=lambda point: (point.step, point.timestamp))
        if history:
            data.history[metric] = history
            data.final[metric], data.best[metric] = summarize(history, metric)
    return data


def _open_store(uri: str, experiment: str) -> tuple[MlflowClient, Experiment]:
    """The experiment, or a one-line error when the store is not an MLflow store (a stray file, a foreign database)."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        client = MlflowClient(tracking_uri=uri)
        return client, find_experiment(client, experiment)
    except (MlflowException, SQLAlchemyError) as error:
        raise CompareError(f"cannot read the MLflow store {uri}: {first_line(error)}") from None


def read_comparison(
    tracking_uri: str | None, experiment: str, wanted_runs: Sequence[str] | None, metrics: Sequence[str] | None
) -> Comparison:
    """Everything a report needs, read from the store at ``tracking_uri`` (see the module docstring)."""
    uri = prepare_tracking(
        resolve_tracking_uri(tracking_uri), COMPARE_TIMEOUT_S, read_only=True, setting="--tracking-uri"
    )
    client, found = _open_store(read_only_uri(uri, "--tracking-uri"), experiment)
    runs = select_runs(list_runs(client, found.experiment_id), wanted_runs, experiment)
    chosen = choose_metrics(runs, metrics)
    return Comparison(uri, experiment, found.experiment_id, chosen, [read_run(client, run, chosen) for run in runs])


def log_comparison_run(comparison: Comparison, files: Sequence[Path]) -> str:
    """A new run ``compare-<experiment>`` in the same experiment holding ``files`` as artifacts; its id."""
    client = MlflowClient(tracking_uri=comparison.tracking_uri)
    compared = ",".join(run.run_id for run in comparison.runs)
    run = client.create_run(
        comparison.experiment_id, run_name=f"compare-{comparison.experiment}", tags={COMPARE_TAG: compared}
    )
    try:
        for path in files:
            client.log_artifact(run.info.run_id, str(path))
    except Exception:
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    client.set_terminated(run.info.run_id)
    return run.info.run_id
