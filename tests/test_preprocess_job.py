"""The preprocessing job end to end on a real local Ray cluster, with synthetic sources read by the real readers.

Shards are read back with the plain ``webdataset`` library and ``tar``; the part labels are
checked against a fresh render of each sample's stored fit and camera; bad inputs end up in
``rejects.jsonl`` with their reasons; each shard holds its planned slice of the records; samples
are written once, as the shards; a rerun skips finished work.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipelines.config.loader import load_config
from pipelines.data.manifest import MANIFEST_FILE, REJECTS_FILE
from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.render import perspective_to_screen, render_part_labels
from tests.synth_helpers import generate

pytestmark = pytest.mark.slow

COCO_OPTIONS = {"images": "images/train2014", "eft": "eft_fits/COCO2014-All-ver01.json"}


@pytest.fixture(scope="module")
def sources(procedural_dir, tmp_path_factory):
    """Synthetic sources in four layouts, plus a COCO source with broken inputs."""
    root = tmp_path_factory.mktemp("sources")
    generate(procedural_dir, root / "coco", "coco_eft", 10, seed=1)
    generate(procedural_dir, root / "3dpw", "3dpw", 12, seed=2)
    generate(procedural_dir, root / "h36m", "h36m", 8, seed=3)
    generate(procedural_dir, root / "mpii", "mpii", 8, seed=4)
    bad = root / "coco_bad"
    shutil.copytree(root / "coco", bad)
    break_coco_source(bad)
    return root


def break_coco_source(folder: Path) -> None:
    """Damage a copy of a synthetic COCO source: one input per kind of problem."""
    annotations_path = folder / "annotations/person_keypoints_train2014.json"
    eft_path = folder / "eft_fits/COCO2014-All-ver01.json"
    coco = json.loads(annotations_path.read_text())
    eft = json.loads(eft_path.read_text())
    images = {image["id"]: image for image in coco["images"]}
    anns = coco["annotations"]
    (folder / "images/train2014" / images[anns[0]["image_id"]]["file_name"]).unlink()  # missing image
    corrupt = folder / "images/train2014" / images[anns[1]["image_id"]]["file_name"]
    corrupt.write_bytes(corrupt.read_bytes()[:300])  # corrupt image
    fits = {fit["annotId"]: fit for fit in eft["data"]}
    fits[anns[2]["id"]]["parm_shape"][3] = float("nan")  # NaN parameters
    image = images[anns[3]["image_id"]]
    fits[anns[3]["id"]]["bbox_center"] = [image["width"] * 5.0, image["height"] * 5.0]  # box outside the image
    anns[4]["keypoints"] = [0] * 51  # no visible keypoints
    anns[4]["num_keypoints"] = 0
    duplicate = dict(anns[5])
    anns.append(duplicate)  # duplicate annotation id
    annotations_path.write_text(json.dumps(coco))
    eft_path.write_text(json.dumps(eft))  # NaN is written as the bare token NaN, which json (and EFT's tools) read


def job_settings(procedural_dir, output: Path) -> list[str]:
    """The body model, the output and small units of work (4 records a shard)."""
    return [
        f"body_model.asset_dir={procedural_dir}",
        f"preprocess.output={output}",
        "preprocess.samples_per_shard=4",
        "preprocess.chunk_size=3",
        "preprocess.num_workers=2",
    ]


def job_config(procedural_dir, sources: Path, output: Path, *extra: str):
    overrides = job_settings(procedural_dir, output)

    def source(name, reader, folder, split="train", **options):
        overrides.extend(
            [f"preprocess.sources.{name}.reader={reader}", f"preprocess.sources.{name}.root={sources / folder}"]
        )
        overrides.append(f"preprocess.sources.{name}.split={split}")
        overrides.extend(f"preprocess.sources.{name}.options.{k}={v}" for k, v in options.items())

    source("coco", "coco_eft", "coco", **COCO_OPTIONS)
    source("pw3d", "3dpw", "3dpw", split="test")
    source("h36m", "h36m_npz", "h36m", split="test")
    source("mpii", "mpii", "mpii")
    return overrides + list(extra)


@pytest.fixture(scope="module")
def job(procedural_dir, sources, tmp_path_factory, ray_cluster):
    from pipelines.preprocess.job import run_preprocess

    output = tmp_path_factory.mktemp("shards")
    overrides = job_config(procedural_dir, sources, output)
    bad = ["preprocess.sources.bad.reader=coco_eft", f"preprocess.sources.bad.root={sources / 'coco_bad'}"]
    bad += ["preprocess.sources.bad.dataset=coco-bad"] + [
        f"preprocess.sources.bad.options.{k}={v}" for k, v in COCO_OPTIONS.items()
    ]
    config = load_config(None, overrides + bad)
    report = run_preprocess(config, show_progress=False)
    return output, config, report


def folders(output: Path) -> list[Path]:
    return sorted(p.parent for p in output.rglob(MANIFEST_FILE))


def test_every_input_is_written_or_rejected(job):
    output, _, report = job
    assert {f.folder for f in report.folders} == {
        "coco-eft/train",
        "3dpw/test",
        "h36m/test",
        "mpii/train",
        "coco-bad/train",
    }
    for folder in folders(output):
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        rejects = [json.loads(line) for line in (folder / REJECTS_FILE).read_text().splitlines()]
        totals = manifest["totals"]
        assert totals["inputs"] == totals["samples"] + totals["rejected"], folder
        assert totals["rejected"] == len(rejects)
        assert sum(s["samples"] for s in manifest["shards"]) == totals["samples"]
        names = [s["name"] for s in manifest["shards"]]
        assert names == sorted(set(names)) and all(re.fullmatch(r"shard-[0-9]{6}\.tar", n) for n in names)
        assert all(1 <= s["samples"] <= 4 for s in manifest["shards"])  # at most samples_per_shard, never empty
        assert sorted(p.name for p in folder.glob("shard-*")) == names  # no temporary or stale file beside them
        assert not (folder / "_work").exists()
        assert manifest["source"]["fingerprint"] and manifest["config_hash"] and manifest["code_version"]
    stages = report.stage_seconds
    assert report.shards_planned > 0 and report.shards_reused == 0
    assert 0 < stages["build_busy"] and 0 <= stages["build_steady"] <= stages["build"]
    assert stages["steady_records_per_s"] >= 0  # 0 only if the workers never ran at the same time
    shard_bytes = sum(json.loads((f / MANIFEST_FILE).read_text())["totals"]["bytes"] for f in folders(output))
    assert report.bytes_written == shard_bytes  # every shard written exactly once


def planned_keys(config, folder: str) -> list[list[str]]:
    """The sample keys the planner puts into each shard of ``folder``, before any sample is built."""
    from pipelines.preprocess.plan import SourcePlan, build_readers, plan_records

    pre = config.preprocess
    for name, reader in build_readers(pre).items():
        if f"{reader.dataset}/{reader.split}" == folder:
            plan = SourcePlan(name, reader, folder, fingerprint="", config_hash="")
            shards: list[list[str]] = []

            def keep_keys(index: int, records: list, shards: list[list[str]] = shards) -> None:
                shards.append([record.key for record in records])

            plan_records(plan, pre.samples_per_shard, pre.min_keypoints, keep_keys, show_progress=False)
            return shards
    raise AssertionError(f"no source writes {folder}")


def shard_keys(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return list(dict.fromkeys(name.split(".", 1)[0] for name in tar.getnames()))


def test_each_shard_holds_its_planned_records_whatever_is_rejected(job):
    """Shard k holds planned records k*N .. (k+1)*N - 1 less those rejected while building: a reject makes its
    own shard smaller and shifts no sample into another shard; a shard left empty is not written."""
    output, config, _ = job
    shrunk = 0
    for folder in folders(output):
        relative = str(folder.relative_to(output))
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        written = {s["name"]: shard_keys(folder / s["name"]) for s in manifest["shards"]}
        kept = {key for keys in written.values() for key in keys}
        planned = planned_keys(config, relative)
        expected = {f"shard-{k:06d}.tar": [key for key in keys if key in kept] for k, keys in enumerate(planned)}
        assert written == {name: keys for name, keys in expected.items() if keys}, relative
        last = len(planned) - 1
        shrunk += sum(len(written.get(f"shard-{k:06d}.tar", [])) < 4 for k in range(last))
    assert shrunk >= 1, "no shard but the last lost a record while building: nothing was tested"


def test_samples_are_written_once_as_the_shards(procedural_dir, sources, tmp_path, ray_cluster):
    """With the work files kept, everything the job wrote is in sight: the shards hold every sample's bytes,
    the work files only small JSON summaries (no part files to copy from)."""
    from pipelines.preprocess.job import run_preprocess

    overrides = [
        o
        for o in job_config(procedural_dir, sources, tmp_path)
        if ".mpii." in o or not o.startswith("preprocess.sources.")
    ]
    report = run_preprocess(load_config(None, overrides + ["preprocess.keep_work=true"]), show_progress=False)
    folder = tmp_path / "mpii/train"
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    work = sorted((folder / "_work").iterdir())
    assert [p.name for p in work] == [f"shard-{k:06d}.json" for k in range(report.shards_planned)]
    shard_bytes = sum(p.stat().st_size for p in folder.glob("shard-*.tar"))
    assert shard_bytes == manifest["totals"]["bytes"] == report.bytes_written
    assert sum(p.stat().st_size for p in work) < 0.05 * shard_bytes


def test_bad_inputs_are_rejected_with_their_reasons(job):
    output, _, _ = job
    manifest = json.loads((output / "coco-bad/train" / MANIFEST_FILE).read_text())
    reasons = manifest["rejects_by_reason"]
    for reason in (
        "missing_image",
        "corrupt_image",
        "nan_parameters",
        "box_outside_image",
        "no_visible_keypoints",
        "duplicate_id",
    ):
        assert reasons.get(reason, 0) >= 1, (reason, reasons)
    good = json.loads((output / "coco-eft/train" / MANIFEST_FILE).read_text())
    assert manifest["totals"]["inputs"] == good["totals"]["inputs"] + 1  # the duplicate is one more input
    assert manifest["totals"]["samples"] == good["totals"]["samples"] - 5  # the first copy of the duplicate is kept


def test_shards_read_with_plain_webdataset_and_tar(job):
    import webdataset as wds

    output, _, _ = job
    for folder in folders(output):
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        urls = [str(folder / s["name"]) for s in manifest["shards"]]
        labels_png = wds.handle_extension("labels.png", lambda data: np.asarray(Image.open(io.BytesIO(data))))
        samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode(labels_png, "rgb8"))
        assert len(samples) == manifest["totals"]["samples"]
        size, label_size = manifest["sample_format"]["crop_resolution"], manifest["sample_format"]["label_resolution"]
        assert label_size * 4 == size  # crop.label_stride 4: the loss's resolution
        for sample in samples:
            assert "." not in sample["__key__"]
            assert sample["jpg"].shape == (size, size, 3) and sample["labels.png"].shape == (label_size, label_size)
            assert sample["labels.png"].dtype == np.uint8 and sample["labels.png"].max() <= 24
            assert sample["json"]["key"] == sample["__key__"]
        with tarfile.open(urls[0]) as tar:
            names = tar.getnames()
        assert names[:3] == [f"{manifest['shards'][0]['first_key']}.{m}" for m in ("jpg", "labels.png", "json")]
        listing = subprocess.run(["tar", "-tf", urls[0]], capture_output=True, text=True, check=True).stdout.split()
        assert listing == names


def test_labels_match_a_fresh_render(job, procedural_dir):
    """Pose each stored fit, project it with the stored crop camera, render: the stored labels must agree."""
    import webdataset as wds

    output, _, _ = job
    models = BodyModels(procedural_dir)
    checked = 0
    for folder in folders(output):
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        urls = [str(folder / s["name"]) for s in manifest["shards"]]
        for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
            annotation = json.loads(sample["json"])
            labels = cv2.imdecode(np.frombuffer(sample["labels.png"], np.uint8), cv2.IMREAD_UNCHANGED)
            if not annotation["has_segm"]:
                assert labels.max() == 0
                continue
            posed = pose_bodies(
                models.get(annotation["gender"]),
                np.asarray(annotation["pose"]).reshape(1, 24, 3),
                np.asarray([annotation["betas"]]),
            )
            camera = annotation["camera"]
            screen = perspective_to_screen(
                posed.vertices[0], np.asarray(camera["intrinsics"]), (np.eye(3), np.asarray(camera["translation"]))
            )
            size = manifest["sample_format"]["crop_resolution"]
            stride = size // len(labels)
            expected = render_part_labels(screen, models.faces(), models.face_parts(), size, size)
            expected = expected[stride // 2 :: stride, stride // 2 :: stride]  # stored: each block's centre pixel
            body = (labels > 0) | (expected > 0)
            assert body.sum() > 500 // stride**2
            assert (labels == expected)[body].mean() > 0.995, annotation["key"]
            quality = annotation["fit_quality"]
            # Human3.6M's keypoints are its own joints (J_regressor_h36m), which the fit's SPIN joints miss by a few
            # cm, as the real ones; the other layouts' keypoints are the fit's own joints.
            limit = 5.0 if annotation["dataset"] == "h36m" else 1.0
            assert quality["reprojection_error"] < limit, (annotation["key"], quality)
            checked += 1
    assert checked >= 20


def test_dotted_source_ids_become_dot_free_keys(job):
    output, _, _ = job
    manifest = json.loads((output / "h36m/test" / MANIFEST_FILE).read_text())
    first = manifest["shards"][0]["first_key"]
    assert "." not in first and "-" in first  # e.g. S9_Directions_1.60457274_000001 -> ..._1-60457274_...


def test_rerun_skips_finished_folders(job, procedural_dir):
    from pipelines.preprocess.job import run_preprocess

    output, config, _ = job
    before = {p: p.stat().st_mtime_ns for p in output.rglob("*") if p.is_file()}
    report = run_preprocess(config, show_progress=False)
    assert {f.status for f in report.folders} == {"up to date"}
    assert "build" not in report.stage_seconds
    after = {p: p.stat().st_mtime_ns for p in output.rglob("*") if p.is_file()}
    assert after == before


def test_a_damaged_shard_is_rebuilt(job, procedural_dir, tmp_path):
    """A shard that no longer matches its manifest makes the folder stale: the rerun rebuilds it identically."""
    from pipelines.preprocess.job import run_preprocess

    output, config, _ = job
    copy = tmp_path / "copy"
    shutil.copytree(output / "mpii", copy / "mpii")
    manifest_before = (copy / "mpii/train" / MANIFEST_FILE).read_text()
    shard = copy / "mpii/train/shard-000000.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF
    shard.write_bytes(bytes(data))
    overrides = [
        o
        for o in job_config(procedural_dir, Path(config.preprocess.sources["coco"].root).parent, copy)
        if ".mpii." in o or not o.startswith("preprocess.sources.")
    ]
    report = run_preprocess(load_config(None, overrides), show_progress=False)
    assert [f.status for f in report.folders] == ["built"]
    assert (copy / "mpii/train" / MANIFEST_FILE).read_text() == manifest_before


def test_a_rerun_hashes_only_the_shards_changed_since_they_were_written(job, procedural_dir, tmp_path):
    """``_verified.json`` holds each written shard's size and modification time: a rerun hashes only shards whose
    size or time differ (the shard edited above was rebuilt). One whose bytes changed behind an unchanged size and
    time is trusted by the rerun, and found by ``pare shards validate``, which hashes every shard."""
    import os

    from pipelines.cli import main
    from pipelines.preprocess.job import run_preprocess

    output, config, _ = job
    copy = tmp_path / "copy"
    shutil.copytree(output / "mpii", copy / "mpii")
    folder = copy / "mpii/train"
    verified = json.loads((folder / "_verified.json").read_text())["shards"]
    assert sorted(verified) == sorted(s["name"] for s in json.loads((folder / MANIFEST_FILE).read_text())["shards"])
    for name in verified:  # the copy has new modification times: give back the recorded ones
        os.utime(folder / name, ns=(verified[name][1], verified[name][1]))
    shard = folder / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(verified[shard.name][1], verified[shard.name][1]))
    overrides = [
        o
        for o in job_config(procedural_dir, Path(config.preprocess.sources["coco"].root).parent, copy)
        if ".mpii." in o or not o.startswith("preprocess.sources.")
    ]
    report = run_preprocess(load_config(None, overrides), show_progress=False)
    assert [f.status for f in report.folders] == ["up to date"]
    assert main(["shards", "validate", str(folder), "--quiet"]) == 1


def test_shards_validate_and_stats_cli(job, tmp_path):
    from pipelines.cli import main

    output, _, _ = job
    assert main(["shards", "validate", str(output), "--quiet"]) == 0
    assert (
        main(["shards", "stats", str(output / "coco-eft/train"), "--out", str(tmp_path / "stats"), "--samples", "6"])
        == 0
    )
    stats = json.loads((tmp_path / "stats/stats.json").read_text())
    manifest = json.loads((output / "coco-eft/train" / MANIFEST_FILE).read_text())
    assert stats["samples"] == manifest["totals"]["samples"] == stats["with_smpl"]
    assert sum(stats["histograms"]["reprojection_error"]) == stats["samples"]
    sheet = np.asarray(Image.open(tmp_path / "stats/contact_sheet.png"))
    assert sheet.shape[0] > 200 and sheet.std() > 10
    # a damaged copy fails validation, naming the shard
    broken = tmp_path / "broken"
    shutil.copytree(output / "mpii/train", broken)
    (broken / "shard-000001.tar").unlink()
    (broken / REJECTS_FILE).write_text((broken / REJECTS_FILE).read_text() + '{"reason": "bad_box"}\n')
    assert main(["shards", "validate", str(broken), "--quiet"]) == 1


def test_mistakes_fail_before_any_ray_work(procedural_dir, sources, tmp_path):
    """Wrong paths, a missing body model and a truncated annotation file stop the CLI at once, naming the problem."""
    import sys

    def run(*overrides):
        args = [sys.executable, "-m", "pipelines.cli", "preprocess", "--quiet", *overrides]
        return subprocess.run(args, capture_output=True, text=True, timeout=120)

    base = [f"preprocess.output={tmp_path / 'out'}", "preprocess.sources.c.reader=coco_eft"]
    base += [f"preprocess.sources.c.options.{k}={v}" for k, v in COCO_OPTIONS.items()]
    wrong_root = run(
        f"body_model.asset_dir={procedural_dir}", *base, f"preprocess.sources.c.root={tmp_path / 'nowhere'}"
    )
    assert wrong_root.returncode == 2 and "nowhere" in wrong_root.stderr
    no_model = run(
        "body_model.source=files",
        f"body_model.asset_dir={tmp_path / 'no_model'}",
        *base,
        f"preprocess.sources.c.root={sources / 'coco'}",
    )
    assert no_model.returncode == 2 and "no_model" in no_model.stderr
    truncated = tmp_path / "coco_truncated"
    shutil.copytree(sources / "coco", truncated)
    annotations = truncated / "annotations/person_keypoints_train2014.json"
    annotations.write_bytes(annotations.read_bytes()[:-200])
    broken = run(f"body_model.asset_dir={procedural_dir}", *base, f"preprocess.sources.c.root={truncated}")
    assert (
        broken.returncode == 2
        and "person_keypoints_train2014.json" in broken.stderr
        and "not valid JSON" in broken.stderr
    )
    unknown = run(
        f"body_model.asset_dir={procedural_dir}",
        *base,
        f"preprocess.sources.c.root={sources / 'coco'}",
        "preprocess.sources.c.options.bogus=1",
    )
    assert unknown.returncode == 2 and "bogus" in unknown.stderr and "eft" in unknown.stderr
    for result in (wrong_root, no_model, broken, unknown):
        assert "Ray instance" not in result.stderr + result.stdout  # failed before Ray started
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.tar"))


def test_small_jobs_start_fewer_builders_than_cpus_and_an_explicit_count_wins():
    from pipelines.config.preprocess import PreprocessConfig
    from pipelines.preprocess.job import builder_count

    def items(*sizes: int) -> list[dict]:
        return [{"size": size} for size in sizes]

    auto = PreprocessConfig(records_per_worker=1000)
    assert builder_count(auto, 8, items(40, 40, 40)) == 1  # 120 records: one builder's start-up is worth it
    assert builder_count(auto, 8, items(1000, 1000, 500)) == 3
    assert builder_count(auto, 2, items(*[1000] * 10)) == 2  # never more than the CPUs
    assert builder_count(auto, 8, items(5000)) == 1  # nor than the shards
    assert builder_count(PreprocessConfig(num_workers=2), 8, items(40, 40, 40)) == 2
    assert builder_count(PreprocessConfig(num_workers=4), 8, items(40, 40)) == 2
    with pytest.raises(ValueError, match="records_per_worker must be >= 1"):
        PreprocessConfig(records_per_worker=0)
