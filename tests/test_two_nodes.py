"""Two Ray nodes on one machine, and a node lost: real ``ray start`` processes, real commands.

A head (``ray start --head``) and a second node (``ray start --address``) run on this machine, each
with its own temp dir and ports and one CPU, so that two preprocessing builders or two training
workers take one node each. The second node is then killed mid-job as a lost machine goes (SIGKILL
to its raylet, its agents and its workers at once):

- ``pare preprocess`` finishes on the head alone, with exactly the manifest and shards of a clean
  run on the head alone (made before the second node joined);
- ``pare train`` with a worker on each node waits for a replacement node, then continues from its
  last checkpoint, in one MLflow run with continuous steps and the same final step; the run's tags
  name the nodes of each attempt;

and neither command's console shows Ray's internals.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.io.cluster import node_label
from tests.console_noise import noise
from tests.preprocess_helpers import assert_same_shards, start_preprocess
from tests.ray_nodes import LocalCluster, RayNode, ray_environment
from tests.synth_helpers import generate
from tests.train_helpers import COCO_OPTIONS, assert_resumed_once, small_train_overrides

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # a busy 2-core machine starts Ray nodes slowly

FOLDERS = ("coco-eft/train", "3dpw/test")
SECOND = "second"
"""The name of the second node (and its replacements); the head is "head"."""


@pytest.fixture(scope="module")
def sources(procedural_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two_nodes_sources")
    easy = ("synth.pose_variation=0.3",)
    # enough work (36 coco shards) that the head is still building when Ray declares the lost node dead (about 5 s
    # after the kill, tests/ray_nodes.py), so the job has its "lost node" line even on a fast, idle machine
    generate(procedural_dir, root / "coco", "coco_eft", 72, seed=31, occluders=0.0, overrides=easy)
    generate(procedural_dir, root / "3dpw", "3dpw", 8, seed=32, occluders=0.0, overrides=easy)
    return root


def preprocess_args(procedural_dir: Path, sources: Path, output: Path) -> list[str]:
    return [
        f"body_model.asset_dir={procedural_dir}",
        f"preprocess.output={output}",
        "preprocess.samples_per_shard=2",  # many small units of work (a shard each): the kill lands mid-job
        "preprocess.chunk_size=1",
        "preprocess.sources.coco.reader=coco_eft",
        f"preprocess.sources.coco.root={sources / 'coco'}",
        *(f"preprocess.sources.coco.options.{k}={v}" for k, v in COCO_OPTIONS.items()),
        "preprocess.sources.pw3d.reader=3dpw",
        f"preprocess.sources.pw3d.root={sources / '3dpw'}",
        "preprocess.sources.pw3d.split=test",
    ]


@pytest.fixture(scope="module")
def cluster():
    """A head with one CPU; every node the tests add to it is killed at the end, the head last."""
    cluster = LocalCluster()
    try:
        cluster.start_head(num_cpus=1)
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Reference:
    output: Path
    shards: int  # shards built: one unit of work each


@pytest.fixture(scope="module")
def reference(cluster, procedural_dir, sources, tmp_path_factory) -> Reference:
    """A clean ``pare preprocess`` on the head alone, before any other node joins (also the training shards)."""
    output = tmp_path_factory.mktemp("two_nodes_reference")
    job = start_preprocess(preprocess_args(procedural_dir, sources, output), cluster.address, ray_environment())
    log, _ = job.communicate(timeout=900)
    assert job.returncode == 0, log
    (line,) = [line for line in log.splitlines() if line.startswith("  built ")]
    head = node_label(cluster.head.node)
    built = re.fullmatch(rf"  built (\d+) shards on 1 Ray node: (\d+) on {re.escape(head)}", line)
    assert built and built[1] == built[2], line
    in_manifests = sum(len(json.loads((output / f / "manifest.json").read_text())["shards"]) for f in FOLDERS)
    assert int(built[1]) >= in_manifests > 4, line
    return Reference(output, int(built[1]))


def second_node(cluster: LocalCluster) -> RayNode:
    """Start a second node (or its replacement) with one CPU."""
    return cluster.add_node(SECOND, num_cpus=1)


@pytest.fixture
def two_nodes(cluster, reference) -> LocalCluster:
    """The head and a live second node (started after the reference run, and again after a test killed it)."""
    if cluster.nodes[-1] is cluster.head or not cluster.nodes[-1].alive():
        second_node(cluster)
    return cluster


def kill_second_node(cluster: LocalCluster) -> RayNode:
    """Kill the second node, all its processes at once; returns it."""
    lost = cluster.nodes[-1]
    assert lost is not cluster.head
    lost.kill()
    assert not lost.pids(), "a process of the lost node survived"
    return lost


def wait_for(condition, what: str, job: subprocess.Popen, output, timeout_s: float = 600):
    """Poll ``condition()`` until it returns something true; fail, with the end of ``output()``, if ``job`` ends
    first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if job.poll() is not None:
            pytest.fail(f"the job ended before {what}:\n{output()[-5000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {what} after {timeout_s} s")


