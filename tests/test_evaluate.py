"""`pare evaluate`, `pare occlusion-analysis` and `pare attention` on real shards, Ray actors and MLflow stores.

Known answers: each sample's own fit fed as the prediction gives 0 everywhere; a known rotation of
the root gives the MPJPE and PVE computed here from the ground-truth joints and a PA-MPJPE of 0; the
trained model of the session's training run scores exactly what its own validation logged; the
occlusion grid tiles every body pixel exactly once.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from pare_model.body_model import BodyModel, load_body_model_assets
from pare_model.geometry import axis_angle_to_matrix
from pare_model.metrics import protocol_joints
from pipelines.cli import main
from pipelines.data.shard_folders import resolve_folders
from pipelines.evaluation.measure import EvalPart, Unit, evaluate_unit, ground_truth
from pipelines.evaluation.predictors import ContextSpec, EvalContext
from pipelines.evaluation.subsets import sequence_of, subsets_of
from preprocessing.readers.pw3d_sequences import in_occlusion_subset


def shard_samples(folder: Path) -> list[dict]:
    """Every sample's annotation, read with the plain webdataset library."""
    urls = [str(p) for p in sorted(folder.glob("shard-*.tar"))]
    return [json.loads(s["json"]) for s in wds.WebDataset(urls, shardshuffle=False)]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_ground_truth_as_the_prediction_gives_zero_on_every_subset(
    procedural_dir, training_shards, tmp_path, ray_cluster
):
    test = training_shards / "3dpw" / "test"
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--shards",
            str(test),
            "--out",
            str(out),
            f"body_model.asset_dir={procedural_dir}",
            "evaluate.predictor=ground_truth",
            "evaluate.batch_size=7",
            "evaluate.log_to=none",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    annotations = shard_samples(test)
    occ = [a for a in annotations if in_occlusion_subset(a["extra"]["sequence"])]
    assert 0 < len(occ) < len(annotations)  # the synthetic set has 3DPW-OCC and other sequences
    assert metrics["subsets"]["3dpw"]["num_samples"] == len(annotations)
    # the test split alone: its occluded sequences are 3dpw-test-occ; 3dpw-occ needs the whole 3DPW
    assert metrics["subsets"]["3dpw-test-occ"]["num_samples"] == len(occ) and "3dpw-occ" not in metrics["subsets"]
    for entry in metrics["subsets"].values():
        for metric in ("mpjpe", "pa_mpjpe", "pve", "orient_error", "orient_error_median"):
            assert entry[metric] == pytest.approx(0.0, abs=1e-3), (metric, entry)
        assert entry["baseline"]["pa_mpjpe"] > 50.0  # the mean pose is far from every fit
    samples = read_csv(out / "per_sample.csv")  # two actors, each sample exactly once
    assert sorted(row["key"] for row in samples) == sorted(a["key"] for a in annotations)
    sequences = {
        row["sequence"]: int(row["num_samples"])
        for row in read_csv(out / "per_sequence.csv")
        if row["subset"] == "3dpw"
    }
    expected: dict[str, int] = {}
    for a in annotations:
        expected[a["extra"]["sequence"]] = expected.get(a["extra"]["sequence"], 0) + 1
    assert sequences == expected
    joints = read_csv(out / "per_joint.csv")
    assert len(joints) == 2 * 14 and {row["joint"] for row in joints} >= {"right_ankle", "head_top"}
    assert np.asarray(Image.open(out / "per_joint.png")).std() > 10


def _pid(context, unit) -> int:
    import os

    return os.getpid()


