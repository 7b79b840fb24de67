"""Training with ``train.storage_path=s3://...`` against a real S3 API server (moto) on 127.0.0.1.

- The night a worker dies, end to end: ``pare train`` and ``pare evaluate`` run as commands that join one Ray
  head (tests/ray_nodes.py) started with the bucket's ``AWS_*`` variables, so that its workers reach the
  bucket through their environment, as a cluster's nodes do. MLflow is a sqlite store on this machine (every worker runs here).
  The training data holds a shard cut short and one with garbage inside a member, and one step's loss is NaN
  (``train.nan_policy=skip``). The only worker is
  SIGKILLed mid-run (``PARE_FAULT_KILL_AT_STEP``, pipelines/training/faults.py): Ray Train restarts it
  from the latest checkpoint in the bucket, and the run ends at the step an unkilled run ends at, in
  one MLflow run with continuous steps, with the damaged samples and the skipped step counted. Rerunning the command with
  more steps resumes that run from its last checkpoint. ``pare evaluate --checkpoint s3://...`` then
  measures the published model and logs into that run at its step.
- What the user is told without a Ray worker: a remote storage path with no tracking server, a bucket
  that does not exist, a checkpoint that is not there; and ``train.init_checkpoint`` read from S3.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.ray_nodes import RayNode
from tests.s3_server import run_pare, s3fs_for
from tests.test_cli import ROOT
from tests.train_helpers import damaged_copy, small_train_overrides, the_run

BUCKET = "pare-training"  # its own bucket: the moto server is shared with the preprocessing test, which makes "pare"
STORAGE = f"s3://{BUCKET}/train"
RUN = "on-s3"
MAX_STEPS = 50
MORE_STEPS = 60
"""The rerun's ``train.max_steps``: the same command with more steps resumes the finished run."""
KILL_AT_STEP = 35
"""With checkpoints every 10 steps, the worker dies 15 steps (seconds) after the one at step 20: Ray Train
registers a checkpoint when its controller next polls the workers (every 2 s), so it resumes from 20 or 30."""


def train_args(procedural_dir: Path, shards: Path, coco: Path, tracking_uri: str) -> list[str]:
    return small_train_overrides(
        procedural_dir,
        shards,
        STORAGE,
        f"data.datasets.coco.shards=[{coco}]",
        f"tracking.tracking_uri={tracking_uri}",
        "train.num_workers=1",
        f"train.max_steps={MAX_STEPS}",
        "train.checkpoint_every=10",
        "train.validate_every=25",
        f"train.run_name={RUN}",
        "train.nan_policy=skip",
        "train.images_every=0",
        "tracking.system_metrics=false",
        "data.validation_max_samples=16",
    )


def logged_steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def check_bucket(fs) -> None:
    """Ray Train's checkpoints (model and state), the published models and the status file are in the bucket."""
    run_folder = f"{BUCKET}/train/{RUN}"
    entries = fs.ls(run_folder, detail=True, refresh=True)
    checkpoints = [e["name"] for e in entries if e["type"] == "directory" and "/checkpoint_" in e["name"]]
    assert checkpoints, entries
    for checkpoint in checkpoints:
        assert {Path(p).name for p in fs.ls(checkpoint)} >= {"model.pt", "state.pt"}, checkpoint
    assert fs.exists(f"{run_folder}/latest/model.pt") and fs.exists(f"{run_folder}/best/model.pt")
    status = json.loads(fs.cat(f"{run_folder}/pare_status.json"))
    assert status["state"] == "finished" and status["step"] == MAX_STEPS
    assert not (ROOT / "s3:").exists()  # no URI taken for a local folder


def check_training_run(client, tmp_path: Path, resumed_at: int):
    """One finished MLflow run: continuous steps from the resumed checkpoint on, ending where an unkilled run ends,
    with the damaged shards' samples and the NaN step counted (that step came before the kill: the count is
    restored from the checkpoint)."""
    experiment = client.get_experiment_by_name("pare")
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()  # beside the sqlite file
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`pare.run_name` = '{RUN}'")
    tags = run.data.tags
    assert run.info.status == "FINISHED" and tags["pare.restarts"] == "1"
    assert tags["pare.storage"] == STORAGE
    for key in ("pare.latest_checkpoint", "pare.best_checkpoint"):
        assert tags[key].startswith(f"{STORAGE}/{RUN}/checkpoint_"), tags[key]
    # every 10 steps once, and those between the checkpoint it resumed from and the kill a second time
    rerun = list(range(resumed_at + 10, KILL_AT_STEP, 10))
    assert logged_steps(client, run.info.run_id, "train/loss") == sorted([*range(10, MAX_STEPS + 1, 10), *rerun])
    assert logged_steps(client, run.info.run_id, "val/pa_mpjpe")[-1] == MAX_STEPS
    assert run.data.metrics["train/skipped_samples"] > 0 and run.data.metrics["train/nan_skips"] == 1
    return run


@pytest.fixture
def s3_ray(s3_env):
    """The address of a Ray head whose workers have the bucket's ``AWS_*`` variables, for the test's commands
    (one start, and a kill at the end, instead of a local Ray started and stopped by each command)."""
    head = RayNode("s3", 2, env=s3_env).start()
    yield head.address
    head.stop()