def summary_nodes(output: Path) -> dict[str, str]:
    """Shard summary -> the id of the node that built it, for the shards written so far."""
    nodes = {}
    for folder in FOLDERS:
        for path in (output / folder / "_work").glob("shard-*.json"):
            try:
                nodes[f"{folder}/{path.name}"] = json.loads(path.read_text())["node"]["id"]
            except (OSError, ValueError):
                continue  # being written
    return nodes


def test_preprocessing_on_two_nodes_survives_losing_one(two_nodes, reference, procedural_dir, sources, tmp_path):
    head, second = two_nodes.head, two_nodes.nodes[-1]
    output = tmp_path / "shards"
    # Ray Data starts its builders one by one and gives work to those that are up; waiting for the whole pool
    # first gives the second node its share from the start, so that it has built a shard when it is killed.
    env = ray_environment() | {"RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "600"}
    # one builder per node: 80 records would otherwise get one (preprocess.records_per_worker)
    arguments = [*preprocess_args(procedural_dir, sources, output), "preprocess.num_workers=2"]
    job = start_preprocess(arguments, two_nodes.address, env)
    try:
        built = wait_for(
            lambda: {s for s, n in summary_nodes(output).items() if n == second.node_id},
            "a shard built on the second node",
            job,
            lambda: job.stdout.read(),
        )
        lost = kill_second_node(two_nodes)  # and no replacement: the head finishes the job alone
        done_when_lost = len(summary_nodes(output))
        log, _ = job.communicate(timeout=900)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, 9)
            job.wait(timeout=60)
    assert job.returncode == 0, log
    assert built and done_when_lost < reference.shards, (
        "the job had built every shard before the node was lost: nothing was tested"
    )
    for folder in FOLDERS:
        assert_same_shards(output, reference.output, folder)
    assert noise(log) == [], noise(log)
    assert f"Ray lost node {node_label(lost.node)}; what ran there is retried elsewhere" in log, log
    # Where the driver received each shard from: the head, and the lost node, which had written at least one
    # (the shards it was building when it went were built again on the head).
    (line,) = [line for line in log.splitlines() if line.startswith(f"  built {reference.shards} shards on ")]
    counted = {
        label: int(count) for count, label in (part.split(" on ", 1) for part in line.split(": ", 1)[1].split(", "))
    }
    assert set(counted) <= {node_label(head.node), node_label(lost.node)} and counted.get(node_label(head.node)), line
    assert sum(counted.values()) == reference.shards, line


def run_tags(storage: Path, run_name: str) -> dict[str, str]:
    """The tags of training run ``run_name`` in the sqlite store under ``storage``; {} before it exists."""
    from mlflow.tracking import MlflowClient

    database = storage / "mlflow.db"
    if not database.exists():
        return {}
    try:
        client = MlflowClient(f"sqlite:///{database}")
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()], f"tags.`pare.run_name` = '{run_name}'"
        )
    except Exception:  # the driver is creating the store
        return {}
    return runs[0].data.tags if runs else {}


