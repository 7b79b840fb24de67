"""The deployment paths with real servers on 127.0.0.1:

- a team MLflow server (``mlflow server`` with a PostgreSQL backend store, as infra/mlflow runs it)
  receiving a short training over HTTP;
- a Ray head started with ``ray start --head`` receiving the preprocessing job through the Ray
  Jobs API (``ray job submit``), then stopped by the test (only the head it started).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.mlflow_server import MlflowServer, free_port
from tests.postgres_server import PostgresServer, postgres_bin
from tests.ray_nodes import RayNode, ray_environment
from tests.synth_helpers import generate
from tests.train_helpers import COCO_OPTIONS, small_train_config

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def postgres():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed here (CI installs Debian's postgresql in .ci/run)")
    server = PostgresServer().start()
    yield server
    server.stop()


def test_training_logs_to_an_mlflow_server_backed_by_postgresql(
    postgres, procedural_dir, training_shards, tmp_path, ray_cluster
):
    from mlflow.tracking import MlflowClient

    from pipelines.training.job import run_training

    server = MlflowServer(tmp_path / "mlflow", backend_uri=postgres.uri).start()
    try:
        config = small_train_config(
            procedural_dir,
            training_shards,
            tmp_path / "storage",
            f"tracking.tracking_uri={server.uri}",
            "train.num_workers=1",
            "train.max_steps=20",
            "train.checkpoint_every=20",
            "train.validate_every=20",
            "train.images_every=20",
            "tracking.system_metrics=false",
            "data.validation_max_samples=8",
            "tracking.experiment=team",
            "train.run_name=over-http",
        )
        result = run_training(config)
        client = MlflowClient(server.uri)
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED" and run.info.run_name == "over-http"
        assert [m.step for m in client.get_metric_history(result.run_id, "train/loss")] == [10, 20]
        assert "val/pa_mpjpe" in run.data.metrics and run.data.params["train.max_steps"] == "20"
        assert any(v.run_id == result.run_id for v in client.search_model_versions("name='pare'"))
    finally:
        server.stop()
    # The runs live in PostgreSQL, not in a file next to the server.
    done = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres.port),
            "-U",
            "mlflow",
            "-d",
            "mlflow",
            "-tAc",
            "select name, status from runs",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "over-http|FINISHED" in done.stdout


def wait_for(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout_s} s")


def agent_log(ray_temp: str) -> str:
    """The end of the head's dashboard-agent log, to explain a failed submission."""
    logs = sorted(Path(ray_temp).glob("session_*/logs/dashboard_agent.log"))
    return "\n--- dashboard_agent.log ---\n" + logs[-1].read_text()[-3000:] if logs else ""


def test_preprocessing_runs_through_ray_job_submit(procedural_dir, tmp_path):
    source = tmp_path / "coco"
    generate(procedural_dir, source, "coco_eft", 6, seed=21)
    output = tmp_path / "shards"
    config = tmp_path / "job" / "preprocess.yaml"
    config.parent.mkdir()
    config.write_text(
        json.dumps(
            {
                "body_model": {"source": "procedural", "asset_dir": str(procedural_dir)},
                "preprocess": {
                    "output": str(output),
                    "samples_per_shard": 4,
                    "sources": {"coco": {"reader": "coco_eft", "root": str(source), "options": COCO_OPTIONS}},
                },
            }
        )
    )
    dashboard = free_port()
    head = RayNode("jobs", 2, dashboard_port=dashboard)
    env = ray_environment()
    address = f"http://127.0.0.1:{dashboard}"
    try:
        head.start()
        wait_for(f"{address}/api/version", 120)
        deadline = time.monotonic() + 300
        while (
            True
        ):  # the dashboard answers before its job agent is up ("No available agent ..."), later on a busy machine
            done = subprocess.run(
                [
                    str(BIN / "ray"),
                    "job",
                    "submit",
                    "--address",
                    address,
                    "--working-dir",
                    str(config.parent),
                    "--",
                    str(BIN / "pare"),
                    "preprocess",
                    "preprocess.yaml",
                    "--quiet",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if "No available agent" not in done.stdout + done.stderr or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + agent_log(head.temp_dir)
        from ray.job_submission import JobStatus, JobSubmissionClient

        (job,) = JobSubmissionClient(address).list_jobs()
        assert job.status == JobStatus.SUCCEEDED and job.entrypoint.endswith("preprocess preprocess.yaml --quiet")
        manifest = json.loads((output / "coco-eft" / "train" / "manifest.json").read_text())
        assert manifest["totals"]["inputs"] == 6 == manifest["totals"]["samples"] + manifest["totals"]["rejected"]
        assert manifest["totals"]["samples"] >= 5
    finally:
        head.stop()  # killed: `ray start --block` stopping its processes gracefully took 31 s of a 58-s test
