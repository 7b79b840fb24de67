"""The training workers' config: a LoopConfig on the driver, a plain dict through Ray Train, a LoopConfig again."""

from __future__ import annotations

import dataclasses
import pickle
from types import SimpleNamespace

import pytest

from pipelines.training.job import _loop_config
from pipelines.training.loop_config import LoopConfig


def _folder(urls: list[str], samples: list[int]) -> SimpleNamespace:
    return SimpleNamespace(urls=urls, samples=samples)


def test_the_loop_config_crosses_the_ray_boundary_as_a_plain_dict_and_back(monkeypatch):
    monkeypatch.setenv("PARE_FAULT_KILL_AT_STEP", "3")
    shards = SimpleNamespace(
        datasets={"coco": [_folder(["a.tar", "b.tar"], [10, 20]), _folder(["c.tar"], [5])]},
        validation=[_folder(["v.tar"], [7])],
    )
    handle = SimpleNamespace(run_id="run-1", tracking_uri="sqlite:///mlflow.db")
    config = _loop_config("train: {}\n", "/assets", handle, "/storage/status", shards)
    assert config.shards == {"coco": {"urls": ["a.tar", "b.tar", "c.tar"], "samples": [10, 20, 5]}}
    assert config.validation_urls == ["v.tar"]
    assert (config.run_id, config.tracking_uri, config.status_uri) == (
        "run-1",
        "sqlite:///mlflow.db",
        "/storage/status",
    )
    assert config.faults["PARE_FAULT_KILL_AT_STEP"] == "3"

    sent = pickle.loads(pickle.dumps(dataclasses.asdict(config)))  # what Ray Train hands each worker
    assert type(sent) is dict and LoopConfig(**sent) == config
    with pytest.raises(TypeError, match="run_id"):
        LoopConfig(**{k: v for k, v in sent.items() if k != "run_id"})
    with pytest.raises(TypeError, match="shard_urls"):
        LoopConfig(**sent, shard_urls=[])