def registered_checkpoint_step(storage: Path, run_name: str) -> int:
    """The step of the latest checkpoint Ray Train has registered for the run (0: none yet)."""
    snapshot = storage / run_name / "checkpoint_manager_snapshot.json"
    try:
        state = json.loads(snapshot.read_text())
    except (OSError, ValueError):
        return 0
    latest = state.get("latest_checkpoint_result") or {}
    return int((latest.get("metrics") or {}).get("step", 0))


def test_training_on_two_nodes_resumes_after_losing_one(two_nodes, reference, procedural_dir, tmp_path):
    head, second = two_nodes.head, two_nodes.nodes[-1]
    storage, marker = tmp_path / "storage", tmp_path / "paused.txt"
    overrides = small_train_overrides(
        procedural_dir,
        reference.output,
        storage,
        f"train.ray_address={two_nodes.address}",
        "train.run_name=two-nodes",
        "train.max_steps=50",
        "train.checkpoint_every=20",
        "train.validate_every=50",
        "train.images_every=0",
        "tracking.system_metrics=false",
        "data.validation_max_samples=8",
    )
    # One worker stops at step 30 (the other waits for it in the next all-reduce) until the node is killed, so
    # that the node goes at a known step after the checkpoint at 20 is registered, however slow the machine.
    env = ray_environment() | {
        "PARE_FAULT_PAUSE_AT_STEP": "30",
        "PARE_FAULT_MARKER": str(marker),
        "PYTHONUNBUFFERED": "1",
    }
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"  # files: nobody reads a pipe while it waits
    with open(stdout, "w") as out_file, open(stderr, "w") as err_file:
        job = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "train", *overrides],
            env=env,
            stdout=out_file,
            stderr=err_file,
            start_new_session=True,
            cwd=tmp_path,
        )

    def output() -> str:
        return stdout.read_text() + stderr.read_text()

    try:
        wait_for(marker.exists, "the pause at step 30", job, output)
        wait_for(lambda: registered_checkpoint_step(storage, "two-nodes") == 20, "the checkpoint at 20", job, output)
        tag = wait_for(lambda: run_tags(storage, "two-nodes").get("pare.worker_nodes.0"), "the nodes' tag", job, output)
        first = json.loads(tag)
        lost = kill_second_node(two_nodes)
        replacement = second_node(two_nodes)  # Ray Train waits for room for both workers again
        job.wait(timeout=900)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, 9)
            job.wait(timeout=60)
    out, err = stdout.read_text(), stderr.read_text()
    assert job.returncode == 0, out[-3000:] + err[-5000:]
    assert {n["id"] for n in first} == {head.node_id, second.node_id}, first  # one worker on each node
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pare").experiment_id
    # 21-30 ran twice (30 logged twice), from the checkpoint at 20, and the run finished at step 50.
    run = assert_resumed_once(client, experiment, "two-nodes", [10, 20, 30, 30, 40, 50])
    assert json.loads(run.data.tags["pare.worker_nodes.0"]) == first
    second_attempt = json.loads(run.data.tags["pare.worker_nodes.1"])
    assert {n["id"] for n in second_attempt} == {head.node_id, replacement.node_id}, second_attempt
    assert "finished at step 50" in out and "resuming at step 20 (restart 1)" in out, out
    assert f"Ray lost node {node_label(lost.node)}; what ran there is retried elsewhere" in out, out
    for attempt in (first, second_attempt):
        assert f"workers on 2 nodes: {'; '.join(f'{node_label(n)}: rank {r}' for r, n in enumerate(attempt))}" in out
    assert noise(out) == [] and noise(err) == [], noise(out) + noise(err)
