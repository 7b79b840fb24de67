"""The shards, manifests and rejects of fixed synthetic sources are the ones recorded below.

Planning changed from a list of records held on the driver to records streamed from columnar annotation
caches and spilled shard inputs: what lands in the output must not change. Then sample format 2 stored the
part labels at a quarter of the crop's side: every other member and field stays as it was.

The digests below were recorded with this module's :func:`output_digests` on the output of commit 2f2b735
(``python -m tests.test_preprocess_identity`` prints the table; it was run with this module beside that
commit's code, and with the job's build stage in its own process, as Ray could not start on the loaded
machine that day; e65ae85 holds the first table, taken with Ray, of whole member bytes). A shard's digest
covers every member's name and content in order: the crop JPEG's bytes, the annotation's bytes without its
format version, and the label map's pixels as format 2 stores them (a format-1 map at the crop's side is
reduced the way format 2 stores it: the pixel at the centre of each 4 x 4 block). A manifest's digest covers
its text without the sample format's description and the code version; a rejects file's, its text. The
source roots (temporary folders that differ between runs) are replaced by their names before hashing, and so
the manifest's per-shard ``bytes`` and ``sha256``, which cover the paths inside the annotations, and its
``config_hash``, which covers the source roots and the crop settings, are left out of its digest.

Rerecorded on 2026-12-07 (commit after c02afda), once the table above had shown the planning rewrite
(issue 37) left every output as 2f2b735 wrote it but for the label size, because later work changed the
contents on purpose: ``3dpw/test`` and ``h36m/test`` shards and manifests (issue 36: the 24 3D joints in SPIN's
slots with Human3.6M's head at slot 18; synthetic 3DPW sequences named as in the real splits, and annotations naming their split, for the 3DPW-OCC sets) and
``coco-bad``'s rejects (issue 39: a JPEG cut short is named as such). ``coco-eft``, ``coco-kp`` and ``mpii``
are unchanged since 2f2b735.

Rerecord only when the shard contents change on purpose, and say why in the commit.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines.config.loader import load_config
from pipelines.data.manifest import MANIFEST_FILE, REJECTS_FILE
from tests.synth_helpers import generate
from tests.test_preprocess_job import COCO_OPTIONS, break_coco_source, job_settings

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
        "manifest": "b8b655ea98144f82b07d873b1d75ee75807bf640494f7ca606b0250a4123764a",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {
            "shard-000000.tar": "81df7f40fa64932b526926f1491ccff044d4d52012daa7e9bc9819c1e9fb33c2",
            "shard-000001.tar": "3b9347626e5078e80751e8f53397f23db2f3992f3cd93d59983ace1dfc5793eb",
            "shard-000002.tar": "c46063c9a2fb95733d054572941d68b32f02bd2576f8333655ff60b28ae7777f",
        },
    },
    "coco-bad/train": {
        "manifest": "2db8b0c7ac1e1bb56a309badc2f48022e143ee8ed4a3c75030d87a22bf12df38",
        "rejects": "eb3c327b076ea7104d39c233c20471f7f32e752583231b8e912ea6fbacc870ad",
        "shards": {
            "shard-000000.tar": "bb962b58b1e2f88e3a3b22dd748bdc1f57765fcb13a5ee5e0b3cce417ec889f1",
            "shard-000001.tar": "13f0979ac0c74f7f4ebc0c71b969d1bced9f149f148043f96b87daa1babe524c",
        },
    },
    "coco-eft/train": {
        "manifest": "02805a85e6208f8bb289b1fc361c6817495763456c3ff92cbbde82e816a80508",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {
            "shard-000000.tar": "5369a28d98190a8e7b369bb215a9eb58419d8063fbaec3e21acb66ee8067bf5f",
            "shard-000001.tar": "97976f92e95669bfe64780e7b835d01f799e42b7b8bd3e6c0e381ebcb0a116ff",
            "shard-000002.tar": "d0de14d3a201e7fec4bb9b5974715e6a4745a2e72a8a885742c175c5e201c598",
        },
    },
    "coco-kp/train": {
        "manifest": "88dc8f36638291ac725ae8e572120325744b4a148b3a69afe71827029ec968d7",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {
            "shard-000000.tar": "0767a77073ca6a04a922d08e3dd724df5155c5e152478c52a65ed0aecb5657b5",
            "shard-000001.tar": "57c973c63a498602c079088db65ed1c29922b4b3c4bd682bdfa53ac0acc51e85",
            "shard-000002.tar": "89857717edcdaaf0fb5eee4241ce9ef35ed39be78ca8bb8db340e39769d0291b",
        },
    },
    "h36m/test": {
        "manifest": "d721c23f1d0d511a1b9ea883224e46a4cccaef665104bf6df3853f2154a31682",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {"shard-000000.tar": "5346784ed544422368f454ab292b7dc5a71847cc93ea4d64d71a47d0281db3a4"},
    },
    "mpii/train": {
        "manifest": "8a0b1ff8255ff7265be6a2918c62ec8509c9273e92f43b355803ced6132b5a97",
        "rejects": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "shards": {
            "shard-000000.tar": "6587352ddf020a448c54ad0eda87a7deba5777d999ffbc12805e9e73af1239f8",
            "shard-000001.tar": "58da0b37fda5f81d72f1e186afaef95bb34840e81e694fb48148cc6e188e46fb",
        },
    },
}
"""Per output folder: the digests of its manifest, rejects file and shards (rerecorded 2026-12-07)."""


def make_sources(procedural_dir: Path, root: Path) -> dict[str, Path]:
    """The synthetic sources, generated on one torch thread: with two, the 3DPW-like images and fits come out
    different in their last bits (the test processes run one thread each, a plain ``python -m`` two)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _make_sources(procedural_dir, root)
    finally:
        torch.set_num_threads(threads)