def test_shared_actors_serve_every_job_of_their_model_and_no_other(procedural_dir, ray_cluster):
    """One set of actors (the model loaded once) serves several measurements; another model's job is refused (the
    shared actors hold the CPUs its own actors would wait for)."""
    import dataclasses

    import ray

    from pipelines.evaluation.workers import run_units, shared_actors

    spec = ContextSpec(asset_dir=str(procedural_dir), predictor="ground_truth")
    units = [(Unit((f"unit-{i}",)), 1) for i in range(4)]
    with shared_actors(spec, 2, 1, 0.0) as actors:
        pids = set(ray.get([handle.run.remote(_pid, units[0][0]) for handle in actors.handles]))
        first = set(run_units(spec, _pid, units, 2, 1, 0.0, "first", actors))
        second = set(run_units(spec, _pid, units, 2, 1, 0.0, "second", actors))
        other = dataclasses.replace(spec, predictor="mean_pose")
        with pytest.raises(ValueError, match="made for"):
            next(run_units(other, _pid, units, 1, 1, 0.0, "another model", actors))
    assert len(pids) == 2 and first <= pids and second <= pids, (pids, first, second)
    assert _killed(actors.handles[0], units[0][0]), "the shared actors outlived their block"


def _killed(handle, unit, seconds: float = 300.0) -> bool:
    """Whether the actor dies within ``seconds``: ray.kill only asks, so a call made just after it may still run."""
    import time

    import ray

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ray.get(handle.run.remote(_pid, unit), timeout=seconds)
        except ray.exceptions.RayActorError:
            return True
        time.sleep(0.5)
    return False


def test_a_known_rotation_gives_its_mpjpe_and_a_pa_mpjpe_of_zero(procedural_dir, training_shards):
    test = training_shards / "3dpw" / "test"
    angle = math.radians(30.0)
    rotation = torch.tensor(
        [[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0], [-math.sin(angle), 0.0, math.cos(angle)]]
    )
    context = EvalContext(ContextSpec(str(procedural_dir), predictor="ground_truth"))

    def rotated(images, batch):
        rotations, betas = context.predict_ground_truth(images, batch)
        rotations = rotations.clone()
        rotations[:, 0] = rotation @ rotations[:, 0]  # turn the whole body about its root
        return rotations, betas

    context.predictor = rotated
    (folder,) = resolve_folders(str(test))
    part = evaluate_unit(context, Unit(folder.urls), batch_size=8, baseline=False)
    errors = part.arrays()

    body = BodyModel.from_assets(load_body_model_assets(procedural_dir))
    by_key = {a["key"]: a for a in shard_samples(test)}
    pose = torch.tensor(np.array([by_key[k]["pose"] for k in part.keys]), dtype=torch.float32)
    betas = torch.tensor(np.array([by_key[k]["betas"] for k in part.keys]), dtype=torch.float32)
    with torch.no_grad():
        truth = body(*torch.split(axis_angle_to_matrix(pose.reshape(-1, 24, 3)), [1, 23], dim=1), betas)
    centred = protocol_joints(truth["h36m_joints"]).double()
    expected_mpjpe = (
        torch.linalg.vector_norm(centred @ (rotation.double().T - torch.eye(3, dtype=torch.float64)), dim=-1).mean(-1)
        * 1000
    )
    about_root = (truth["vertices"] - truth["smpl_joints"][:, :1]).double()
    expected_pve = (
        torch.linalg.vector_norm(about_root @ (rotation.double().T - torch.eye(3, dtype=torch.float64)), dim=-1).mean(
            -1
        )
        * 1000
    )
    assert len(part) == len(by_key)
    np.testing.assert_allclose(errors["mpjpe"], expected_mpjpe.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(errors["pve"], expected_pve.numpy(), rtol=1e-4, atol=1e-3)
    assert errors["mpjpe"].min() > 20.0  # a 30-degree turn is far from free
    np.testing.assert_allclose(errors["pa_mpjpe"], 0.0, atol=1e-3)
    np.testing.assert_allclose(errors["orient_error"], 30.0, atol=1e-3)  # the turn, whatever the root's own rotation


def test_human36m_ground_truth_is_its_3d_joints_centred_on_the_pelvis(procedural_dir):
    """SPIN's and PARE's J24_TO_J14: slots 0-12 and 18 "Head (H36M)" (never 13, empty in Human3.6M files), centred
    on slot 14; a sample whose joints lack one of those is left out and counted, not scored against a zero."""
    context = EvalContext(ContextSpec(str(procedural_dir), predictor="mean_pose"))
    joints = torch.randn(4, 24, 4)
    joints[..., 3] = 1.0
    joints[:, 13] = 0.0  # "Top of Head (LSP)": empty, as in SPIN's Human3.6M files
    joints[3, 18, 3] = 0.0  # the fourth lacks the head
    batch = {
        "has_smpl": torch.tensor([0.0, 1.0, 0.0, 1.0]),
        "has_joints_3d": torch.tensor([1.0, 0.0, 0.0, 1.0]),  # the third has no 3D ground truth: left out
        "pose": torch.zeros(4, 72),
        "betas": torch.zeros(4, 10),
        "joints_3d": joints,
    }
    target = ground_truth(context, batch)
    assert target.keep.tolist() == [True, True, False, False] and target.incomplete.tolist() == [False] * 3 + [True]
    slots = [*range(13), 18]
    torch.testing.assert_close(target.joints[0], joints[0, slots, :3] - joints[0, 14, :3])
    assert target.has_vertices.tolist() == [False, True] and torch.isnan(target.vertices[0]).all()
    part = EvalPart()
    part.count_left_out(target)
    assert (part.without_ground_truth, part.missing_joints) == (1, 1)
    # SPIN's and PARE's protocols, as nkolot/SPIN datasets/preprocess/h36m.py writes h36m_valid_protocol{1,2}.npz
    # (which PARE evaluates): `user_list = [9, 11]`, and a frame is kept when `protocol == 1 or camera ==
    # '60457274'`: p1 every camera of S9 and S11, p2 the frontal camera 60457274 alone
    assert subsets_of("h36m", {"imgname": "S9_Directions_1.60457274_000001.jpg"}) == ["h36m-p1", "h36m-p2"]
    assert subsets_of("h36m", {"subject": "S11", "action": "Walking", "camera": "54138969"}) == ["h36m-p1"]
    assert subsets_of("h36m", {"subject": "S1", "action": "Walking", "camera": "60457274"}) == ["h36m"]
    assert sequence_of("h36m", {"imgname": "S9_Directions_1.60457274_000001.jpg"}) == "S9_Directions_1"
    assert subsets_of("3dpw", {"sequence": "downtown_stairs_00"}) == ["3dpw", "3dpw-occ", "3dpw-test-occ"]
    assert subsets_of("3dpw", {"sequence": "downtown_walking_00"}) == ["3dpw"]


@pytest.fixture(scope="module")
def trained(trained_run):
    """(tracking URI, training run, best checkpoint) of the session's `pare train configs/train_synthetic.yaml`."""
    from mlflow.tracking import MlflowClient

    storage, _ = trained_run
    uri = f"sqlite:///{storage / 'mlflow.db'}"
    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("pare-synthetic").experiment_id],
        filter_string="tags.`pare.run_name` = 'synthetic'",
    )
    return uri, run, storage / "synthetic" / "best" / "model.pt"


