"""Failures with real processes: a Ray worker killed mid-job, and the whole job killed and rerun.

Both must end with exactly the manifest (and shards) of an uninterrupted run. The unit of work is a
shard; ``_work/shard-<k>.json`` appears when shard k is written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipelines.config.loader import load_config
from pipelines.data.manifest import MANIFEST_FILE
from tests.preprocess_helpers import assert_same_shards, start_preprocess
from tests.synth_helpers import generate

pytestmark = pytest.mark.slow
FOLDER = "coco-eft/train"
SHARDS = 12  # 24 records, 2 a shard


@pytest.fixture(scope="module")
def source(procedural_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_source")
    generate(procedural_dir, root / "coco", "coco_eft", 24, seed=7)
    return root / "coco"


def overrides(procedural_dir, source: Path, output: Path, *extra: str) -> list[str]:
    return [
        f"body_model.asset_dir={procedural_dir}",
        f"preprocess.output={output}",
        "preprocess.samples_per_shard=2",  # many small units of work (a shard each), so that a kill lands mid-job
        "preprocess.chunk_size=1",
        "preprocess.num_workers=2",
        "preprocess.sources.coco.reader=coco_eft",
        f"preprocess.sources.coco.root={source}",
        "preprocess.sources.coco.options.images=images/train2014",
        "preprocess.sources.coco.options.eft=eft_fits/COCO2014-All-ver01.json",
        *extra,
    ]


@pytest.fixture(scope="module")
def reference(procedural_dir, source, tmp_path_factory, ray_cluster):
    from pipelines.preprocess.job import run_preprocess

    output = tmp_path_factory.mktemp("reference")
    run_preprocess(load_config(None, overrides(procedural_dir, source, output)), show_progress=False)
    return output


def written_shards(output: Path) -> list[Path]:
    """The summaries of the shards written so far (each written after its shard)."""
    return sorted((output / FOLDER / "_work").glob("shard-*.json"))


def wait_for_shards(output: Path, count: int, job: subprocess.Popen, timeout: float = 180) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = written_shards(output)
        if len(done) >= count:
            return done
        if job.poll() is not None:
            pytest.fail(f"job ended before {count} shards were written:\n{job.stdout.read()}")
        time.sleep(0.02)
    pytest.fail(f"no {count} shards after {timeout} s")


def shard_builder_pids() -> list[int]:
    """PIDs of the Ray actor processes that build shards (Ray titles them ray::MapWorker(Map(ShardBuilder)))."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("ray::") and "ShardBuilder" in cmdline:
                pids.append(int(entry.name))
    return pids


def test_a_killed_worker_is_replaced_and_the_job_finishes(procedural_dir, source, reference, tmp_path, ray_cluster):
    output = tmp_path / "out"
    address = ray_cluster.get_runtime_context().gcs_address
    job = start_preprocess(overrides(procedural_dir, source, output), address)
    wait_for_shards(output, 1, job)
    victims = shard_builder_pids()
    assert victims, "no shard-building Ray worker process found"
    os.kill(victims[0], signal.SIGKILL)
    killed_at = len(written_shards(output))
    log, _ = job.communicate(timeout=300)
    assert job.returncode == 0, log
    assert killed_at < SHARDS, "the job had finished building before the kill; nothing was tested"
    assert_same_shards(output, reference, FOLDER)


def test_a_killed_job_reruns_to_the_same_manifest(procedural_dir, source, reference, tmp_path, ray_cluster):
    output = tmp_path / "out"
    address = ray_cluster.get_runtime_context().gcs_address
    args = overrides(procedural_dir, source, output)
    job = start_preprocess(args, address)
    wait_for_shards(output, 3, job)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=60)
    deadline = time.monotonic() + 60  # Ray ends a dead driver's actors; wait for them before counting shards
    while shard_builder_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    done = written_shards(output)
    assert 3 <= len(done) < SHARDS, f"{len(done)} shards: the kill did not land mid-job"
    assert not (output / FOLDER / MANIFEST_FILE).exists()
    tars = [output / FOLDER / f"{summary.stem}.tar" for summary in done]
    written = {tar: tar.stat().st_mtime_ns for tar in tars}
    rerun = start_preprocess(args, address)
    log, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, log
    assert_same_shards(output, reference, FOLDER)
    assert {tar: tar.stat().st_mtime_ns for tar in written} == written  # complete shards were skipped, not rewritten
    assert "24 inputs -> 24 samples" in log
    assert f"reused {len(done)} of {SHARDS} shards" in log  # finished shards were not written again
