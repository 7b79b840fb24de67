"""Human3.6M end to end in every layout it comes in: ``pare synth`` -> ``pare preprocess`` -> ``pare evaluate``.

The same synthetic capture written as SPIN's npz files (root-centred ``S``), mmpose's (camera-frame ``S``),
mmhuman3d's HumanData (Human3.6M's head under ``headtop``) and the raw release (videos, CDF poses, MoSh fits),
read by the ``h36m_npz``, ``humandata`` and ``h36m`` readers for protocols 1 and 2. Each sample's own fit fed
as the prediction must score 0 under PARE's protocol (``J24_TO_J14`` ground truth), whatever the file's
conventions, and every frame must preprocess (SPIN's root-centred files too: their camera comes from the 2D
keypoints, never from the root-centred joints; ``tests/test_joints_frame.py`` checks where their labels land).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.config.loader import load_config
from pipelines.data.manifest import MANIFEST_FILE
from tests.synth_helpers import generate

pytestmark = pytest.mark.slow

NUM = 16
"""Frames per layout: 5 of the test subjects (S9, S11), 3 of them seen by protocol 2's frontal camera."""
LAYOUTS = {
    "spin": ("h36m", "h36m_npz", {}),
    "mmpose": ("h36m_mmpose", "h36m_npz", {"joints_frame": "camera"}),
    "humandata": ("h36m_humandata", "humandata", {}),
    "raw": ("h36m_raw", "h36m", {"cameras": "cameras.pkl", "mosh": "mosh"}),
}
"""Source name -> (synthetic layout, reader, reader options)."""


def humandata_file(protocol: int) -> dict:
    return {"npz": f"h36m_valid_protocol{protocol}.npz"}


@pytest.fixture(scope="module")
def shards(procedural_dir, tmp_path_factory, ray_cluster):
    from pipelines.preprocess.job import run_preprocess

    root = tmp_path_factory.mktemp("h36m_layouts")
    overrides = [f"body_model.asset_dir={procedural_dir}", f"preprocess.output={root / 'shards'}"]
    overrides += ["preprocess.samples_per_shard=4", "preprocess.num_workers=2"]
    for name, (layout, reader, options) in LAYOUTS.items():
        generate(procedural_dir, root / name, layout, NUM, seed=7, occluders=0.3)
        for protocol in (1, 2):
            source = f"preprocess.sources.{name}_p{protocol}"
            extra = {"protocol": protocol} | options | (humandata_file(protocol) if reader == "humandata" else {})
            overrides += [f"{source}.reader={reader}", f"{source}.root={root / name}", f"{source}.split=test"]
            overrides += [f"{source}.dataset=h36m-{name}-p{protocol}"]
            overrides += [f"{source}.options.{key}={value}" for key, value in extra.items()]
    run_preprocess(load_config(None, overrides), show_progress=False)
    return root


def spin_validation_file(spin: Path, protocol: int, out: Path) -> None:
    """SPIN's own validation file for ``protocol`` as its ``h36m_extract`` writes it (``np.savez(out_file,
    imgname=..., center=..., scale=..., S=...)``, nkolot/SPIN datasets/preprocess/h36m.py): no 2D keypoints, no
    fit; from the synthetic ``h36m`` layout's file of the same frames, beside its frames and cameras."""
    import shutil

    import numpy as np

    shutil.copytree(spin, out, dirs_exist_ok=True)
    name = f"h36m_valid_protocol{protocol}.npz"
    with np.load(spin / name) as data:
        np.savez(out / name, **{key: data[key] for key in ("imgname", "center", "scale", "S")})


def test_spin_validation_files_without_keypoints_or_fits_give_the_same_ground_truth(procedural_dir, shards, tmp_path):
    """SPIN's Human3.6M validation npz (imgname, center, scale, S alone) preprocesses every frame, and its samples
    carry the same ground truth: the mean pose scores the same on them as on the full files' samples."""
    from pipelines.preprocess.job import run_preprocess

    overrides = [f"body_model.asset_dir={procedural_dir}", f"preprocess.output={tmp_path / 'shards'}"]
    for protocol in (1, 2):
        spin_validation_file(shards / "spin", protocol, tmp_path / f"s_only_p{protocol}")
        source = f"preprocess.sources.s_only_p{protocol}"
        overrides += [f"{source}.reader=h36m_npz", f"{source}.root={tmp_path / f's_only_p{protocol}'}"]
        overrides += [f"{source}.split=test", f"{source}.dataset=h36m-spin-p{protocol}"]
        overrides += [f"{source}.options.protocol={protocol}"]
    run_preprocess(load_config(None, overrides), show_progress=False)
    baseline = {}
    for name, root in (("s_only", tmp_path / "shards"), ("full", shards / "shards")):
        folders = [str(root / f"h36m-spin-p{p}" / "test") for p in (1, 2)]
        out = tmp_path / f"eval-{name}"
        args = ["evaluate", "--shards", *folders, "--out", str(out), f"body_model.asset_dir={procedural_dir}"]
        assert main([*args, "evaluate.predictor=mean_pose", "evaluate.log_to=none", "evaluate.baseline=false"]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        baseline[name] = {
            k: (v["num_samples"], round(v["mpjpe"], 3), round(v["pa_mpjpe"], 3)) for k, v in metrics["subsets"].items()
        }
    assert baseline["s_only"] == baseline["full"] and len(baseline["full"]) == 2, baseline


def test_every_layout_preprocesses_every_frame(shards):
    frames = {1: 5, 2: 3}  # the synthetic capture's test frames (protocol 2: the frontal camera's)
    for name in LAYOUTS:
        for protocol, expected in frames.items():
            manifest = json.loads((shards / f"shards/h36m-{name}-p{protocol}/test" / MANIFEST_FILE).read_text())
            assert manifest["totals"]["samples"] == expected and manifest["totals"]["rejected"] == 0, (name, protocol)


def test_the_ground_truth_scores_zero_in_every_layout_and_protocol(procedural_dir, shards, tmp_path):
    folders = sorted(str(p.parent) for p in (shards / "shards").rglob(MANIFEST_FILE))
    assert len(folders) == 2 * len(LAYOUTS)
    out = tmp_path / "eval"
    args = ["evaluate", "--shards", *folders, "--out", str(out), f"body_model.asset_dir={procedural_dir}"]
    assert main([*args, "evaluate.predictor=ground_truth", "evaluate.log_to=none", "evaluate.baseline=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["subsets"]) == sorted(f"h36m-{n}-p{p}" for n in LAYOUTS for p in (1, 2))
    assert metrics["missing_joints"] == 0 and metrics["without_ground_truth"] == 0
    for name, entry in metrics["subsets"].items():
        for metric in ("mpjpe", "pa_mpjpe", "pve"):
            assert entry[metric] == pytest.approx(0.0, abs=1e-3), (name, metric, entry[metric])
    with open(out / "per_sample.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(LAYOUTS) * 8 and max(float(row["mpjpe"]) for row in rows) < 2e-3
