"""The shards, manifests and rejects of fixed synthetic sources are the ones the code of 2f2b735 wrote.

Planning changed from a list of records held on the driver to records streamed from columnar annotation
caches and spilled shard inputs: what lands in the output must not change. The digests below were recorded
by running this module's :func:`output_digests` on the output of commit 2f2b735 (``python -m
tests.test_preprocess_identity`` there prints the table). A shard's digest covers every member's name and
bytes in order; a manifest's and a rejects file's, their text. Only the source roots (temporary folders that
differ between runs) are replaced by their names before hashing, and so the manifest's per-shard ``bytes``
and ``sha256``, which cover the paths inside the annotations, and its ``config_hash``, which covers the
source roots, are left out of its digest.

Rerecord only when the shard contents change on purpose, and say why in the commit.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from pipelines.config.loader import load_config
from pipelines.data.manifest import MANIFEST_FILE, REJECTS_FILE
from tests.synth_helpers import generate
from tests.test_preprocess_job import COCO_OPTIONS, break_coco_source

pytestmark = pytest.mark.slow

SOURCES = {
    # name: (layout, count, seed)
    "coco": ("coco_eft", 10, 1),
    "mpii": ("mpii", 8, 4),
    "3dpw": ("3dpw", 12, 2),
    "h36m": ("h36m", 8, 3),
}

EXPECTED: dict[str, dict] = {
    "3dpw/test": {
        "manifest": "f332765e406f4032361ea59bb387c51662741ca5b541680c6fe964bfc5453827",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {
            "shard-000000.tar": "df9d029c553143be620d791e6489d1a230b6baad5ee6378598efe130e186b23f",
            "shard-000001.tar": "7df90aaf71e145406ee7710afb3f4fee11397d9dedb3741fc682be3887c94f4d",
            "shard-000002.tar": "73b98d0867ad0d1a64835b138be00064c04b7cc98d0d6a45adc7bae70d7ea2c2",
        },
    },
    "coco-bad/train": {
        "manifest": "5f78fef20f2fa2cf4595a5997129a1f702beced94cafd683871fc75bf735f817",
        "rejects": "d5485bf4caee01e8b848b713e5ae0ee4448778e902c99ec1ad8bd3bbd95ad19b",
        "shards": {
            "shard-000000.tar": "a802bfce7984de4ebfd66fd2456ac5c4f38574fc76dd80a13564bab5bd398d40",
            "shard-000001.tar": "9059410104cb0d4d5debfa0a9aba4808c0a0d4878daf9fbbf40d47333309840c",
        },
    },
    "coco-eft/train": {
        "manifest": "37d080ba486dbe122b8564e048ef9ddf79bf0271240ba5e78e7cf766db1a43e0",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {
            "shard-000000.tar": "a6654306639ae46d97e66073c737ced207f6b686efd9fc9144a6ef18e4387246",
            "shard-000001.tar": "3ab8628c4a4cfb8eb21819465cb9a3f3f74d2af78d2b6b36987e4c46495ccdf1",
            "shard-000002.tar": "b000afb4fbea10451d8f3e152316c553d55b35a8cbf28b6baa3b9769090b95b9",
        },
    },
    "coco-kp/train": {
        "manifest": "2cb1fc19fa4d59266985674c7ac39f6093f68c1b891d55a5bda20f7f76a2963e",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {
            "shard-000000.tar": "6c436343dfee3debc94ca403c52ec376d322c09fb291b4b420ec485dafb32f6d",
            "shard-000001.tar": "ab287e564252308a08e23e60529a4978bb0fd52a5d90af74cc9e0f6e3ed1dc5d",
            "shard-000002.tar": "d39c9d226db72a259d842c0a5c54295eacc9da33ee45a8b2aa17c04941a9fafe",
        },
    },
    "h36m/test": {
        "manifest": "b69ff658f0e9ab57b8baaf61fb43c940c9df5f17ed0fcb782f1024ac322ab583",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {
            "shard-000000.tar": "5f68e2522571f311c3f689bb64393bad849e119acb661cacd777c3a3beca73b0",
        },
    },
    "mpii/train": {
        "manifest": "7f11f207b03babed1721ba222e1b36a12d550c1b5e816ffb49ecf7efc992f018",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {
            "shard-000000.tar": "2356de72e361a24586b620135f52fede0666930384c767543b9c690dd700caeb",
            "shard-000001.tar": "5cbde7ecb09df1eb72aa48c44cd37755a06ce3334523bb1a29dc2d1a78d34ba2",
        },
    },
}
"""Per output folder: the digests of its manifest, rejects file and shards (recorded at 2f2b735)."""


def make_sources(procedural_dir: Path, root: Path) -> dict[str, Path]:
    roots = {}
    for name, (layout, count, seed) in SOURCES.items():
        roots[name] = root / name
        generate(procedural_dir, roots[name], layout, count, seed=seed)
    roots["coco_bad"] = root / "coco_bad"
    generate(procedural_dir, roots["coco_bad"], "coco_eft", 10, seed=1)
    break_coco_source(roots["coco_bad"])
    return roots


def job_overrides(procedural_dir: Path, roots: dict[str, Path], output: Path) -> list[str]:
    overrides = [
        f"body_model.asset_dir={procedural_dir}",
        f"preprocess.output={output}",
        "preprocess.samples_per_shard=4",
        "preprocess.chunk_size=3",
        "preprocess.num_workers=2",
    ]
    sources = {
        "coco": ("coco_eft", "coco", "train", "", COCO_OPTIONS),
        "coco_kp": ("coco_eft", "coco", "train", "coco-kp", {"images": COCO_OPTIONS["images"]}),  # no fits
        "bad": ("coco_eft", "coco_bad", "train", "coco-bad", COCO_OPTIONS),
        "mpii": ("mpii", "mpii", "train", "", {}),
        "pw3d": ("3dpw", "3dpw", "test", "", {}),
        "h36m": ("h36m_npz", "h36m", "test", "", {}),
    }
    for name, (reader, folder, split, dataset, options) in sources.items():
        prefix = f"preprocess.sources.{name}"
        overrides += [f"{prefix}.reader={reader}", f"{prefix}.root={roots[folder]}", f"{prefix}.split={split}"]
        overrides += [f"{prefix}.dataset={dataset}"] if dataset else []
        overrides += [f"{prefix}.options.{key}={value}" for key, value in options.items()]
    return overrides


def _normalized(data: bytes, roots: dict[str, Path]) -> bytes:
    for name, root in sorted(roots.items(), key=lambda item: -len(str(item[1]))):
        data = data.replace(str(root).encode(), f"<{name}>".encode())
    return data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shard_digest(data: bytes, roots: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            member = tar.extractfile(info).read() if info.isfile() else b""
            digest.update(info.name.encode() + b"\0" + _sha(_normalized(member, roots)).encode())
    return digest.hexdigest()


def manifest_digest(text: str, roots: dict[str, Path]) -> str:
    manifest = json.loads(_normalized(text.encode(), roots))
    for shard in manifest["shards"]:
        del shard["bytes"], shard["sha256"]
    del manifest["totals"]["bytes"], manifest["config_hash"]
    return _sha(json.dumps(manifest, sort_keys=True).encode())


def output_digests(output: Path, roots: dict[str, Path]) -> dict[str, dict]:
    digests = {}
    for manifest_path in sorted(output.rglob(MANIFEST_FILE)):
        folder = manifest_path.parent
        manifest = manifest_path.read_text()
        digests[str(folder.relative_to(output))] = {
            "manifest": manifest_digest(manifest, roots),
            "rejects": _sha(_normalized((folder / REJECTS_FILE).read_bytes(), roots)),
            "shards": {
                shard["name"]: shard_digest((folder / shard["name"]).read_bytes(), roots)
                for shard in json.loads(manifest)["shards"]
            },
        }
    return digests


def run_job(procedural_dir: Path, root: Path) -> dict[str, dict]:
    from pipelines.preprocess.job import run_preprocess

    roots = make_sources(procedural_dir, root / "sources")
    output = root / "shards"
    run_preprocess(load_config(None, job_overrides(procedural_dir, roots, output)), show_progress=False)
    return output_digests(output, roots)


def test_shards_manifests_and_rejects_are_those_of_2f2b735(procedural_dir, tmp_path, ray_cluster):
    digests = run_job(procedural_dir, tmp_path)
    assert sorted(digests) == sorted(EXPECTED)
    for folder, expected in EXPECTED.items():
        assert digests[folder]["shards"] == expected["shards"], folder
        assert digests[folder]["rejects"] == expected["rejects"], folder
        assert digests[folder]["manifest"] == expected["manifest"], folder


if __name__ == "__main__":  # prints the table of EXPECTED for this checkout's code
    import os
    import tempfile

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from pare_model.body_model.procedural.files import write_asset_folder
    from pare_model.body_model.procedural.generator import generate as generate_model

    with tempfile.TemporaryDirectory() as scratch:
        body = Path(scratch) / "body_model_pkl"
        body.mkdir()
        write_asset_folder(generate_model(0), body, "pkl")
        print(json.dumps(run_job(body, Path(scratch)), indent=4, sort_keys=True))