def _make_sources(procedural_dir: Path, root: Path) -> dict[str, Path]:
    roots = {}
    for name, (layout, count, seed) in SOURCES.items():
        roots[name] = root / name
        generate(procedural_dir, roots[name], layout, count, seed=seed)
    roots["coco_bad"] = root / "coco_bad"
    generate(procedural_dir, roots["coco_bad"], "coco_eft", 10, seed=1)
    break_coco_source(roots["coco_bad"])
    return roots


def job_overrides(procedural_dir: Path, roots: dict[str, Path], output: Path) -> list[str]:
    overrides = job_settings(procedural_dir, output)
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


def _member_digest(name: str, data: bytes, roots: dict[str, Path]) -> str:
    if name.endswith(".labels.png"):
        labels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if labels.shape[0] % 8 == 0:  # format 1: at the crop's side (a multiple of 8); format 2 stores a quarter
            labels = labels[2::4, 2::4]
        return _sha(np.ascontiguousarray(labels).tobytes() + str(labels.shape).encode())
    if name.endswith(".json"):
        annotation = json.loads(_normalized(data, roots))
        del annotation["version"]
        return _sha(json.dumps(annotation, sort_keys=True).encode())
    return _sha(_normalized(data, roots))


def shard_digest(data: bytes, roots: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            member = tar.extractfile(info).read() if info.isfile() else b""
            digest.update(info.name.encode() + b"\0" + _member_digest(info.name, member, roots).encode())
    return digest.hexdigest()


def manifest_digest(text: str, roots: dict[str, Path]) -> str:
    manifest = json.loads(_normalized(text.encode(), roots))
    for shard in manifest["shards"]:
        del shard["bytes"], shard["sha256"]
    del manifest["totals"]["bytes"], manifest["config_hash"], manifest["sample_format"], manifest["code_version"]
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


def test_shards_manifests_and_rejects_are_the_recorded_ones(procedural_dir, tmp_path, ray_cluster):
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
        print(json.dumps(run_job(body, Path(scratch)), indent=4, sort_keys=True))  # RAY_ADDRESS joins a cluster
