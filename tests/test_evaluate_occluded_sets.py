"""`pare preprocess` builds the paper's occlusion test sets from their real layouts (3DPW in one go with split
``all``, 3DOH50K's test set), and `pare evaluate evaluate.predictor=ground_truth` scores 0 mm on every subset."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from pipelines.config.loader import load_config
from preprocessing.readers.pw3d_sequences import in_occlusion_subset
from tests.synth_helpers import generate
from tests.test_evaluate import shard_samples


@pytest.fixture(scope="module")
def shards(procedural_dir, tmp_path_factory, ray_cluster):
    from pipelines.preprocess.job import run_preprocess

    root = tmp_path_factory.mktemp("occluded_sets")
    generate(procedural_dir, root / "3dpw", "3dpw", 16, seed=5, occluders=0.5)  # 6 sequences: every split
    generate(procedural_dir, root / "3doh", "3doh", 8, seed=6, occluders=0.8)
    overrides = [
        f"body_model.asset_dir={procedural_dir}",
        f"preprocess.output={root / 'shards'}",
        "preprocess.samples_per_shard=40",
        "preprocess.sources.pw3d.reader=3dpw",
        f"preprocess.sources.pw3d.root={root / '3dpw'}",
        "preprocess.sources.pw3d.split=all",
        "preprocess.sources.oh3d.reader=3doh",
        f"preprocess.sources.oh3d.root={root / '3doh'}",
        "preprocess.sources.oh3d.split=test",
    ]
    run_preprocess(load_config(None, overrides), show_progress=False)
    return root / "shards"


def _evaluate(procedural_dir, folders, out, *extra) -> dict:
    args = ["evaluate", "--shards", *map(str, folders), "--out", str(out), f"body_model.asset_dir={procedural_dir}"]
    code = main([*args, "evaluate.predictor=ground_truth", "evaluate.log_to=none", *extra])
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


def test_ground_truth_scores_zero_on_3dpw_3dpw_occ_and_3doh(procedural_dir, shards, tmp_path, ray_cluster, capsys):
    metrics = _evaluate(procedural_dir, [shards / "3dpw" / "all", shards / "3doh" / "test"], tmp_path / "eval")
    pw3d = shard_samples(shards / "3dpw" / "all")
    splits = {a["extra"]["split"] for a in pw3d}
    assert splits == {"train", "validation", "test"}
    expected = {
        "3dpw": sum(a["extra"]["split"] == "test" for a in pw3d),
        "3dpw-occ": sum(in_occlusion_subset(a["extra"]["sequence"]) for a in pw3d),
        "3dpw-test-occ": sum(
            in_occlusion_subset(a["extra"]["sequence"]) and a["extra"]["split"] == "test" for a in pw3d
        ),
        "3dpw-train": sum(a["extra"]["split"] == "train" for a in pw3d),
        "3dpw-validation": sum(a["extra"]["split"] == "validation" for a in pw3d),
        "3doh": len(shard_samples(shards / "3doh" / "test")),
    }
    assert {name: entry["num_samples"] for name, entry in metrics["subsets"].items()} == expected
    assert expected["3dpw-occ"] > expected["3dpw-test-occ"] > 0 and expected["3doh"] >= 5
    for name, entry in metrics["subsets"].items():
        for metric in ("mpjpe", "pa_mpjpe", "pve"):
            assert entry[metric] == pytest.approx(0.0, abs=5e-4), (name, metric, entry)
        assert entry["num_pve_samples"] == entry["num_samples"]
        assert entry["baseline"]["pa_mpjpe"] > 30.0, name  # the mean pose is far from every fit
    assert "3dpw-occ not reported" not in capsys.readouterr().out


def test_the_test_split_alone_reports_3dpw_test_occ_and_says_why(procedural_dir, shards, tmp_path, ray_cluster, capsys):
    """The same frames, only the test split's shards: 3dpw-occ (the whole 3DPW's) is not claimed."""
    from pipelines.preprocess.job import run_preprocess

    source = shards.parent / "3dpw"
    overrides = [f"body_model.asset_dir={procedural_dir}", f"preprocess.output={tmp_path / 'shards'}"]
    overrides += [
        "preprocess.sources.t.reader=3dpw",
        f"preprocess.sources.t.root={source}",
        "preprocess.sources.t.split=test",
    ]
    run_preprocess(load_config(None, overrides), show_progress=False)
    metrics = _evaluate(procedural_dir, [tmp_path / "shards" / "3dpw" / "test"], tmp_path / "eval")
    assert set(metrics["subsets"]) == {"3dpw", "3dpw-test-occ"}
    assert "3dpw-occ not reported" in capsys.readouterr().out
    code = main(
        [
            "evaluate",
            "--shards",
            str(tmp_path / "shards" / "3dpw" / "test"),
            "--out",
            str(tmp_path / "asked"),
            f"body_model.asset_dir={procedural_dir}",
            "evaluate.predictor=ground_truth",
            "evaluate.log_to=none",
            "evaluate.subsets=[3dpw-occ]",
        ]
    )
    assert code == 2
    assert "pare evaluate: error: evaluate.subsets asks for ['3dpw-occ']" in capsys.readouterr().err
