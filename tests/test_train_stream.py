"""The streaming loader: mixing ratios, rank splits, validation coverage, stages, damaged shards."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pipelines.config.loader import load_config
from pipelines.config.train import LoaderConfig
from pipelines.data.shard_folders import resolve_training_shards
from pipelines.data.stream import MixSource, TrainStream, ValidationStream, make_loader, split
from pipelines.training.loop import stage_at, stages_from

FAST = LoaderConfig(batch_size=8, num_workers=0, label_size=16, shuffle_buffer=20)


def source(folder, name: str, ratio: float) -> MixSource:
    urls = tuple(str(p) for p in sorted(folder.glob("*.tar")))
    return MixSource(name, urls, (1.0,) * len(urls), ratio)


def test_datasets_are_mixed_by_their_ratios(training_shards):
    sources = [
        source(training_shards / "coco-eft" / "train", "coco", 0.75),
        source(training_shards / "3dpw" / "test", "pw3d", 0.25),
    ]
    stream = iter(TrainStream(sources, FAST, 64, rank=0, world_size=1, seed=1))
    datasets = Counter(next(stream)["dataset"] for _ in range(400))
    assert set(datasets) == {"coco-eft", "3dpw"}
    assert abs(datasets["3dpw"] / 400 - 0.25) < 0.06


def test_ranks_read_disjoint_shards_and_differ_by_seed(training_shards):
    folder = training_shards / "coco-eft" / "train"
    keys = []
    for rank in (0, 1):
        stream = iter(TrainStream([source(folder, "coco", 1.0)], FAST, 64, rank=rank, world_size=2, seed=0))
        keys.append({next(stream)["key"] for _ in range(150)})
    assert keys[0] and keys[1] and not keys[0] & keys[1]

    def first_keys(start_step: int) -> list[str]:
        stream = iter(TrainStream([source(folder, "coco", 1.0)], FAST, 64, 0, 2, 0, start_step=start_step))
        return [next(stream)["key"] for _ in range(20)]

    assert first_keys(0) == first_keys(0)  # seeded: the same draw twice
    assert first_keys(50) != first_keys(0)  # a resumed run draws anew rather than replaying its first batches


def test_validation_covers_every_sample_once_over_ranks(training_shards):
    urls = [str(p) for p in sorted((training_shards / "3dpw" / "test").glob("*.tar"))]
    seen = []
    for rank in range(3):
        for batch in make_loader(ValidationStream(urls, FAST, 64, rank, 3), FAST, drop_last=False):
            seen.extend(batch["key"])
    manifest_total = sum(
        f.total
        for f in resolve_training_shards(
            load_config(None, [f"data.datasets.x.shards=[{training_shards / '3dpw' / 'test'}]"]).data
        ).datasets["x"]
    )
    assert len(seen) == len(set(seen)) == manifest_total
    limited = list(ValidationStream(urls, FAST, 64, 0, 1, max_samples=10))
    assert len(limited) == 10


def test_split_is_by_rank_only_with_enough_items():
    assert split(list(range(5)), 1, 2) == [1, 3]
    assert split([7], 1, 2) == [7]


def test_stages_switch_the_mix_at_their_start_step(training_shards):
    config = load_config(
        None,
        [
            f"data.datasets.coco.shards=[{training_shards / 'coco-eft' / 'train'}]",
            f"data.datasets.pw3d.shards=[{training_shards / '3dpw' / 'test'}]",
            "data.stages.one.start_step=0",
            "data.stages.one.mix.coco=1.0",
            "data.stages.two.start_step=100",
            "data.stages.two.mix.coco=0.5",
            "data.stages.two.mix.pw3d=0.5",
        ],
    )
    shards = resolve_training_shards(config.data)
    plain = {
        n: {"urls": [u for f in fs for u in f.urls], "samples": [s for f in fs for s in f.samples]}
        for n, fs in shards.datasets.items()
    }
    stages = stages_from(config, plain)
    assert [s.name for s in stages] == ["one", "two"]
    assert stage_at(stages, 99).name == "one" and stage_at(stages, 100).name == "two"
    assert [m.name for m in stage_at(stages, 5000).sources] == ["coco", "pw3d"]


def test_bad_data_configs_fail_naming_the_key(training_shards, tmp_path):
    from pare_model.errors import UserFacingError

    with pytest.raises(UserFacingError, match="data.datasets is empty"):
        resolve_training_shards(load_config(None, []).data)
    with pytest.raises(UserFacingError, match=r"data.datasets.coco: no manifest.json"):
        resolve_training_shards(load_config(None, [f"data.datasets.coco.shards=[{tmp_path}]"]).data)
    bad_mix = [f"data.datasets.coco.shards=[{training_shards / 'coco-eft' / 'train'}]", "data.stages.s.mix.h36m=1.0"]
    with pytest.raises(UserFacingError, match=r"data.stages.s.mix names \['h36m'\]"):
        resolve_training_shards(load_config(None, bad_mix).data)


def test_a_dataset_with_only_broken_shards_stops_with_its_name(tmp_path):
    for index in range(2):
        (tmp_path / f"shard-{index:06d}.tar").write_bytes(np.random.default_rng(index).bytes(5000))
    stream = iter(TrainStream([source(tmp_path, "broken", 1.0)], FAST, 64, 0, 1, 0))
    from pipelines.data.stream import ShardDataError

    with pytest.raises(ShardDataError, match="dataset 'broken'.*pare shards validate"):
        next(stream)


def test_the_tracking_uri_comes_from_config_then_environment_then_local_sqlite(tmp_path, monkeypatch):
    from pare_model.errors import UserFacingError
    from pipelines.config.train import TrackingConfig
    from pipelines.training.tracking import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(TrackingConfig(), str(tmp_path)) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    with pytest.raises(UserFacingError, match="tracking.tracking_uri .* or the MLFLOW_TRACKING_URI"):
        resolve_tracking_uri(TrackingConfig(), "s3://bucket/train")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(TrackingConfig(), "s3://bucket/train") == "http://127.0.0.1:5000"
    assert resolve_tracking_uri(TrackingConfig(tracking_uri="sqlite:///x.db"), "s3://b/t") == "sqlite:///x.db"