def test_the_trained_model_scores_what_its_validation_logged(
    procedural_dir, training_shards, trained, tmp_path, ray_cluster
):
    from mlflow.tracking import MlflowClient

    uri, run, _ = trained
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--run",
            run.info.run_id,
            "--shards",
            str(training_shards / "3dpw" / "test"),
            "--out",
            str(out),
            f"body_model.asset_dir={procedural_dir}",
            f"tracking.tracking_uri={uri}",
        ]
    )
    assert code == 0
    client = MlflowClient(uri)
    validation = client.get_metric_history(run.info.run_id, "val/pa_mpjpe")
    best = min(validation, key=lambda m: m.value)
    baseline = client.get_metric_history(run.info.run_id, "val/baseline_pa_mpjpe")[-1].value
    result = json.loads((out / "metrics.json").read_text())
    assert result["step"] == best.step and result["training_run_id"] == run.info.run_id
    ours = result["subsets"]["3dpw"]
    assert ours["pa_mpjpe"] == pytest.approx(best.value, abs=0.05)  # the same protocol as training's validation
    assert ours["baseline"]["pa_mpjpe"] == pytest.approx(baseline, abs=0.05)
    logged = client.get_metric_history(run.info.run_id, "eval/3dpw/pa_mpjpe")
    assert [(m.step, round(m.value, 3)) for m in logged] == [(best.step, round(ours["pa_mpjpe"], 3))]
    assert "3dpw-test-occ" in result["subsets"]
    assert client.get_run(run.info.run_id).data.metrics["eval/3dpw-test-occ/mpjpe"] > 0
    artifacts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"metrics.json", "per_joint.csv", "per_sequence.csv", "per_sample.csv", "per_joint.png"} <= artifacts
    assert client.get_run(run.info.run_id).info.status == "FINISHED"  # logging into it did not reopen it


