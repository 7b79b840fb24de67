"""Every ``pare`` subcommand against a catalogue of bad inputs: exit code 2, one line on stderr, no traceback.

Most cases call :func:`pipelines.cli.main` in this process (fast); a few run the installed ``pare``
console script to prove the real path. Each case runs in its own empty working folder, with its
outputs pointed there, and that folder must be as it was afterwards: nothing half-written.
Unreachable servers are 127.0.0.1 on a closed port only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]
PARE = Path(sys.executable).with_name("pare")


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DEAD = f"http://127.0.0.1:{_closed_port()}"


@pytest.fixture(scope="module")
def bad(procedural_dir, tmp_path_factory) -> Path:
    """A folder of bad (and a few good) inputs, made once."""
    from pare_model.checkpoint import build_model_from_assets, save_model_checkpoint
    from pare_model.model_config import ModelConfig

    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "empty").write_bytes(b"")
    (root / "binary").write_bytes(bytes(range(256)) * 4)
    (root / "latin1.yaml").write_bytes("train:\n  run_name: caf\xe9\n".encode("latin-1"))
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "folder").mkdir()
    (root / "empty_folder").mkdir()
    config = ModelConfig(backbone="debug")
    torch.manual_seed(0)
    network = build_model_from_assets(config, procedural_dir).network_state_dict()
    good = save_model_checkpoint(root / "good.pt", network, config)
    (root / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    save_model_checkpoint(root / "other_backbone.pt", network, ModelConfig(backbone="resnet_small"))
    payload = torch.load(good, weights_only=True)
    payload["model_config"]["backbone"] = "vit_huge"
    torch.save(payload, root / "unknown_backbone.pt")
    nan = {k: v * float("nan") if v.is_floating_point() else v for k, v in network.items()}
    save_model_checkpoint(root / "nan.pt", nan, config)
    torch.save({"weights": torch.zeros(3)}, root / "foreign.pt")
    images = root / "images"
    images.mkdir()
    Image.fromarray(np.full((64, 48, 3), 128, np.uint8)).save(images / "person.png")
    (root / "nan_boxes.json").write_text('{"person.png": [[NaN, 0, 10, 10]]}')
    (root / "deep_boxes.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "latin1_boxes.json").write_bytes('{"caf\xe9.png": []}'.encode("latin-1"))
    (root / "inf_boxes.json").write_text('{"person.png": [[0, 0, 1e400, 10]]}')
    (root / "bool_boxes.json").write_text('{"person.png": [[true, 0, 10, 10]]}')
    broken_model = root / "broken_body_model"
    broken_model.mkdir()
    for path in procedural_dir.iterdir():
        (broken_model / path.name).write_bytes(path.read_bytes())
    pkl = broken_model / "SMPL_NEUTRAL.pkl"
    pkl.write_bytes(pkl.read_bytes()[:1000])
    for name, payload in _hostile_pickles().items():  # body-model folders whose SMPL_NEUTRAL.pkl is hostile
        folder = root / name
        folder.mkdir()
        for path in procedural_dir.iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
        (folder / "SMPL_NEUTRAL.pkl").write_bytes(payload)
    not_shards = root / "not_shards"
    not_shards.mkdir()
    (not_shards / "manifest.json").write_text("{not json")
    (root / "garbage.db").write_bytes(b"this is not a database" * 10)
    with contextlib.closing(sqlite3.connect(root / "notes.db")) as notes, notes:
        notes.execute("CREATE TABLE notes (text TEXT)")  # an SQLite database, not an MLflow store
    _bad_body_models(root, procedural_dir)
    _bad_shard_folders(root)
    _hostile_3dpw_source(root / "pw3d_evil")
    return root


def _body_model_copy(root: Path, procedural_dir: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    for path in procedural_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _bad_body_models(root: Path, procedural_dir: Path) -> None:
    """Body-model folders whose kinematic tree names parent 99, or a cycle (joint 1 under joint 4, under joint 1),
    and one whose J_regressor_extra.npy is not a .npy file."""
    import pickle

    from pare_model.safe_pickle import load_pickle

    for name, joint, parent in (("parent99_body_model", 5, 99), ("cycle_body_model", 1, 4)):
        folder = _body_model_copy(root, procedural_dir, name)
        model = load_pickle(folder / "SMPL_NEUTRAL.pkl")
        model["kintree_table"] = model["kintree_table"].copy()
        model["kintree_table"][0, joint] = parent
        (folder / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps(model, protocol=2))
    folder = _body_model_copy(root, procedural_dir, "garbage_npy_body_model")
    (folder / "J_regressor_extra.npy").write_bytes(b"garbage, not an array\n" * 40)


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _shard_folder(folder: Path, shard: bytes, edit=None) -> None:
    """A shard folder holding ``shard`` as its one shard, with a manifest whose sizes and checksums match it."""
    import hashlib

    from pipelines.data.manifest import FitQualityTally, build_manifest, manifest_text

    folder.mkdir(parents=True)
    (folder / "shard-000000.tar").write_bytes(shard)
    (folder / "rejects.jsonl").write_text("")
    entry = {"name": "shard-000000.tar", "samples": 1, "bytes": len(shard), "sha256": hashlib.sha256(shard).hexdigest()}
    manifest = build_manifest(
        dataset="3dpw",
        split="test",
        reader="3dpw",
        source={},
        config_hash="",
        samples_per_shard=1,
        sample_format={"crop_resolution": 8},
        shards=[entry | {"first_key": "a", "last_key": "a"}],
        inputs=1,
        rejects_by_reason={},
        fit_quality=FitQualityTally().summary(),
    )
    if edit:
        edit(manifest)
    (folder / "manifest.json").write_text(manifest_text(manifest))


def _bad_shard_folders(root: Path) -> None:
    """Shard folders whose manifests match their shards: a shard whose first member is written twice (webdataset's
    ValueError), one whose first header says its member is 1 GB long (tarfile's ReadError); and manifests without
    totals or sample_format, or whose 'shards' is a string."""
    members = [("a.jpg", b"\xff\xd8 not really"), ("a.labels.png", b"png"), ("a.json", b"{}")]
    _shard_folder(root / "shards_twice", _tar(members[:1] + members))
    shard = bytearray(_tar(members))
    shard[124:136] = b"%011o\0" % (1 << 30)  # the size field, then the header's checksum recomputed
    shard[148:156] = b" " * 8
    shard[148:156] = b"%06o\0 " % sum(shard[:512])
    _shard_folder(root / "shards_1gb_header", bytes(shard))
    _shard_folder(root / "shards_no_totals", _tar(members), lambda manifest: manifest.pop("totals"))
    _shard_folder(root / "shards_no_format", _tar(members), lambda manifest: manifest.pop("sample_format"))
    _shard_folder(root / "shards_string", _tar(members), lambda manifest: manifest.update(shards="shard-000000.tar"))


def _hostile_3dpw_source(root: Path) -> None:
    """A 3DPW layout whose sequence file is a pickle that asks to run code."""
    import os
    import pickle

    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    (root / "sequenceFiles" / "test").mkdir(parents=True)
    (root / "imageFiles").mkdir()
    (root / "sequenceFiles" / "test" / "outdoors_evil_00.pkl").write_bytes(pickle.dumps({"poses": Hostile()}, 2))


def _hostile_pickles() -> dict[str, bytes]:
    """Plain-list pickles the restricted unpickler accepts by type: a billion-laughs bomb (a list holding the
    previous one twice, 60 deep: about 450 bytes, 2**60 leaves as a tree) and a list that holds itself."""
    import pickle

    bomb: list = []
    for _ in range(60):
        bomb = [bomb, bomb]
    itself: list = []
    itself.append(itself)
    return {"bomb_body_model": pickle.dumps(bomb, protocol=2), "self_body_model": pickle.dumps(itself, protocol=2)}


def _cases(procedural_dir: Path) -> list[tuple[str, list[str], str]]:
    """(id, argv with {bad} and {out} placeholders, a phrase the one line must hold)."""
    body = f"body_model.asset_dir={procedural_dir}"
    train = ["train", "configs/train_synthetic.yaml", body, "train.storage_path={out}/train"]
    return [
        # argparse itself
        ("unknown-command", ["frobnicate"], "invalid choice"),
        ("missing-required-flags", ["predict"], "required"),
        ("not-an-int", ["synth", "--layout", "3dpw", "--out", "{out}/s", "--num", "many"], "invalid int value"),
        # config
        ("config-missing-file", ["config", "show", "{bad}/nothing.yaml"], "does not exist"),
        ("config-is-folder", ["config", "show", "{bad}/folder"], "is a folder"),
        ("config-not-utf8", ["config", "show", "{bad}/latin1.yaml"], "UTF-8"),
        ("config-binary", ["config", "show", "{bad}/binary"], "not UTF-8"),
        ("config-not-a-mapping", ["config", "show", "{bad}/list.yaml"], "mapping"),
        ("config-unknown-key", ["config", "show", "train.max_stepz=3"], "unknown config key"),
        ("config-bad-value", ["config", "show", "train.max_steps=lots"], "train.max_steps"),
        # body-model
        ("body-model-missing", ["body-model", "info", "{bad}/nothing"], "does not exist"),
        ("body-model-is-file", ["body-model", "info", "{bad}/empty"], "{bad}/empty"),
        ("body-model-empty-folder", ["body-model", "info", "{bad}/empty_folder"], "SMPL_NEUTRAL"),
        ("body-model-truncated-pickle", ["body-model", "info", "{bad}/broken_body_model"], "SMPL_NEUTRAL.pkl"),
        ("body-model-billion-laughs-pickle", ["body-model", "info", "{bad}/bomb_body_model"], "SMPL_NEUTRAL.pkl"),
        ("body-model-self-referencing-pickle", ["body-model", "info", "{bad}/self_body_model"], "SMPL_NEUTRAL.pkl"),
        ("body-model-parent-99", ["body-model", "info", "{bad}/parent99_body_model"], "the parent 99"),
        ("body-model-garbage-npy", ["body-model", "info", "{bad}/garbage_npy_body_model"], "not a .npy file"),
        ("body-model-synth-out-is-file", ["body-model", "synth", "--out", "{bad}/empty"], "{bad}/empty"),
        ("body-model-negative-seed", ["body-model", "synth", "--out", "{out}/bm", "--seed", "-1"], "--seed"),
        # checkpoint
        ("checkpoint-missing", ["checkpoint", "info", "{bad}/nothing.pt"], "does not exist"),
        ("checkpoint-empty", ["checkpoint", "info", "{bad}/empty"], "not a readable PyTorch checkpoint"),
        ("checkpoint-truncated", ["checkpoint", "info", "{bad}/truncated.pt"], "not a readable PyTorch checkpoint"),
        ("checkpoint-is-folder", ["checkpoint", "info", "{bad}/folder"], "is a folder, not a checkpoint file"),
        ("checkpoint-binary", ["checkpoint", "info", "{bad}/binary"], "not a readable PyTorch checkpoint"),
        ("checkpoint-other-backbone", ["checkpoint", "info", "{bad}/other_backbone.pt"], "do not fit"),
        ("checkpoint-unknown-backbone", ["checkpoint", "info", "{bad}/unknown_backbone.pt"], "valid backbones"),
        ("checkpoint-nan-weights", ["checkpoint", "info", "{bad}/nan.pt"], "NaN"),
        ("checkpoint-foreign", ["checkpoint", "info", "{bad}/foreign.pt"], "not a pare-pipeline model checkpoint"),
        (
            "checkpoint-import-missing",
            ["checkpoint", "import", "--official", "{bad}/nothing.ckpt", "--out", "{out}/x.pt", body],
            "does not exist",
        ),
        (
            "checkpoint-import-out-exists",
            ["checkpoint", "import", "--official", "{bad}/good.pt", "--out", "{bad}/empty"],
            "--force",
        ),
        # export
        (
            "export-checkpoint-missing",
            ["export", "--checkpoint", "{bad}/nothing.pt", "--format", "onnx", "--out", "{out}/x.onnx"],
            "does not exist",
        ),
        (
            "export-nan-checkpoint",
            ["export", "--checkpoint", "{bad}/nan.pt", "--format", "torchscript", "--out", "{out}/x.ts"],
            "NaN",
        ),
        (
            "export-body-model-broken",
            ["export", "--checkpoint", "{bad}/good.pt", "--format", "onnx", "--out", "{out}/x.onnx"]
            + ["--with-body-model", "--body-model-dir", "{bad}/broken_body_model"],
            "SMPL_NEUTRAL.pkl",
        ),
        (
            "export-body-model-cycle",
            ["export", "--checkpoint", "{bad}/good.pt", "--format", "onnx", "--out", "{out}/x.onnx"]
            + ["--with-body-model", "--body-model-dir", "{bad}/cycle_body_model"],
            "gives joint 1 the parent 4",
        ),
        (
            "export-check-crops-huge",
            ["export", "--checkpoint", "{bad}/good.pt", "--format", "onnx", "--out", "{out}/x.onnx"]
            + ["--check-crops", "100000"],
            "--check-crops must be from 1 to 64",
        ),
        (
            "export-out-exists",
            ["export", "--checkpoint", "{bad}/good.pt", "--format", "onnx", "--out", "{bad}/empty"],
            "pass --force",
        ),
        # predict
        *[
            (
                f"predict-{name}",
                ["predict", "--checkpoint", checkpoint, "--images", images, "--out", "{out}/predict", *extra, body],
                phrase,
            )
            for name, checkpoint, images, extra, phrase in [
                ("nan-weights", "{bad}/nan.pt", "{bad}/images", [], "NaN"),
                ("other-backbone", "{bad}/other_backbone.pt", "{bad}/images", [], "do not fit"),
                ("truncated-checkpoint", "{bad}/truncated.pt", "{bad}/images", [], "not a readable"),
                ("images-missing", "{bad}/good.pt", "{bad}/nothing", [], "not a folder of images"),
                ("images-is-file", "{bad}/good.pt", "{bad}/empty", [], "not a folder of images"),
                ("images-empty", "{bad}/good.pt", "{bad}/empty_folder", [], "no images"),
                ("boxes-missing", "{bad}/good.pt", "{bad}/images", ["--boxes", "{bad}/nothing.json"], "does not exist"),
                ("boxes-folder", "{bad}/good.pt", "{bad}/images", ["--boxes", "{bad}/folder"], "folder"),
                ("boxes-empty", "{bad}/good.pt", "{bad}/images", ["--boxes", "{bad}/empty"], "not valid JSON"),
                ("boxes-not-utf8", "{bad}/good.pt", "{bad}/images", ["--boxes", "{bad}/latin1_boxes.json"], "UTF-8"),
                ("boxes-nan", "{bad}/good.pt", "{bad}/images", ["--boxes", "{bad}/nan_boxes.json"], "NaN"),
                ("boxes-infinite", "{bad}/good.pt", "{bad}/images", ["--boxes", "{bad}/inf_boxes.json"], "finite"),
                ("boxes-bool", "{bad}/good.pt", "{bad}/images", ["--boxes", "{bad}/bool_boxes.json"], "not a box"),
                ("boxes-nested", "{bad}/good.pt", "{bad}/images", ["--boxes", "{bad}/deep_boxes.json"], "nested"),
                ("out-is-file", "{bad}/good.pt", "{bad}/images", ["--out", "{bad}/empty"], "is a file"),
                ("checkpoint-folder", "{bad}/folder", "{bad}/images", [], "is a folder"),
            ]
        ],
        (
            "predict-body-model-cycle",
            ["predict", "--checkpoint", "{bad}/good.pt", "--images", "{bad}/images", "--out", "{out}/predict"]
            + ["body_model.asset_dir={bad}/cycle_body_model"],
            "gives joint 1 the parent 4",
        ),
        # synth, preprocess, shards, occluders
        ("synth-unknown-layout", ["synth", "--layout", "nope", "--out", "{out}/s", "--num", "1"], "nope"),
        ("synth-zero-samples", ["synth", "--layout", "3dpw", "--out", "{out}/s", "--num", "0", body], "--num"),
        ("preprocess-missing-config", ["preprocess", "{bad}/nothing.yaml"], "does not exist"),
        (
            "preprocess-3dpw-pickle-naming-code",
            ["preprocess", "preprocess.output={out}", "preprocess.sources.pw3d.reader=3dpw"]
            + ["preprocess.sources.pw3d.root={bad}/pw3d_evil", "preprocess.sources.pw3d.split=test", body],
            "download the file again from the 3DPW site",
        ),
        ("shards-validate-missing", ["shards", "validate", "{bad}/nothing"], "{bad}/nothing"),
        ("shards-stats-no-manifest", ["shards", "stats", "{bad}/empty_folder", "--out", "{out}/st"], "manifest"),
        ("shards-bad-manifest", ["shards", "validate", "{bad}/not_shards"], "not valid JSON"),
        ("shards-member-twice", ["shards", "stats", "{bad}/shards_twice", "--out", "{out}/st"], "duplicate file name"),
        (  # named by the tar reader here, or earlier by a check of the members' declared sizes
            "shards-1gb-header",
            ["shards", "stats", "{bad}/shards_1gb_header", "--out", "{out}/st"],
            "{bad}/shards_1gb_header/shard-000000.tar",
        ),
        ("shards-no-totals", ["shards", "validate", "{bad}/shards_no_totals"], "'totals' is missing"),
        ("shards-no-sample-format", ["shards", "validate", "{bad}/shards_no_format"], "'sample_format' is missing"),
        ("shards-manifest-shards-string", ["shards", "stats", "{bad}/shards_string"], "'shards' is a str"),
        (
            "shards-stats-negative-samples",
            ["shards", "stats", "{bad}/shards_twice", "--samples", "-1", "--out", "{out}/st"],
            "argument --samples: must be from 0 to 256, got -1",
        ),
        (
            "shards-stats-negative-seed",
            ["shards", "stats", "{bad}/shards_twice", "--seed", "-3", "--out", "{out}/st"],
            "argument --seed: must be at least 0, got -3",
        ),
        (
            "occluders-voc-missing",
            ["occluders", "build", "--voc", "{bad}/nothing", "--out", "{out}/bank.npz"],
            "{bad}/nothing",
        ),
        (
            "occluders-min-pixels-zero",
            ["occluders", "build", "--voc", "{bad}/nothing", "--out", "{out}/bank.npz", "--min-pixels", "0"],
            "argument --min-pixels: must be at least 1, got 0",
        ),
        # train: each fails on the driver before Ray starts
        ("train-tracking-unreachable", [*train, f"tracking.tracking_uri={DEAD}"], "cannot be reached"),
        ("train-init-checkpoint-missing", [*train, "train.init_checkpoint={bad}/nothing.pt"], "does not exist"),
        (
            "train-init-checkpoint-other-model",
            [*train, "train.init_checkpoint={bad}/good.pt", "model.backbone=resnet_small"],
            "configured model",
        ),
        ("train-init-checkpoint-nan", [*train, "train.init_checkpoint={bad}/nan.pt", "model.backbone=debug"], "NaN"),
        (
            "train-occluder-bank-missing",
            [*train, "loader.occlusion.enabled=true", "loader.occlusion.bank={bad}/nothing.npz"],
            "loader.occlusion.bank: occluder bank {bad}/nothing.npz does not exist; make it with `pare occluders build",
        ),
        ("train-shards-not-shards", [*train, "data.datasets.coco.shards=[{bad}/not_shards]"], "not valid JSON"),
        ("train-manifest-shards-string", [*train, "data.datasets.coco.shards=[{bad}/shards_string]"], "is a str"),
        # evaluate, occlusion-analysis, attention
        ("evaluate-nothing", ["evaluate", "--shards", "{bad}/not_shards", "--out", "{out}/ev"], "nothing to evaluate"),
        (
            "evaluate-overrides-after-shards",
            ["evaluate", "--shards", "{bad}/not_shards", "evaluate.nonsense=1", "--out", "{out}/ev"],
            "unknown config key 'evaluate.nonsense'",
        ),
        (
            "evaluate-no-sample-format",
            [
                "evaluate",
                "--shards",
                "{bad}/shards_no_format",
                "--out",
                "{out}/ev",
                "evaluate.predictor=mean_pose",
                body,
            ],
            "'sample_format' is missing",
        ),
        (
            "evaluate-checkpoint-folder",
            ["evaluate", "--checkpoint", "{bad}/folder", "--out", "{out}/ev", body],
            "is a folder, not a checkpoint file",
        ),
        ("evaluate-nan-checkpoint", ["evaluate", "--checkpoint", "{bad}/nan.pt", "--out", "{out}/ev", body], "NaN"),
        (
            "evaluate-other-backbone",
            ["evaluate", "--checkpoint", "{bad}/other_backbone.pt", "--out", "{out}/ev", body],
            "do not fit",
        ),
        (
            "evaluate-out-is-file",
            ["evaluate", "--checkpoint", "{bad}/good.pt", "--out", "{bad}/empty", body],
            "is a file",
        ),
        (
            "evaluate-run-unreachable",
            ["evaluate", "--run", "0123", "--out", "{out}/ev", f"tracking.tracking_uri={DEAD}"],
            "cannot be reached",
        ),
        (
            "evaluate-log-unreachable",
            [
                "evaluate",
                "--checkpoint",
                "{bad}/good.pt",
                "--shards",
                "{bad}/not_shards",
                "--out",
                "{out}/ev",
                body,
                f"tracking.tracking_uri={DEAD}",
            ],
            "cannot be reached",
        ),
        (
            "occlusion-checkpoint-missing",
            ["occlusion-analysis", "--checkpoint", "{bad}/nothing.pt", "--out", "{out}/oc"],
            "does not exist",
        ),
        (
            "occlusion-truncated",
            ["occlusion-analysis", "--checkpoint", "{bad}/truncated.pt", "--out", "{out}/oc"],
            "not a readable",
        ),
        (
            "attention-run-store-missing",
            ["attention", "--run", "0123", "--out", "{out}/at", "tracking.tracking_uri=sqlite:///{out}/missing/x.db"],
            "does not exist",
        ),
        # compare, study, quickstart
        ("compare-unreachable", ["compare", "--experiment", "pare", "--tracking-uri", DEAD], "cannot be reached"),
        (
            "compare-store-missing",
            ["compare", "--experiment", "pare", "--tracking-uri", "sqlite:///{out}/missing/folder/x.db"],
            "{out}/missing/folder/x.db",
        ),
        (
            "compare-store-garbage",
            ["compare", "--experiment", "pare", "--tracking-uri", "sqlite:///{bad}/garbage.db"],
            "cannot read",
        ),
        (
            "compare-store-not-mlflow",
            ["compare", "--experiment", "pare", "--tracking-uri", "sqlite:///{bad}/notes.db"],
            "not an MLflow store",
        ),
        (
            "compare-store-folder",
            ["compare", "--experiment", "pare", "--tracking-uri", "sqlite:///{bad}/folder"],
            "folder",
        ),
        (
            "compare-postgres-unreachable",
            ["compare", "--experiment", "pare", "--tracking-uri", f"postgresql://u:p@127.0.0.1:{_closed_port()}/db"],
            "cannot be reached",
        ),
        ("study-missing-config", ["study", "{bad}/nothing.yaml"], "does not exist"),
        (
            "study-tracking-unreachable",
            [
                "study",
                "configs/study_occlusion.yaml",
                body,
                "study.output_dir={out}/st",
                f"tracking.tracking_uri={DEAD}",
            ],
            "cannot be reached",
        ),
        (
            "quickstart-tracking-unreachable",
            [
                "quickstart",
                "configs/quickstart.yaml",
                body,
                "quickstart.output_dir={out}/q",
                "quickstart.panel_size=128",
                "train.storage_path={out}/train",
                f"tracking.tracking_uri={DEAD}",
            ],
            "cannot be reached",
        ),
    ]


def _fill(argv: list[str], bad: Path, out: Path) -> list[str]:
    return [a.replace("{bad}", str(bad)).replace("{out}", str(out)) for a in argv]


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _expected_leftovers(case: str) -> set[str]:
    """Files a failing case may leave on purpose: the quickstart draws the body model and the people first."""
    return {"q", "q/body_model_preview.png", "q/synthetic_people.png"} if case.startswith("quickstart") else set()


CASE_IDS = [case[0] for case in _cases(Path("."))]
TQDM_BAR = re.compile(r"%\||\[\d+:\d+(:\d+)?, [^\]]*/s\]\s*$")
"""A tqdm progress bar: ``12%|`` with a total, ``[00:00, ?record/s]`` at the end without one."""


@pytest.mark.parametrize("case", CASE_IDS)
def test_a_bad_input_is_one_line_and_exit_2(case, bad, procedural_dir, tmp_path, monkeypatch, capsys):
    _, argv, phrase = next(c for c in _cases(procedural_dir) if c[0] == case)
    out = tmp_path / "work"
    out.mkdir()
    monkeypatch.chdir(ROOT)  # the shipped configs are named relative to the checkout
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before_bad = _tree(bad)
    code = main(_fill(argv, bad, out))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not TQDM_BAR.search(line)]  # bars are no messages
    assert code == 2, err[-3000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert lines[0].startswith("pare"), lines[0]
    assert _fill([phrase], bad, out)[0] in lines[0], lines[0]
    assert "allow_pickle" not in lines[0], "numpy's advice to load pickles is never the fix"
    assert _tree(out) <= _expected_leftovers(case), f"left behind: {_tree(out)}"
    assert _tree(bad) == before_bad, "an input folder was written to"


def test_the_catalogue_is_large_and_covers_every_command(procedural_dir):
    from pipelines.cli import COMMANDS, build_parser

    cases = _cases(procedural_dir)
    assert len(cases) >= 40
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert len(commands) == len(COMMANDS) + 2  # evaluate.py registers three commands
    assert commands <= {argv[0] for _, argv, _ in cases}


def test_verbose_adds_the_traceback(bad, capsys):
    assert main(["--verbose", "checkpoint", "info", str(bad / "nan.pt")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("pare checkpoint: error:")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([str(PARE), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["compare", "--experiment", "pare", "--tracking-uri", DEAD], "cannot be reached"),
        (["compare", "--experiment", "pare", "--tracking-uri", "sqlite:///missing/folder/x.db"], "does not exist"),
        (["checkpoint", "info", "{bad}/other_backbone.pt"], "do not fit"),
        (["config", "show", "{bad}/latin1.yaml"], "UTF-8"),
    ],
)
def test_the_installed_console_script_keeps_the_guarantee(args, phrase, bad, tmp_path):
    result = _run(*_fill(args, bad, tmp_path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and phrase in lines[0], result.stderr[-3000:]
    assert not any(tmp_path.iterdir()), "nothing may be created (MLflow used to create the sqlite folder)"


def test_predict_writes_every_input_to_the_output_or_the_rejects(bad, procedural_dir, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((64, 48, 3), 90, np.uint8)).save(images / "a.jpg")
    Image.fromarray(np.full((64, 48, 3), 90, np.uint8)).save(images / "a.png")  # same stem as a.jpg: rejected
    (images / "b.png").write_bytes(b"not a png")
    (images / "dir.png").mkdir()
    boxes = {"a.jpg": [[0, 0, 40, 60], [5000, 5000, 10, 10]], "a.png": [[0, 0, 9, 9]], "gone.png": [[0, 0, 4, 4]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    argv = [
        "predict",
        "--checkpoint",
        str(bad / "good.pt"),
        "--images",
        str(images),
        "--boxes",
        str(tmp_path / "boxes.json"),
        "--out",
        str(out),
        f"body_model.asset_dir={procedural_dir}",
        "predict.overlays=false",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    rejects = {(r["image"], r.get("person")): r["reason"] for r in map(json.loads, open(out / "rejects.jsonl"))}
    assert [(p["image"], p["person"]) for p in predictions] == [("a.jpg", 0)]
    assert set(rejects) == {
        ("a.png", None),
        ("a.png", 0),
        ("b.png", None),
        ("dir.png", None),
        ("a.jpg", 1),
        ("gone.png", 0),
    }
    assert "inside" in rejects[("a.jpg", 1)] and "no such image" in rejects[("gone.png", 0)]
    assert "same name stem" in rejects[("a.png", None)] and "was rejected" in rejects[("a.png", 0)]
    assert "unreadable" in rejects[("b.png", None)] and "regular file" in rejects[("dir.png", None)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "the staging folder is gone"


def test_a_user_error_raised_while_an_actor_starts_reaches_the_user_as_its_message(ray_cluster, bad):
    """Ray reports an exception from an actor's __init__ as ActorDiedError, whose cause is only text."""
    from pare_model.errors import AssetError
    from pipelines.evaluation.measure import Unit
    from pipelines.evaluation.predictors import ContextSpec
    from pipelines.evaluation.workers import run_units
    from pipelines.user_errors import user_error_of

    spec = ContextSpec(asset_dir=str(bad / "broken_body_model"), predictor="mean_pose")
    with pytest.raises(Exception) as caught:
        list(run_units(spec, lambda context, unit: None, [(Unit(("unused",)), 1)], 1, 1, 0.0, "actor"))
    assert isinstance(getattr(caught.value, "cause", None), AssetError), type(caught.value)
    message = user_error_of(caught.value)
    assert message and "SMPL_NEUTRAL.pkl" in message and "\n" not in message


def test_a_user_error_in_a_train_worker_stops_the_run_instead_of_being_retried(ray_cluster, bad, tmp_path, monkeypatch):
    """Three attempts of a deterministic failure used to cost minutes before the message."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig

    from pipelines.config.loader import load_config, to_yaml
    from pipelines.training.job import PREEMPTION_WATCHER_ENV, _torch_trainer_class, train_loop_stopping_on_user_errors
    from pipelines.training.loop_config import LoopConfig
    from pipelines.training.status import read_status

    config = load_config(str(ROOT / "configs" / "train_synthetic.yaml"), ["model.backbone=debug"])
    status = tmp_path / "run"
    loop_config = LoopConfig(
        config_yaml=to_yaml(config),
        asset_dir=str(bad / "broken_body_model"),
        run_id="",
        tracking_uri="",
        status_uri=str(status),
        shards={},
    )
    monkeypatch.setenv(
        PREEMPTION_WATCHER_ENV, "0"
    )  # as `pare train` runs it: no preemption watcher, no dataset manager
    trainer = _torch_trainer_class()(
        train_loop_stopping_on_user_errors,
        train_loop_config=dataclasses.asdict(loop_config),
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(
            name="user-error", storage_path=str(tmp_path / "storage"), failure_config=FailureConfig(max_failures=2)
        ),
    )
    trainer.fit()  # returns: the worker stopped on purpose rather than failing three times
    final = read_status(str(status))
    assert final["state"] == "stopped" and final["reason"] == "user_error"
    assert "SMPL_NEUTRAL.pkl" in final["message"]


def test_a_config_file_and_overrides_after_shards_are_settings_not_folders():
    """``--shards`` takes every word up to the next option (argparse's nargs='+'): they used to become shard
    folders, so that ``pare evaluate --shards DIR evaluate.batch_size=3`` evaluated a folder named after the
    override."""
    from pipelines.cli import build_parser
    from pipelines.commands.evaluate import _config

    quickstart = str(ROOT / "configs" / "quickstart.yaml")
    argv = ["evaluate", "--shards", "a", "evaluate.batch_size=3", "s3://b/date=1", quickstart]
    config = _config(build_parser().parse_args([*argv, "--out", "o", "evaluate.max_samples=5"]))
    assert config.evaluate.shards == ["a", "s3://b/date=1"]
    assert (config.evaluate.batch_size, config.evaluate.max_samples) == (3, 5)
    assert config.quickstart.train_samples == 960  # from configs/quickstart.yaml
