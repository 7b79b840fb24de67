"""Output file names made from shard keys stay inside their folder: the sanitiser, and `pare attention` and
`pare occlusion-analysis` on a shard whose keys hold `../..`, NUL and control characters."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
import webdataset as wds

from pipelines.cli import main
from pipelines.file_names import safe_file_name

HOSTILE_KEYS = ("a/../../../escaped", "../../escaped", "/absolute", "a\x00b\nc", "..", "")


@pytest.mark.parametrize("key", [*HOSTILE_KEYS, "x" * 500, "ok/../../../x", "..\\..\\win", "\u202eevil"])
def test_a_hostile_key_becomes_one_plain_file_name(key):
    name = safe_file_name(key)
    assert name and len(name) <= 100 and name not in (".", "..") and not name.startswith(".")
    assert "/" not in name and "\\" not in name and ".." not in name
    assert all(c.isascii() and c.isprintable() for c in name)
    assert safe_file_name(key) == name  # deterministic


def test_plain_keys_are_kept_and_changed_ones_do_not_collide():
    assert safe_file_name("3dpw_downtown_walking_00_00001_0") == "3dpw_downtown_walking_00_00001_0"
    names = {safe_file_name(key) for key in ("a/b", "a_b", "a\\b", "a:b", "a b")}
    assert len(names) == 5


def hostile_shard_folder(source: Path, target: Path, keys: tuple[str, ...]) -> Path:
    """A copy of a split folder whose single shard holds its first samples, renamed to ``keys`` (json key)."""
    first = sorted(source.glob("shard-*.tar"))[0]
    samples = list(wds.WebDataset(str(first), shardshuffle=False))[: len(keys)]
    buffer = io.BytesIO()
    with wds.TarWriter(buffer) as writer:
        for index, (sample, key) in enumerate(zip(samples, keys, strict=True)):
            annotation = json.loads(sample["json"])
            annotation["key"] = key
            member_key = f"hostile_{index:03d}"  # a tar member name cannot hold NUL; the loader uses the json key
            writer.write(
                {
                    "__key__": member_key,
                    "jpg": sample["jpg"],
                    "labels.png": sample["labels.png"],
                    "json": json.dumps(annotation).encode(),
                }
            )
    target.mkdir(parents=True)
    data = buffer.getvalue()
    (target / "shard-000000.tar").write_bytes(data)
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["shards"] = [
        {
            "name": "shard-000000.tar",
            "samples": len(keys),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "first_key": "hostile_000",
            "last_key": f"hostile_{len(keys) - 1:03d}",
        }
    ]
    manifest["totals"] = manifest["totals"] | {"samples": len(keys), "shards": 1, "bytes": len(data)}
    (target / "manifest.json").write_text(json.dumps(manifest))
    shutil.copy(source / "rejects.jsonl", target / "rejects.jsonl")
    return target


def test_attention_and_occlusion_pictures_of_hostile_keys_stay_in_out(
    procedural_dir, training_shards, tmp_path, ray_cluster
):
    import torch

    from pare_model.checkpoint import build_model_from_assets, save_model_checkpoint
    from pare_model.model_config import ModelConfig

    root = tmp_path / "a" / "b" / "c"
    keys = (
        *HOSTILE_KEYS,
        str(tmp_path / "absolute"),
    )  # an absolute key aiming inside tmp_path, where a leak would show
    shards = hostile_shard_folder(training_shards / "3dpw" / "test", root / "shards" / "3dpw" / "test", keys)
    torch.manual_seed(0)
    config = ModelConfig(backbone="debug", image_size=128, num_branch_filters=16, num_features_smpl=16)
    checkpoint = save_model_checkpoint(
        tmp_path / "random.pt", build_model_from_assets(config, procedural_dir).network_state_dict(), config
    )
    for prefix in ("attention", "figure1"):  # a folder left in --out is all `a/../../../escaped` needs to get out
        (root / prefix.replace("figure1", "occlusion") / f"{prefix}_a").mkdir(parents=True)
    before = set(tmp_path.rglob("*"))
    out = root / "attention"
    assert (
        main(
            [
                "attention",
                "--checkpoint",
                str(checkpoint),
                "--shards",
                str(shards),
                "--out",
                str(out),
                "--num",
                str(len(keys)),
                f"body_model.asset_dir={procedural_dir}",
            ]
        )
        == 0
    )
    assert len(list(out.glob("attention_*.png"))) == len(keys) + 1  # one per key and the sheet
    out = root / "occlusion"
    assert (
        main(
            [
                "occlusion-analysis",
                "--shards",
                str(shards),
                "--out",
                str(out),
                "evaluate.predictor=ground_truth",
                f"body_model.asset_dir={procedural_dir}",
                "evaluate.log_to=none",
                "evaluate.num_actors=1",
                f"evaluate.occlusion.figures={len(keys)}",
                "evaluate.occlusion.patch_size=64",
                "evaluate.occlusion.stride=64",
            ]
        )
        == 0
    )
    figures = [p for p in out.glob("figure1_*.png") if not p.name.startswith("figure1_mean")]
    assert len(figures) == len(keys)
    written = [p for p in set(tmp_path.rglob("*")) - before if p.is_file()]
    assert written and all(p.parent in (root / "attention", root / "occlusion") for p in written), written