def test_a_checkpoint_evaluated_into_a_new_run_is_linked_to_its_training_run(
    procedural_dir, training_shards, trained, tmp_path, ray_cluster, capsys
):
    from mlflow.tracking import MlflowClient

    uri, run, checkpoint = trained
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--shards",
            str(training_shards / "3dpw" / "test"),
            "--out",
            str(tmp_path / "eval"),
            f"body_model.asset_dir={procedural_dir}",
            "evaluate.log_to=new_run",
            "evaluate.num_actors=1",
            "evaluate.max_samples=10",
        ]
    )
    assert code == 0
    assert f"mlflow ui --backend-store-uri {uri}" in capsys.readouterr().out  # found the store beside the checkpoint
    client = MlflowClient(uri)
    (evaluation,) = client.search_runs([run.info.experiment_id], filter_string="tags.`pare.kind` = 'evaluate'")
    assert evaluation.data.tags["pare.evaluated_run"] == run.info.run_id
    assert evaluation.data.tags["mlflow.parentRunId"] == run.info.run_id
    assert evaluation.data.metrics["eval/3dpw/num_samples"] == 10
    assert evaluation.data.params["evaluate.max_samples"] == "10"


def test_evaluate_names_the_fix_for_bad_input(procedural_dir, training_shards, tmp_path, capsys):
    base = [f"body_model.asset_dir={procedural_dir}", "evaluate.log_to=none"]
    assert main(["evaluate", "--shards", str(training_shards / "3dpw" / "test"), *base]) == 2
    assert "--checkpoint FILE" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--shards", str(tmp_path), *base]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "evaluate.predictor=mean_pose", *base]) == 2
    assert "--shards DIR" in capsys.readouterr().err
    assert main(["evaluate", "--run", "abc", "--shards", str(tmp_path), *base]) == 2
    assert "MLFLOW_TRACKING_URI" in capsys.readouterr().err


def test_occlusion_analysis_of_the_trained_model(procedural_dir, training_shards, trained, tmp_path, ray_cluster):
    uri, run, checkpoint = trained
    out = tmp_path / "occlusion"
    code = main(
        [
            "occlusion-analysis",
            "--checkpoint",
            str(checkpoint),
            "--shards",
            str(training_shards / "3dpw" / "test"),
            "--out",
            str(out),
            f"body_model.asset_dir={procedural_dir}",
            "evaluate.occlusion.num_images=3",
            "evaluate.occlusion.figures=2",
        ]
    )
    assert code == 0
    data = np.load(out / "occlusion.npz")
    # 40 / 40 on 224 scales to 23 / 23 on the 128 input: ceil(128 / 23) = 6 positions a side, the paper's 6 x 6
    assert data["mpjpe"].shape == (3, 6, 6, 14) and data["coverage"].shape == (3, 6, 6, 24)
    assert np.isfinite(data["mpjpe"]).all() and (data["mpjpe"] > 0).all()
    assert not np.allclose(data["mpjpe"], data["clean_mpjpe"][:, None, None, :])  # the patch changes predictions
    # patch == stride tiles the input: every labelled pixel is under exactly one patch position
    annotations = {a["key"]: a for a in shard_samples(training_shards / "3dpw" / "test")}
    assert set(data["keys"]) <= set(annotations)
    body_pixels = data["coverage"].sum(axis=(1, 2, 3))
    assert (body_pixels > 0.02 * 128 * 128).all()
    figures = sorted(p.name for p in out.glob("figure1_*.png"))
    assert len(figures) == 2 + 2 and "figure1_mean_mpjpe.png" in figures
    for name in [*figures, "figure3_part_sensitivity.png"]:
        assert np.asarray(Image.open(out / name).convert("L")).std() > 10, name
    rows = read_csv(out / "part_sensitivity.csv")
    assert len(rows) == 24 and any(row["mpjpe_increase_mm"] not in ("", "nan") for row in rows)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    assert client.get_run(run.info.run_id).data.metrics["occlusion/clean_mpjpe"] > 0
    names = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "occlusion")}
    assert {"figure3_part_sensitivity.png", "occlusion.npz", "figure1_mean_mpjpe.png"} <= names


