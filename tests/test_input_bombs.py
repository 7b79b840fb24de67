"""Small inputs that declare huge allocations or never end: refused before anything is allocated or read.

Each case runs ``pare`` in a subprocess whose address space is capped a few GiB above what its
libraries map, with a timeout, so a regression fails the test instead of taking the machine: the
bombs declare 4 GB (more than the headroom), and the hangs (shared references walked as a tree,
a FIFO) run into the timeout. The limits are in :mod:`pare_model.input_limits` and
docs/security.md.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.input_bombs import (
    BOMB_BYTES,
    billion_laughs,
    npy_bomb,
    npy_member,
    png_declaring,
    sparse_member,
    torch_record_bomb,
    with_member_appended,
    write_zip,
    yaml_alias_bomb,
)

ROOT = Path(__file__).resolve().parents[1]
HEADROOM = 3 << 30
"""Address space a capped command may map beyond what it holds once its libraries are imported."""

_CAPPED = """
import contextlib, io, json, resource, sys, traceback
import cv2, numpy, torch  # the large libraries are mapped before the cap is measured
from pipelines.cli import main

size = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[2]), resource.RLIM_INFINITY))
results = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            code = main(argv)
        except BaseException:  # a MemoryError of an unbounded reader, say: recorded, and the next command runs
            traceback.print_exc()
            code = None
    results.append({"code": code, "stderr": err.getvalue()})
print(json.dumps(results))
"""


def capped_pare(*commands: list[str], cwd: Path, timeout: int = 300) -> list[dict]:
    """Run each ``pare`` command line in one subprocess whose address space is capped at :data:`HEADROOM` above its
    libraries; per command, its exit code and stderr."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2", "NO_ALBUMENTATIONS_UPDATE": "1"}
    command = [sys.executable, "-c", _CAPPED, json.dumps(list(commands)), str(HEADROOM)]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_refused(result: dict, *phrases: str) -> str:
    """Exit 2 with one line that holds each phrase; the line."""
    lines = [line for line in result["stderr"].splitlines() if line.strip() and "%|" not in line]  # not tqdm's bars
    assert result["code"] == 2, result["stderr"][-3000:]
    assert len(lines) == 1 and "Traceback" not in result["stderr"], result["stderr"][-3000:]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def checkpoints(procedural_dir, tmp_path_factory) -> Path:
    """Model checkpoints with a billion-laughs list in their metadata, or as their backbone, and a torch file
    whose one record is a 4 GB deflated bomb."""
    import torch

    from pare_model.checkpoint import build_model_from_assets, save_model_checkpoint
    from pare_model.model_config import ModelConfig

    root = tmp_path_factory.mktemp("checkpoints")
    config = ModelConfig(backbone="debug")
    network = build_model_from_assets(config, procedural_dir).network_state_dict()
    save_model_checkpoint(root / "laughs_metadata.pt", network, config, {"laughs": billion_laughs()})
    payload = torch.load(save_model_checkpoint(root / "good.pt", network, config), weights_only=True)
    payload["model_config"]["backbone"] = billion_laughs()
    torch.save(payload, root / "laughs_backbone.pt")
    torch_record_bomb(root / "record.pt")
    assert max(p.stat().st_size for p in root.iterdir()) < 8 << 20
    return root


def test_a_checkpoint_whose_content_repeats_a_list_2_to_the_60_times_is_refused(checkpoints, procedural_dir, tmp_path):
    """In its metadata or as its model_config.backbone: `checkpoint info`, `predict` and `train.init_checkpoint=`
    used to hang, walking the list as a tree."""
    metadata, backbone = str(checkpoints / "laughs_metadata.pt"), str(checkpoints / "laughs_backbone.pt")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((64, 48, 3), 128, np.uint8)).save(images / "person.png")
    body = f"body_model.asset_dir={procedural_dir}"
    train = ["train", str(ROOT / "configs/train_synthetic.yaml"), body, f"train.storage_path={tmp_path / 'train'}"]
    info, predict, init = capped_pare(
        ["checkpoint", "info", metadata],
        ["predict", "--checkpoint", backbone, "--images", str(images), "--out", str(tmp_path / "out"), body],
        [*train, f"train.init_checkpoint={metadata}"],
        cwd=tmp_path,
    )
    assert_refused(info, metadata, "PARE_MAX_OBJECTS")
    assert_refused(predict, backbone, "PARE_MAX_OBJECTS")
    assert_refused(init, metadata, "PARE_MAX_OBJECTS")


