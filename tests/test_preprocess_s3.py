"""``pare preprocess`` reading from and writing to S3: a real S3 API server (moto) on 127.0.0.1.

The source is uploaded to a bucket, the job runs as the ``pare`` command (its own local Ray, whose
workers reach the bucket through ``AWS_ENDPOINT_URL``), and the shards it writes to the bucket
must equal, byte for byte, those of the same job on local folders. The server and the helpers are in
tests/s3_server.py.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from pipelines.data.manifest import MANIFEST_FILE
from pipelines.preprocess.verified import VERIFIED_FILE
from tests.s3_server import run_pare, s3fs_for
from tests.synth_helpers import generate

pytestmark = pytest.mark.slow

COCO_OPTIONS = {"images": "images/train2014", "eft": "eft_fits/COCO2014-All-ver01.json"}


def job_args(procedural_dir, source: str, output: str) -> list[str]:
    args = [
        f"body_model.asset_dir={procedural_dir}",
        f"preprocess.output={output}",
        "preprocess.samples_per_shard=4",
        "preprocess.chunk_size=4",
        "preprocess.num_workers=2",
        "preprocess.sources.coco.reader=coco_eft",
        f"preprocess.sources.coco.root={source}",
    ]
    return args + [f"preprocess.sources.coco.options.{k}={v}" for k, v in COCO_OPTIONS.items()]


def members(tar: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def files_in(fs, folder: str) -> list[str]:
    """Names of the objects directly in ``folder`` of the bucket (not its own directory marker)."""
    return sorted(Path(p).name for p in fs.ls(folder, refresh=True) if p.rstrip("/") != folder)


def test_job_reads_and_writes_s3_like_local_folders(procedural_dir, tmp_path, s3_env, ray_cluster):
    from pipelines.config.loader import load_config
    from pipelines.preprocess.job import run_preprocess

    local = tmp_path / "coco"
    generate(procedural_dir, local, "coco_eft", 6, seed=7)
    fs = s3fs_for(s3_env)
    fs.mkdir("pare")
    fs.put(str(local), "pare/coco", recursive=True)
    assert fs.exists("pare/coco/" + COCO_OPTIONS["eft"])

    result = run_pare(
        "preprocess", "--quiet", *job_args(procedural_dir, "s3://pare/coco", "s3://pare/shards"), env=s3_env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "coco-eft/train: built; 6 inputs -> 6 samples in 2 shards, 0 rejected" in result.stdout

    validate = run_pare("shards", "validate", "s3://pare/shards", env=s3_env)
    assert validate.returncode == 0, validate.stdout + validate.stderr[-2000:]

    # The same job on local folders (in this process's Ray) writes the same samples: equal crops and labels,
    # equal annotations but for the image's location, which the provenance records.
    report = run_preprocess(load_config(None, job_args(procedural_dir, str(local), str(tmp_path / "out"))), False)
    assert [f.samples for f in report.folders] == [6]
    remote = json.loads(fs.cat(f"pare/shards/coco-eft/train/{MANIFEST_FILE}"))
    mine = json.loads((tmp_path / "out/coco-eft/train" / MANIFEST_FILE).read_text())
    assert remote["totals"] == mine["totals"] and remote["source"]["fingerprint"] == mine["source"]["fingerprint"]
    assert [(s["name"], s["samples"], s["first_key"]) for s in remote["shards"]] == [
        (s["name"], s["samples"], s["first_key"]) for s in mine["shards"]
    ]
    for shard in mine["shards"]:
        theirs = members(fs.cat(f"pare/shards/coco-eft/train/{shard['name']}"))
        ours = members((tmp_path / "out/coco-eft/train" / shard["name"]).read_bytes())
        assert theirs.keys() == ours.keys()
        for name, data in ours.items():
            if not name.endswith(".json"):
                assert theirs[name] == data, name
                continue
            a, b = json.loads(theirs[name]), json.loads(data)
            assert a["image"]["path"].startswith("s3://pare/coco/images/")
            assert a["image"]["path"].endswith(Path(b["image"]["path"]).name)
            a["image"]["path"] = b["image"]["path"]
            assert a == b
    assert not fs.exists("pare/shards/coco-eft/train/_work")
    left = files_in(fs, "pare/shards/coco-eft/train")
    assert left == sorted(
        [MANIFEST_FILE, VERIFIED_FILE, "rejects.jsonl", *(s["name"] for s in remote["shards"])]
    )  # nothing else

    # A rerun finds the bucket's folder complete and skips it.
    again = run_pare(
        "preprocess", "--quiet", *job_args(procedural_dir, "s3://pare/coco", "s3://pare/shards"), env=s3_env
    )
    assert again.returncode == 0 and "coco-eft/train: up to date" in again.stdout, again.stdout + again.stderr[-2000:]


def test_remote_videos_are_cached_locally_and_missing_ones_rejected(s3_env, tmp_path, monkeypatch):
    import cv2
    import numpy as np

    from preprocessing.record import ImageRef, RecordRejected
    from preprocessing.samples.images import ImageLoader

    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PARE_SOURCE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for k in range(6):
        writer.write(np.full((48, 64, 3), 40 * k, np.uint8))
    writer.release()
    fs = s3fs_for(s3_env)
    fs.mkdir("videos")
    fs.put(str(path), "videos/S1/clip.mp4")
    image, reduction = ImageLoader().load(ImageRef("s3://videos/S1/clip.mp4", frame=4))
    assert image.shape == (48, 64, 3) and reduction == 1 and abs(float(image.mean()) - 160) < 6
    assert list((tmp_path / "cache").rglob("clip.mp4"))  # copied once into the source cache
    with pytest.raises(RecordRejected, match="no video at s3://videos/S1/missing.mp4") as error:
        ImageLoader().load(ImageRef("s3://videos/S1/missing.mp4", frame=0))
    assert error.value.reason == "missing_image"


def test_s3_files_are_uploaded_once_under_their_name(s3_env, monkeypatch):
    """On an object store a file is uploaded under its final name when committed, not under a temporary
    name and then copied (an S3 rename copies every byte); a failed write uploads nothing."""
    from pipelines.io.storage import Storage

    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    fs = s3fs_for(s3_env)
    fs.mkdir("atomic")
    storage = Storage("s3://atomic/out")
    assert storage.object_store
    with storage.open_atomic("x/shard-000000.tar") as file:
        file.write(b"abc")
        file.write(b"de")
        fs.invalidate_cache()
        assert not fs.exists("atomic/out/x/shard-000000.tar")
    with pytest.raises(RuntimeError), storage.open_atomic("x/shard-000001.tar") as file:
        file.write(b"half")
        raise RuntimeError("the writer failed")
    assert fs.cat("atomic/out/x/shard-000000.tar") == b"abcde"
    assert files_in(fs, "atomic/out/x") == ["shard-000000.tar"]