def test_the_occlusion_grid_tiles_the_part_labels_exactly(procedural_dir, training_shards):
    from pipelines.occlusion_sensitivity.analysis import Grid, analyse_unit

    context = EvalContext(ContextSpec(str(procedural_dir), predictor="ground_truth"))
    (folder,) = resolve_folders(str(training_shards / "3dpw" / "test"))
    part = analyse_unit(context, Unit(folder.urls, max_samples=2), patch=40, stride=40, batch_size=16, keep_images=2)
    arrays = part.arrays()
    grid = Grid.scaled(context.image_size, 40, 40)
    assert (grid.patch, grid.stride, grid.side) == (40, 40, 6)  # 224 input: the paper's 6 x 6 grid
    from pipelines.evaluation.measure import unit_batches

    for index, batch in enumerate(unit_batches(Unit(folder.urls, max_samples=2), 224, 1, label_size=224)):
        labels = batch["segm_mask"][0].numpy()
        counts = np.bincount(labels.ravel(), minlength=25)[1:]
        np.testing.assert_array_equal(arrays["coverage"][index].sum(axis=(0, 1)), counts)
    # the fit itself is the prediction: no patch can change it
    np.testing.assert_allclose(arrays["mpjpe"], 0.0, atol=1e-3)


def test_attention_pictures_of_the_trained_model(procedural_dir, training_shards, trained, tmp_path):
    _, _, checkpoint = trained
    out = tmp_path / "attention"
    code = main(
        [
            "attention",
            "--checkpoint",
            str(checkpoint),
            "--shards",
            str(training_shards / "3dpw" / "test"),
            "--out",
            str(out),
            "--num",
            "3",
            f"body_model.asset_dir={procedural_dir}",
        ]
    )
    assert code == 0
    panels = sorted(out.glob("attention_3dpw_*.png"))
    assert len(panels) == 3
    sheet = np.asarray(Image.open(out / "attention_sheet.png").convert("RGB"))
    assert sheet.std() > 10
    panel = np.asarray(Image.open(panels[0]).convert("RGB"))
    assert panel.shape[1] == 3 * 128 and panel.shape[0] > 128 + 4 * 64  # crop row, then 4 rows of part maps


def complete_samples(path: Path) -> int:
    """Samples with all three members that plain tarfile reads from a (truncated) shard before it ends."""
    import tarfile

    members: dict[str, set] = {}
    try:
        with tarfile.open(path, mode="r|") as tar:
            for member in tar:
                key, suffix = member.name.split(".", 1)
                tar.extractfile(member).read()
                members.setdefault(key, set()).add(suffix)
    except (tarfile.ReadError, EOFError):
        pass  # the truncated end
    return sum(suffixes == {"jpg", "labels.png", "json"} for suffixes in members.values())


