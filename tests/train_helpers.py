"""Shared helpers of the training tests: synthetic training and validation shards, small configs."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from pipelines.config.loader import load_config
from tests.synth_helpers import generate

COCO_OPTIONS = {"images": "images/train2014", "eft": "eft_fits/COCO2014-All-ver01.json"}
TRAIN_SAMPLES = 320
VALIDATION_FRAMES = 60


def make_training_shards(procedural_dir: Path, root: Path) -> Path:
    """Synthetic COCO-EFT-like training shards and 3DPW-like test shards under ``root/shards``."""
    from pipelines.preprocess.job import run_preprocess

    # Poses close to their base postures: a few hundred CPU steps learn them (see docs/training.md).
    easy = ("synth.pose_variation=0.3",)
    generate(procedural_dir, root / "coco", "coco_eft", TRAIN_SAMPLES, seed=11, occluders=0.0, overrides=easy)
    generate(procedural_dir, root / "3dpw", "3dpw", VALIDATION_FRAMES, seed=12, occluders=0.0, overrides=easy)
    output = root / "shards"
    overrides = [
        f"body_model.asset_dir={procedural_dir}",
        f"preprocess.output={output}",
        "preprocess.samples_per_shard=40",
        "preprocess.sources.coco.reader=coco_eft",
        f"preprocess.sources.coco.root={root / 'coco'}",
        *(f"preprocess.sources.coco.options.{k}={v}" for k, v in COCO_OPTIONS.items()),
        "preprocess.sources.pw3d.reader=3dpw",
        f"preprocess.sources.pw3d.root={root / '3dpw'}",
        "preprocess.sources.pw3d.split=test",
    ]
    run_preprocess(load_config(None, overrides), show_progress=False)
    return output


def small_train_overrides(procedural_dir: Path, shards: Path, storage: Path | str, *extra: str) -> list[str]:
    """A small, fast training config on the synthetic shards (debug backbone, 128 px input); ``storage`` is a
    folder or a URI (``s3://bucket/prefix``)."""
    return [
        f"body_model.asset_dir={procedural_dir}",
        f"data.datasets.coco.shards=[{shards / 'coco-eft' / 'train'}]",
        f"data.validation=[{shards / '3dpw' / 'test'}]",
        "model.backbone=debug",
        "model.image_size=128",
        "model.num_branch_filters=16",
        "model.num_features_smpl=16",
        "loader.batch_size=16",
        "loader.num_workers=0",
        "loader.label_size=32",
        "loader.shuffle_buffer=100",
        f"train.storage_path={storage}",
        "train.num_workers=2",
        "train.steps_per_epoch=50",
        "train.validate_every=50",
        "train.checkpoint_every=50",
        "train.log_every=10",
        "train.images_every=100",
        *extra,
    ]


def small_train_config(procedural_dir: Path, shards: Path, storage: Path, *extra: str):
    return load_config(None, small_train_overrides(procedural_dir, shards, storage, *extra))


def damaged_copy(source: Path, target: Path) -> None:
    """A copy of a shard folder with one shard cut short and one with garbage inside a member."""
    import os
    import shutil

    shutil.copytree(source, target)
    shards = sorted(target.glob("shard-*.tar"))
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[: len(data) // 3])
    data = bytearray(shards[1].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = os.urandom(4000)
    shards[1].write_bytes(bytes(data))


def history(client, run_id: str, key: str) -> list:
    """A metric's logged values in the order of their steps (and times, for a step logged twice)."""
    return sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))


def the_run(client, experiment_id: str, run_name: str):
    """The one MLflow run of ``train.run_name``: a restarted or resumed training must not make a second one."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`pare.run_name` = '{run_name}'")
    assert len(runs) == 1, [run.info.run_id for run in runs]
    return runs[0]


def assert_resumed_once(client, experiment_id: str, run_name: str, logged_steps: list[int]):
    """Training ``run_name`` lost its workers once and finished from a checkpoint in one MLflow run: the run is
    FINISHED after one restart, and ``train/loss`` was logged at ``logged_steps``, in order (the steps between the
    checkpoint it resumed from and the failure were trained, and logged, twice). Returns the run."""
    run = the_run(client, experiment_id, run_name)
    assert run.info.status == "FINISHED" and run.data.tags["pare.restarts"] == "1", (run.info, run.data.tags)
    steps = [m.step for m in history(client, run.info.run_id, "train/loss")]
    assert steps == logged_steps, steps
    return run


@contextlib.contextmanager
def ray_process_titles(interval_s: float = 0.2) -> Iterator[set[str]]:
    """The titles Ray gives its worker processes (``ray::RayTrainWorker``, ``ray::TrainController``, ...) among
    this process's descendants while the block runs, sampled from /proc every ``interval_s``: which actors a run
    on the Ray instance this process started (the session's ``ray_cluster``) created. Other test processes'
    clusters are not its descendants."""
    from tests.ray_nodes import _processes

    titles: set[str] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            table = _processes()
            children: dict[int, list[int]] = {}
            for pid, (parent, _, _) in table.items():
                children.setdefault(parent, []).append(pid)
            todo = list(children.get(os.getpid(), ()))
            while todo:
                pid = todo.pop()
                todo.extend(children.get(pid, ()))
                if table[pid][2].startswith("ray::"):
                    titles.add(table[pid][2].split()[0].split(".")[0])
            stop.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield titles
    finally:
        stop.set()
        sampler.join()
