"""The streaming loader: mixing ratios, rank splits, validation coverage, stages, damaged shards."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

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


def _handmade_shard(folder, count: int, edit=None) -> str:
    """A shard of ``count`` samples written with the preprocessor's own encoders (no Ray needed); ``edit(index,
    annotation)`` may change each annotation first."""
    from preprocessing.samples.encode import encode_jpeg, encode_json, encode_png, sample_members, tar_bytes

    rng = np.random.default_rng(0)
    members = []
    for index in range(count):
        annotation = {
            "key": f"handmade_{index}",
            "dataset": "handmade",
            "crop": {"box_size": 64.0},
            "keypoints_2d": np.concatenate([rng.uniform(16, 80, (49, 2)), np.ones((49, 1))], axis=1),
            "joints_3d": np.concatenate([rng.normal(0, 0.3, (24, 3)), np.ones((24, 1))], axis=1),
            "pose": rng.normal(0, 0.1, 72),
            "betas": np.zeros(10),
            "has_smpl": 1,
            "has_joints_3d": 1,
            "has_segm": 1,
            "extra": {"index": index},
        }
        if edit:
            edit(index, annotation)
        crop = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        labels = rng.integers(0, 25, (96, 96), dtype=np.uint8)
        members += sample_members(
            f"handmade_{index}", encode_jpeg(crop, 90), encode_png(labels), encode_json(annotation)
        )
    path = folder / "shard-000000.tar"
    path.write_bytes(tar_bytes(members))
    return str(path)


def test_ground_truth_with_nan_or_infinity_is_dropped_and_counted(tmp_path):
    """The geometric augmentation turned a NaN root rotation into the identity (cv2.Rodrigues), so that evaluation
    scored such a sample and training learnt from it; it is dropped and counted, unless the array is not used."""

    def spoil(index: int, annotation: dict) -> None:
        if index == 1:
            annotation["pose"][0] = np.nan
        elif index == 2:
            annotation["keypoints_2d"][5, 0] = np.inf
        elif index == 3:
            annotation["betas"][0] = np.nan
        elif index == 4:  # 3D joints the sample does not use
            annotation["joints_3d"][0, 0], annotation["has_joints_3d"] = np.nan, 0
        elif index == 5:
            annotation["joints_3d"][7, 2] = -np.inf

    url = _handmade_shard(tmp_path, 7, spoil)
    batches = list(make_loader(ValidationStream([url], FAST, 64, 0, 1), FAST, drop_last=False))
    assert [key for batch in batches for key in batch["key"]] == ["handmade_0", "handmade_4", "handmade_6"]
    assert sum(int(b["non_finite"].sum()) for b in batches) == 4 == sum(int(b["skipped"].sum()) for b in batches)
    assert all(torch.isfinite(b["pose"]).all() for b in batches)


def test_batches_have_exactly_the_typed_training_batch_keys(tmp_path):
    """pipelines.data.batch.TrainingBatch names every key of a training and a validation batch, with its type and
    shape; the step moves exactly the loss's targets (pare_model.contracts.LossTargets) to the device."""
    from pare_model.contracts import LossTargets
    from pipelines.data.batch import TrainingBatch
    from pipelines.training.step import BATCH_TENSORS

    url = _handmade_shard(tmp_path, 4)
    config = dataclasses.replace(FAST, batch_size=4)
    stream = TrainStream([source(tmp_path, "handmade", 1.0)], config, 64, rank=0, world_size=1, seed=0)
    train = next(iter(make_loader(stream, config)))
    validation = next(iter(make_loader(ValidationStream([url], config, 64, 0, 1), config, drop_last=False)))
    assert not TrainingBatch.__optional_keys__
    assert set(BATCH_TENSORS) == LossTargets.__required_keys__ < TrainingBatch.__required_keys__
    for batch in (train, validation):
        assert set(batch) == TrainingBatch.__required_keys__
        for key, annotation in TrainingBatch.__annotations__.items():
            value = batch[key]
            annotation = getattr(annotation, "__forward_arg__", annotation)  # a string or a ForwardRef to one
            if annotation == "list[str]":
                assert isinstance(value, list) and len(value) == 4 and all(isinstance(v, str) for v in value), key
            else:
                assert annotation == "Tensor" and isinstance(value, torch.Tensor) and len(value) == 4, key
        shapes = {k: (tuple(v.shape), v.dtype) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        assert shapes == {
            "image": ((4, 64, 64, 3), torch.uint8),
            "segm_mask": ((4, 16, 16), torch.uint8),
            "keypoints": ((4, 49, 3), torch.float32),
            "joints_3d": ((4, 24, 4), torch.float32),
            "pose": ((4, 72), torch.float32),
            "betas": ((4, 10), torch.float32),
            "has_smpl": ((4,), torch.float32),
            "has_joints_3d": ((4,), torch.float32),
            "has_segm": ((4,), torch.float32),
            "occluders": ((4,), torch.int64),
            "skipped": ((4,), torch.int64),
            "non_finite": ((4,), torch.int64),
        }
    assert sorted(validation["key"]) == [f"handmade_{i}" for i in range(4)]


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