def test_a_truncated_shard_fails_evaluation_or_is_counted_exactly(
    procedural_dir, training_shards, tmp_path, ray_cluster, capsys
):
    import shutil

    damaged = tmp_path / "3dpw" / "test"
    shutil.copytree(training_shards / "3dpw" / "test", damaged)
    manifest = json.loads((damaged / "manifest.json").read_text())
    first = manifest["shards"][0]
    shard = damaged / first["name"]
    shard.write_bytes(shard.read_bytes()[: first["bytes"] * 2 // 3])
    base = [
        "evaluate",
        "--shards",
        str(damaged),
        "--out",
        str(tmp_path / "eval"),
        f"body_model.asset_dir={procedural_dir}",
        "evaluate.predictor=ground_truth",
        "evaluate.log_to=none",
    ]
    assert main(base) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and first["name"] in error and "manifest says" in error
    assert "pare shards validate" in error and "evaluate.allow_damaged_shards=true" in error
    assert not (tmp_path / "eval").exists()  # failed in the preflight, before any actor measured anything

    assert main([*base, "evaluate.allow_damaged_shards=true"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    total = manifest["totals"]["samples"]
    lost = first["samples"] - complete_samples(shard)
    assert 0 < lost < first["samples"]
    assert metrics["samples_expected"] == total and metrics["samples_lost"] == lost
    assert metrics["subsets"]["3dpw"]["num_samples"] == total - lost
    assert len(metrics["damaged_shards"]) == 1 and first["name"] in metrics["damaged_shards"][0]
    assert f"{lost} of the {total} samples" in out and first["name"] in out


def test_a_small_evaluation_starts_fewer_actors():
    from pipelines.config.evaluate import EvaluateConfig
    from pipelines.data.shard_folders import ShardFolder
    from pipelines.evaluation.job import actors_for

    def folder(*samples: int) -> ShardFolder:
        return ShardFolder("f", tuple(f"f/shard-{i:06d}.tar" for i in range(len(samples))), samples, {})

    config = EvaluateConfig(num_actors=4, samples_per_actor=500)
    assert actors_for(config, [folder(30, 30)]) == 1  # one actor's start-up is worth more than 60 samples
    assert actors_for(config, [folder(500, 500), folder(1)]) == 3
    assert actors_for(config, [folder(*[1000] * 9)]) == 4
    assert actors_for(EvaluateConfig(num_actors=4, samples_per_actor=500, max_samples=200), [folder(*[1000] * 9)]) == 1
    with pytest.raises(ValueError, match="samples_per_actor must be >= 1"):
        EvaluateConfig(samples_per_actor=0)


def rewrite_first_sample(source: Path, target: Path, edit) -> str:
    """A copy of a shard folder whose first sample's annotation is changed by ``edit`` (a dict -> None), with the
    manifest's sizes and checksums recomputed, so that only the content is wrong; the sample's key."""
    import hashlib
    import io
    import shutil
    import tarfile

    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    shard = target / manifest["shards"][0]["name"]
    with tarfile.open(shard) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    buffer, key = io.BytesIO(), ""
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            if not key and info.name.endswith(".json"):
                annotation = json.loads(data)
                edit(annotation)
                data, key = json.dumps(annotation).encode(), annotation["key"]
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    shard.write_bytes(buffer.getvalue())
    for entry in manifest["shards"]:
        data = (target / entry["name"]).read_bytes()
        entry["bytes"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    manifest["totals"]["bytes"] = sum(entry["bytes"] for entry in manifest["shards"])
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return key


def test_a_sample_whose_ground_truth_is_nan_is_excluded_and_reported(
    procedural_dir, training_shards, tmp_path, ray_cluster, capsys
):
    """A NaN root rotation used to be scored: the loader's augmentation turned it into the identity (855 mm for the
    sample instead of 103 on a real model). It is left out, counted on the console and in metrics.json."""
    folder = tmp_path / "3dpw" / "test"
    key = rewrite_first_sample(training_shards / "3dpw" / "test", folder, lambda a: a["pose"].__setitem__(0, math.nan))
    out = tmp_path / "eval"
    argv = ["evaluate", "--shards", str(folder), "--out", str(out), f"body_model.asset_dir={procedural_dir}"]
    assert main([*argv, "evaluate.predictor=ground_truth", "evaluate.log_to=none"]) == 0
    console = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    total = json.loads((folder / "manifest.json").read_text())["totals"]["samples"]
    assert metrics["non_finite_ground_truth"] == 1 and metrics["samples_lost"] == 0
    assert metrics["subsets"]["3dpw"]["num_samples"] == total - 1
    assert key not in {row["key"] for row in read_csv(out / "per_sample.csv")}
    assert "EXCLUDED: 1 samples whose ground truth holds NaN or infinity" in console
