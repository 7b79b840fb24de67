"""What the driver hands every Ray Train worker: :class:`LoopConfig`.

Ray Train passes ``train_loop_config`` to the workers as a plain dict, so the driver sends
``dataclasses.asdict(loop_config)`` and the workers' entry point
(:func:`pipelines.training.job.train_loop_stopping_on_user_errors`) rebuilds it with
``LoopConfig(**values)``, which names a missing or unknown field. Everything in it is plain,
picklable data. No torch here: the driver imports this before Ray starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


class DatasetShards(TypedDict):
    """One training dataset's shards, over all its folders."""

    urls: list[str]  # shard URLs (local paths or fsspec URIs)
    samples: list[int]  # samples in each shard: the weights of the shard draw


@dataclass(frozen=True)
class LoopConfig:
    """The resolved run, as :func:`pipelines.training.loop.train_loop` gets it on every worker."""

    config_yaml: str
    """The resolved config as YAML (each worker parses it again: one source of truth)."""
    asset_dir: str
    """The body model's folder, resolved on the driver."""
    run_id: str
    """The MLflow run that rank 0 logs to."""
    tracking_uri: str
    """The MLflow tracking URI of that run."""
    status_uri: str
    """The folder (or URI) of the run's status and progress files, which the driver reads."""
    shards: dict[str, DatasetShards]
    """Training dataset name -> its shards."""
    validation_urls: list[str] = field(default_factory=list)
    """Validation shard URLs; empty: no validation."""
    faults: dict[str, str] = field(default_factory=dict)
    """The ``PARE_FAULT_*`` variables of the driver's environment (tests inject failures with them)."""


__all__ = ["DatasetShards", "LoopConfig"]