def test_a_torch_record_that_deflates_to_4_gb_is_refused_before_it_is_read(checkpoints, tmp_path):
    path = str(checkpoints / "record.pt")
    (result,) = capped_pare(["checkpoint", "info", path], cwd=tmp_path)
    line = assert_refused(result, path, "PARE_MAX_EXPANSION")
    assert "its records declare 4,000,000," in line  # the bomb and the small pickle beside it


def test_a_humandata_array_that_deflates_to_4_gb_is_refused_before_it_is_decompressed(procedural_dir, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    npz = write_zip(
        source / "bomb_train.npz",
        [npy_member("config", np.array("eft")), npy_bomb("keypoints2d", (8, 41_000_000, 3), "<f4")],
    )
    assert npz.stat().st_size < 5 << 20
    args = ["preprocess", "--quiet", f"body_model.asset_dir={procedural_dir}", f"preprocess.output={tmp_path / 'out'}"]
    args += ["preprocess.sources.h.reader=humandata", f"preprocess.sources.h.root={source}"]
    assert_refused(capped_pare(args, cwd=tmp_path)[0], str(npz), "PARE_MAX_EXPANSION")


def test_an_occluder_bank_whose_cut_out_declares_4_gb_is_refused_by_the_train_preflight(procedural_dir, tmp_path):
    bank = write_zip(
        tmp_path / "bank.npz",
        [npy_member("info", np.array('{"count": 1}')), npy_bomb("occluder_00000", (31250, 32000, 4), "|u1")],
    )
    assert bank.stat().st_size < 5 << 20
    args = ["train", str(ROOT / "configs/train_synthetic.yaml"), f"body_model.asset_dir={procedural_dir}"]
    args += [
        f"train.storage_path={tmp_path / 'train'}",
        "loader.occlusion.enabled=true",
        f"loader.occlusion.bank={bank}",
    ]
    assert_refused(capped_pare(args, cwd=tmp_path)[0], str(bank), "PARE_MAX_EXPANSION")


def test_config_bombs_are_refused(tmp_path):
    """A 560-byte YAML alias bomb (9**9 strings) and 41 files each naming the next one twice in _base_ (2**40 reads)."""
    bomb = tmp_path / "aliases.yaml"
    bomb.write_text(yaml_alias_bomb())
    assert bomb.stat().st_size < 600
    for index in range(40):
        (tmp_path / f"fan{index}.yaml").write_text(f"_base_: [fan{index + 1}.yaml, fan{index + 1}.yaml]\n")
    (tmp_path / "fan40.yaml").write_text("train:\n  max_steps: 3\n")
    aliases, fanned = capped_pare(
        ["config", "show", str(bomb)], ["config", "show", str(tmp_path / "fan0.yaml")], cwd=tmp_path
    )
    assert_refused(aliases, str(bomb), "PARE_MAX_OBJECTS")
    assert_refused(fanned, f"'fan40.yaml' in {tmp_path / 'fan39.yaml'}", "already named")


@pytest.fixture
def sparse_shards(tmp_path) -> Path:
    """A folder of two shards of two samples each, as `pare preprocess` lays them out, whose first shard also holds
    a GNU sparse member declaring 4 GB (1.5 KB in the tar), its size and sha256 in the manifest matching."""
    import hashlib

    from pipelines.data.manifest import MANIFEST_FILE, FitQualityTally, build_manifest, manifest_text, shard_name
    from preprocessing.samples.encode import sample_members, tar_bytes

    folder = tmp_path / "3dpw" / "test"
    folder.mkdir(parents=True)
    pixels = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(pixels, format="JPEG")
    shards = []
    for index, keys in enumerate((["a", "b"], ["c", "d"])):
        members = [m for k in keys for m in sample_members(k, pixels.getvalue(), b"", json.dumps({"key": k}).encode())]
        data = tar_bytes(members)
        if index == 0:
            data = with_member_appended(data, sparse_member("zzz.jpg", BOMB_BYTES))
        (folder / shard_name(index)).write_bytes(data)
        shards.append(
            {"name": shard_name(index), "samples": 2, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            | {"first_key": keys[0], "last_key": keys[1]}
        )
    manifest = build_manifest(
        dataset="3dpw", split="test", reader="3dpw", source={}, config_hash="", samples_per_shard=2,
        sample_format={"crop_resolution": 8}, shards=shards, inputs=4, rejects_by_reason={},
        fit_quality=FitQualityTally().summary(),
    )  # fmt: skip
    (folder / MANIFEST_FILE).write_text(manifest_text(manifest))
    with tarfile.open(folder / shard_name(0)) as tar:
        assert tar.getmember("zzz.jpg").size == BOMB_BYTES
    return folder


def test_a_shard_holding_a_sparse_4_gb_member_is_refused(sparse_shards, tmp_path):
    shard = str(sparse_shards / "shard-000000.tar")
    validate, stats = capped_pare(
        ["shards", "validate", str(sparse_shards)], ["shards", "stats", str(sparse_shards), "--out", "st"], cwd=tmp_path
    )
    assert_refused(validate, shard, "sparse")
    assert_refused(stats, shard, "sparse")


_STREAM = """
import json, resource, sys
import torch
from pipelines.data.samples import SKIPPED
from pipelines.data.stream import read_samples

size = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[2]), resource.RLIM_INFINITY))
samples = list(read_samples(iter(json.loads(sys.argv[1]))))
print(json.dumps({"samples": len(samples), "skipped": dict(SKIPPED)}))
"""


def test_the_evaluation_and_training_stream_skips_and_counts_a_shard_with_a_sparse_member(sparse_shards):
    """The loader the evaluation actors and the training workers read shards with."""
    urls = [str(sparse_shards / "shard-000000.tar"), str(sparse_shards / "shard-000001.tar")]
    env = os.environ | {"PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2"}
    command = [sys.executable, "-c", _STREAM, json.dumps(urls), str(HEADROOM)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["samples"] == 2  # the second shard, whole
    assert result["skipped"].get("bad_shard") == 1, result


_READ_IMAGES = """
import json, resource, sys
from preprocessing.record import RecordRejected
from preprocessing.samples.images import decode_image, read_bytes

size = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[2]), resource.RLIM_INFINITY))
results = {}
for path in json.loads(sys.argv[1]):
    try:
        decode_image(read_bytes(path), path)
        results[path] = "decoded"
    except RecordRejected as error:
        results[path] = [error.reason, error.detail]
print(json.dumps(results))
"""


def test_image_paths_that_are_not_regular_files_or_too_large_are_rejected_before_reading(tmp_path):
    """/dev/zero used to be read without end (6 GB in 14 s), a FIFO to block preprocessing forever."""
    good, fifo, zero, folder = tmp_path / "good.png", tmp_path / "fifo.jpg", tmp_path / "zero.jpg", tmp_path / "d.jpg"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(good)
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    folder.mkdir()
    (tmp_path / "large.png").write_bytes(png_declaring(60_000, 60_000))  # 10.8 GB of pixels in 180 bytes
    (tmp_path / "heavy.png").write_bytes(good.read_bytes() + bytes(4000))  # over the limit set below
    paths = ["/dev/zero", str(fifo), str(zero), str(folder), str(tmp_path / "large.png"), str(tmp_path / "heavy.png")]
    env = os.environ | {"PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2", "PARE_MAX_IMAGE_BYTES": "4000"}
    command = [sys.executable, "-c", _READ_IMAGES, json.dumps([*paths, str(good)]), str(HEADROOM)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert results.pop(str(good)) == "decoded"
    assert {path: reason for path, (reason, _) in results.items()} == dict.fromkeys(paths, "unreadable_image")
    assert "not a regular file" in results["/dev/zero"][1] and "not a regular file" in results[str(fifo)][1]
    assert "3600000000 pixels" in results[str(tmp_path / "large.png")][1]
    assert "PARE_MAX_IMAGE_BYTES=4,000" in results[str(tmp_path / "heavy.png")][1]


@pytest.fixture(scope="module")
def hostile_humandata(procedural_dir, tmp_path_factory) -> Path:
    """A synthetic HumanData source of five people whose first four image paths lead to /dev/zero (through ``..``
    and through a link in the image folder), to a FIFO, and to a small PNG declaring 3.6 gigapixels."""
    from preprocessing.readers.npz_arrays import read_npz
    from tests.synth_helpers import generate

    root = tmp_path_factory.mktemp("hostile") / "humandata"
    generate(procedural_dir, root, "humandata", 5, seed=0)
    npz = root / "humandata_train.npz"
    arrays = {key: np.asarray(value) for key, value in read_npz(str(npz)).items()}
    paths = ["../" * 12 + "dev/zero", "images/zero.jpg", "images/fifo.jpg", "images/large.png"]
    arrays["image_path"] = np.asarray(paths + [str(p) for p in arrays["image_path"][4:]])
    np.savez(npz, **arrays)
    (root / "images/zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(root / "images/fifo.jpg")
    (root / "images/large.png").write_bytes(png_declaring(60_000, 60_000))
    return root


@pytest.fixture(scope="module")
def hostile_coco(procedural_dir, tmp_path_factory) -> Path:
    """A synthetic COCO-EFT source of three people whose first image's ``file_name`` climbs to /dev/zero."""
    from tests.synth_helpers import generate

    root = tmp_path_factory.mktemp("hostile") / "coco"
    generate(procedural_dir, root, "coco_eft", 3, seed=1)
    annotations = root / "annotations/person_keypoints_train2014.json"
    coco = json.loads(annotations.read_text())
    first = next(image for image in coco["images"] if image["id"] == coco["annotations"][0]["image_id"])
    first["file_name"] = "../" * 12 + "dev/zero"
    annotations.write_text(json.dumps(coco))
    return root


@pytest.mark.parametrize("layout", ["humandata", "coco_eft"])
def test_image_paths_outside_the_source_root_are_rejected_unless_allowed(layout, request):
    """A HumanData `image_path` or a COCO `file_name` of ../../../dev/zero: planning rejects it (nothing is read);
    preprocess.images_outside_root=true plans it."""
    from pipelines.config.loader import load_config
    from pipelines.preprocess.plan import SourcePlan, build_readers, plan_records

    root = request.getfixturevalue("hostile_humandata" if layout == "humandata" else "hostile_coco")
    overrides = [f"preprocess.sources.h.reader={layout}", f"preprocess.sources.h.root={root}"]
    if layout == "coco_eft":
        overrides += ["preprocess.sources.h.options.images=images/train2014"]
        overrides += ["preprocess.sources.h.options.eft=eft_fits/COCO2014-All-ver01.json"]
    reader = build_readers(load_config(None, overrides).preprocess)["h"]
    for allowed in (False, True):
        plan = SourcePlan("h", reader, "x/train", "", "")
        planned: list[str] = []
        plan_records(
            plan, 100, 1, lambda _, records, into=planned: into.extend(r.image.path for r in records), False, allowed
        )
        rejects = [json.loads(line) for line in plan.rejects.lines()]
        assert len(planned) + len(rejects) == plan.inputs >= 3
        assert (planned.count("/dev/zero"), len(rejects)) == ((1, 0) if allowed else (0, 1))
        if not allowed:
            (reject,) = rejects
            assert (
                reject["reason"] == "image_outside_root" and "preprocess.images_outside_root=true" in reject["detail"]
            )


_BUILD = """
import json, resource, sys
import torch
from preprocessing.bodies import BodyModels
from preprocessing.readers import build_reader, validated
from preprocessing.record import Rejected
from preprocessing.samples import CropConfig, QualityConfig
from preprocessing.samples.build import SampleBuilder

builder = SampleBuilder(BodyModels(sys.argv[2]), CropConfig(), QualityConfig())
records = list(validated(build_reader("humandata", sys.argv[1], "train").records()))  # images outside allowed
size = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[3]), resource.RLIM_INFINITY))
print(json.dumps([r.reason if isinstance(r, Rejected) else "built" for r in builder.build(records)]))
"""


def test_the_sample_builder_rejects_each_hostile_image_and_builds_the_rest(hostile_humandata, procedural_dir):
    """What each `pare preprocess` builder actor runs on a shard's records: every record ends up a sample or a
    reject with its reason, nothing is lost and nothing blocks."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2"}
    command = [sys.executable, "-c", _BUILD, str(hostile_humandata), str(procedural_dir), str(HEADROOM)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["unreadable_image"] * 4 + ["built"]


def test_checkpoints_and_configs_nested_thousands_deep_are_one_line_errors(checkpoints, tmp_path, capsys):
    """Nesting past the depth limit is refused before anything recurses through it (a RecursionError before)."""
    import torch

    from pipelines.cli import main

    deep: list = []
    for _ in range(3000):
        deep = [deep]
    payload = torch.load(checkpoints / "good.pt", weights_only=True)
    payload["metadata"] = {"notes": deep}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # for pickle to write it
    try:
        torch.save(payload, tmp_path / "deep.pt")
    finally:
        sys.setrecursionlimit(limit)
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    for args, phrase in (
        (["checkpoint", "info", str(tmp_path / "deep.pt")], "nested deeper than 100 levels"),
        (["config", "show", str(tmp_path / "deep.yaml")], "nested too deeply"),
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and phrase in err and args[-1] in err, err


def test_each_limit_is_raised_or_lowered_by_its_environment_variable(tmp_path, monkeypatch, capsys):
    """80 MiB of zeros saved with np.savez_compressed (80 KB): over the default expansion limit (100 times the file
    plus 64 MiB), read once PARE_MAX_EXPANSION allows it; a malformed value is a one-line error of any command."""
    from pare_model.input_limits import InputLimitError
    from pipelines.cli import main
    from preprocessing.readers.npz_arrays import read_npz

    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, zeros=np.zeros((10, 1024, 1024)))
    assert path.stat().st_size < 200_000
    with pytest.raises(InputLimitError, match=r"declare 83,886,208 bytes .*PARE_MAX_EXPANSION=100 times"):
        read_npz(str(path))
    monkeypatch.setenv("PARE_MAX_EXPANSION", "2_000")
    assert read_npz(str(path))["zeros"].shape == (10, 1024, 1024)
    monkeypatch.setenv("PARE_MAX_LOAD_BYTES", "1000000")
    with pytest.raises(InputLimitError, match=r"at most PARE_MAX_LOAD_BYTES=1,000,000\)"):
        read_npz(str(path))
    monkeypatch.setenv("PARE_MAX_OBJECTS", "lots")
    assert main(["config", "show"]) == 2
    assert capsys.readouterr().err == "pare config: error: PARE_MAX_OBJECTS='lots' must be a positive whole number\n"