@pytest.mark.slow
@pytest.mark.timeout(900)  # three commands, a restarted worker and a Ray head: 170-220 s on 2 idle cores
def test_checkpoints_on_s3_survive_a_killed_worker_and_a_rerun_resumes_and_evaluate_reads_them(
    procedural_dir, training_shards, tmp_path, s3_env, s3_ray
):
    from mlflow.tracking import MlflowClient

    fs = s3fs_for(s3_env)
    fs.mkdir(BUCKET)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    damaged = tmp_path / "coco-damaged"
    damaged_copy(training_shards / "coco-eft" / "train", damaged)
    arguments = [*train_args(procedural_dir, training_shards, damaged, store), f"train.ray_address={s3_ray}"]
    marker = tmp_path / "killed.txt"
    faults = {
        "PARE_FAULT_KILL_AT_STEP": str(KILL_AT_STEP),
        "PARE_FAULT_MARKER": str(marker),
        "PARE_FAULT_NAN_AT_STEP": "7",
    }
    done = run_pare("train", *arguments, env=s3_env | faults)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert marker.exists(), "the fault was not injected"
    resumed = re.search(r"resuming at step (\d+) \(restart 1\)", output)
    assert resumed and int(resumed[1]) in (10, 20, 30), output[-3000:]  # from a checkpoint in the bucket
    assert f"finished at step {MAX_STEPS}" in done.stdout
    assert f"latest model: {STORAGE}/{RUN}/latest/model.pt" in done.stdout
    check_bucket(fs)
    client = MlflowClient(store)
    run = check_training_run(client, tmp_path, int(resumed[1]))

    done = run_pare("train", *arguments, f"train.max_steps={MORE_STEPS}", env=s3_env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert (
        f"resuming at step {MAX_STEPS}" in done.stdout + done.stderr and f"finished at step {MORE_STEPS}" in done.stdout
    )
    assert the_run(client, run.info.experiment_id, RUN).info.run_id == run.info.run_id  # the same run, continued
    assert sorted(set(logged_steps(client, run.info.run_id, "train/loss"))) == list(range(10, MORE_STEPS + 1, 10))

    checkpoint = f"{STORAGE}/{RUN}/latest/model.pt"
    out = tmp_path / "evaluate"
    args = ["--checkpoint", checkpoint, "--shards", str(training_shards / "3dpw" / "test"), "--out", str(out)]
    options = [f"body_model.asset_dir={procedural_dir}", f"tracking.tracking_uri={store}"]
    options += ["evaluate.num_actors=1", "evaluate.max_samples=10", f"evaluate.ray_address={s3_ray}"]
    done = run_pare("evaluate", *args, *options, env=s3_env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    result = json.loads((out / "metrics.json").read_text())
    assert result["evaluated"] == checkpoint and result["step"] == MORE_STEPS
    assert result["training_run_id"] == run.info.run_id
    assert logged_steps(client, run.info.run_id, "eval/3dpw/pa_mpjpe") == [MORE_STEPS]  # into the training run


def test_remote_storage_without_a_tracking_server_names_the_setting(procedural_dir, tmp_path, capsys):
    """The default sqlite store cannot live on S3: refused before any connection, naming what to set."""
    assert main(["train", *small_train_overrides(procedural_dir, tmp_path, STORAGE)]) == 2
    error = capsys.readouterr().err
    assert f"train.storage_path is remote ({STORAGE})" in error
    assert "tracking.tracking_uri" in error and "MLFLOW_TRACKING_URI" in error


def test_what_cannot_be_read_or_written_on_s3_is_named(procedural_dir, tmp_path, s3_env, monkeypatch, capsys):
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    s3fs_for(s3_env).mkdir("checks")
    store = f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["train", *small_train_overrides(procedural_dir, tmp_path, "s3://no-such-bucket/train", store)]) == 2
    error = capsys.readouterr().err
    assert "train.storage_path" in error and "no-such-bucket" in error and "AWS_ENDPOINT_URL" in error

    missing = "s3://checks/stage1/best/model.pt"
    overrides = small_train_overrides(procedural_dir, tmp_path, tmp_path / "train", store)
    assert main(["train", *overrides, f"train.init_checkpoint={missing}"]) == 2
    assert f"train.init_checkpoint: {missing} does not exist" in capsys.readouterr().err

    base = [f"body_model.asset_dir={procedural_dir}", "evaluate.log_to=none", "--shards", str(tmp_path)]
    assert main(["evaluate", "--checkpoint", missing, *base]) == 2
    assert f"evaluate.checkpoint {missing} does not exist" in capsys.readouterr().err


def test_initial_weights_are_read_from_s3(procedural_dir, tmp_path, s3_env, monkeypatch):
    import torch

    from pare_model.checkpoint import build_model_from_assets, save_model_checkpoint
    from pare_model.model_config import ModelConfig
    from pipelines.training.checkpoints import load_initial_weights

    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    config = ModelConfig(backbone="debug", image_size=128)
    torch.manual_seed(1)
    trained = build_model_from_assets(config, procedural_dir)
    save_model_checkpoint(tmp_path / "model.pt", trained.network_state_dict(), config, {"step": 3})
    fs = s3fs_for(s3_env)
    fs.mkdir("weights")
    fs.put(str(tmp_path / "model.pt"), "weights/stage1/best/model.pt")
    torch.manual_seed(2)
    fresh = build_model_from_assets(config, procedural_dir)
    load_initial_weights("s3://weights/stage1/best/model.pt", fresh)
    for name, tensor in trained.network_state_dict().items():
        assert torch.equal(fresh.network_state_dict()[name], tensor), name
