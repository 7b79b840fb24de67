"""``pare export``: TorchScript and ONNX files that reproduce eager PyTorch, and one clear line for bad inputs.

The command runs in this process (:func:`pipelines.cli.main`), so the files it writes are read back
here with ``torch.jit.load`` and onnxruntime and compared with the eager model built the way every
other command builds it (:func:`pare_model.checkpoint.load_model`), at a batch size other than the
traced one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from pare_model.checkpoint import (
    build_model_from_assets,
    export_official_checkpoint,
    load_model,
    read_network_checkpoint,
    save_model_checkpoint,
)
from pare_model.export import BODY_OUTPUTS, HEAD_OUTPUTS, PART_OUTPUTS, example_crops, output_names
from pare_model.image_input import to_model_input
from pare_model.model_config import ModelConfig
from pipelines.cli import main
from pipelines.export.check import compare, table
from tests.test_checkpoint import TRAINER_EXTRAS, _randomise

IMAGE_SIZE = 64

# TorchScript is deprecated in torch 2.13; reading the exported file back is the point of these tests.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def debug_checkpoint(procedural_dir, tmp_path_factory) -> Path:
    """A tiny PARE model with non-default weights everywhere, in the project's format."""
    config = ModelConfig(backbone="debug", image_size=IMAGE_SIZE)
    torch.manual_seed(0)
    model = _randomise(build_model_from_assets(config, procedural_dir))
    return save_model_checkpoint(tmp_path_factory.mktemp("export") / "debug.pt", model.network_state_dict(), config)


@pytest.fixture(scope="module")
def released_checkpoint(procedural_dir, tmp_path_factory) -> Path:
    """A checkpoint in the released PARE layout (HRNet-W32, Lightning keys, trainer buffers)."""
    torch.manual_seed(1)
    model = _randomise(build_model_from_assets(ModelConfig(backbone="hrnet_w32"), procedural_dir))
    path = export_official_checkpoint(model, tmp_path_factory.mktemp("released") / "pare_checkpoint.ckpt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"].update(TRAINER_EXTRAS)
    torch.save(payload, path)
    return path


def _run_file(path: Path, fmt: str, crops: torch.Tensor) -> tuple[list[str], list[np.ndarray], dict]:
    """Output names, outputs and stored description of an exported file, read without project code."""
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (crops_input,) = session.get_inputs()
        assert crops_input.name == "crops" and crops_input.type == "tensor(uint8)"
        assert crops_input.shape == ["batch", IMAGE_SIZE, IMAGE_SIZE, 3]
        names = [output.name for output in session.get_outputs()]
        description = json.loads(session.get_modelmeta().custom_metadata_map["pare_export"])
        return names, session.run(None, {"crops": crops.numpy()}), description
    extra = {"pare_export.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    description = json.loads(extra["pare_export.json"])
    with torch.no_grad():
        return description["outputs"], [value.numpy() for value in module(crops)], description


@pytest.mark.parametrize("with_body_model", [False, True], ids=["network", "with-body-model"])
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_files_reproduce_the_eager_model(
    fmt, with_body_model, debug_checkpoint, procedural_dir, tmp_path, capsys
):
    out = tmp_path / "sub" / f"pare.{fmt}"
    body = ["--with-body-model", "--body-model-dir", str(procedural_dir)] if with_body_model else []
    code = main(["export", "--checkpoint", str(debug_checkpoint), "--format", fmt, "--out", str(out), *body])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "max rel diff" in printed and "FAILED" not in printed and f"Wrote {out}" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name], "no temporary file left behind"

    crops = example_crops(3, IMAGE_SIZE, seed=7)  # traced at batch 1: another batch size must work too
    names, outputs, description = _run_file(out, fmt, crops)
    assert tuple(names) == HEAD_OUTPUTS + PART_OUTPUTS + (BODY_OUTPUTS if with_body_model else ())
    assert description["model_config"]["backbone"] == "debug"
    assert description["body_model"] == ("procedural stand-in (not SMPL), neutral" if with_body_model else "none")
    with torch.no_grad():
        eager = load_model(debug_checkpoint, procedural_dir)(to_model_input(crops))
    rows = compare(names, outputs, [eager[name].numpy() for name in names])
    assert all(row.ok for row in rows), table(rows)
    if with_body_model:
        assert outputs[names.index("pred_vertices")].shape == (3, 6890, 3)
    if fmt == "onnx":
        onnx.checker.check_model(onnx.load(str(out)))


def test_a_released_checkpoint_exports_with_its_body_model(released_checkpoint, procedural_dir, tmp_path, capsys):
    network = read_network_checkpoint(released_checkpoint)
    imported = load_model(released_checkpoint, procedural_dir).network_state_dict()
    assert network.config.backbone == "hrnet_w32" and sorted(network.network) == sorted(imported)
    assert all(torch.equal(network.network[key], imported[key]) for key in imported), "the importer's weights"
    out = tmp_path / "pare_hrnet.ts"
    argv = ["export", "--checkpoint", str(released_checkpoint), "--format", "torchscript", "--out", str(out)]
    code = main([*argv, "--with-body-model", "--body-model-dir", str(procedural_dir), "--check-crops", "2"])
    printed = capsys.readouterr().out
    assert code == 0 and "All 9 outputs agree" in printed, printed
    assert "pred_vertices        (2, 6890, 3)" in printed


def test_the_hmr_head_exports_without_part_outputs(procedural_dir, tmp_path, capsys):
    config = ModelConfig(backbone="debug", head="hmr", image_size=IMAGE_SIZE)
    torch.manual_seed(2)
    model = _randomise(build_model_from_assets(config, procedural_dir))
    checkpoint = save_model_checkpoint(tmp_path / "hmr.pt", model.network_state_dict(), config)
    out = tmp_path / "hmr.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    assert "All 3 outputs agree" in capsys.readouterr().out
    names, outputs, _ = _run_file(out, "onnx", example_crops(2, IMAGE_SIZE))
    assert tuple(names) == output_names("hmr", False) == HEAD_OUTPUTS and outputs[0].shape == (2, 24, 3, 3)
    assert output_names("hmr", True) == HEAD_OUTPUTS + BODY_OUTPUTS


def test_relative_difference_is_measured_against_the_output_scale():
    eager = [np.array([100.0, -200.0]), np.zeros(3), np.ones(2)]
    exported = [np.array([100.05, -200.0]), np.zeros(3), np.array([1.0, math.nan])]
    rows = compare(["a", "zeros", "nan"], exported, eager)
    assert rows[0].max_abs == pytest.approx(0.05) and rows[0].max_rel == pytest.approx(0.05 / 200)  # 2.5e-4
    assert [row.ok for row in rows] == [False, True, False]
    assert compare(["a"], exported[:1], eager[:1], tolerance=3e-4)[0].ok
    assert not compare(["shape"], [np.zeros(3)], [np.zeros(4)])[0].ok


def test_a_check_that_fails_exits_1_and_writes_nothing(debug_checkpoint, tmp_path, capsys):
    out = tmp_path / "pare.onnx"
    argv = ["export", "--checkpoint", str(debug_checkpoint), "--format", "onnx", "--out", str(out)]
    code = main([*argv, "--tolerance", "1e-12"])  # onnxruntime's kernels differ from PyTorch's by ~1e-6
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED" in captured.out and "was not written" in captured.err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def bad(debug_checkpoint, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-export")
    network = read_network_checkpoint(debug_checkpoint)
    nan = {k: v * math.nan if v.is_floating_point() else v for k, v in network.network.items()}
    save_model_checkpoint(root / "nan.pt", nan, network.config)
    (root / "a_file").write_text("")
    (root / "exists.onnx").write_text("")
    (root / "folder").mkdir()
    return root


BAD_CASES = [
    ("missing-checkpoint", ["--checkpoint", "{bad}/nothing.pt"], "does not exist"),
    ("nan-checkpoint", ["--checkpoint", "{bad}/nan.pt"], "NaN or infinite"),
    ("unknown-format", ["--format", "tflite"], "invalid choice: 'tflite'"),
    ("out-under-a-file", ["--out", "{bad}/a_file/pare.onnx"], "is a file, so no file can be made there"),
    ("out-is-a-folder", ["--out", "{bad}/folder"], "is a folder; name the file to write"),
    ("out-exists", ["--out", "{bad}/exists.onnx"], "pass --force to overwrite it"),
    ("out-unwritable", ["--out", "/proc/pare.onnx"], "cannot write in /proc"),  # even for root
    ("body-model-missing", ["--with-body-model", "--body-model-dir", "{bad}/no_body"], "--body-model-dir: body"),
    ("body-model-dir-alone", ["--body-model-dir", "{bad}/no_body"], "only read with --with-body-model"),
    ("no-check", ["--check-crops", "0"], "--check-crops must be from 1 to 64"),
    ("bad-tolerance", ["--tolerance", "nan"], "--tolerance must be between 0 and 1"),
]


@pytest.mark.parametrize(("case", "change", "phrase"), BAD_CASES, ids=[case[0] for case in BAD_CASES])
def test_bad_inputs_are_one_line_and_exit_2(case, change, phrase, bad, debug_checkpoint, tmp_path, capsys):
    options = {"--checkpoint": str(debug_checkpoint), "--format": "onnx", "--out": str(tmp_path / "pare.onnx")}
    flags = [a.replace("{bad}", str(bad)) for a in change]
    for key in list(options):
        if key in flags:
            options.pop(key)
    argv = ["export", *(x for pair in options.items() for x in pair), *flags]
    before = sorted(bad.rglob("*"))
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("pare") and phrase in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == [] and sorted(bad.rglob("*")) == before, "nothing written"


def test_the_body_model_folder_can_come_from_the_environment(debug_checkpoint, bad, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PARE_BODY_MODEL_DIR", str(bad / "no_body"))
    argv = ["export", "--checkpoint", str(debug_checkpoint), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]
    assert main([*argv, "--with-body-model"]) == 2
    assert "PARE_BODY_MODEL_DIR: body model folder" in capsys.readouterr().err


def test_an_onnx_export_writes_nothing_outside_out(debug_checkpoint, tmp_path):
    """onnxruntime (1.32, Linux) writes a device id and an event database under the user's cache folder and a file in
    the temp folder unless its telemetry is off when it starts; torch makes its compile-cache folder in the temp
    folder when it first builds a model on the meta device. A real `pare` process, with every such place empty."""
    import os
    import subprocess
    import sys

    places = {name: tmp_path / name for name in ("home", "cache", "tmp", "config", "out")}
    for folder in places.values():
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORT_", "TORCHINDUCTOR_", "XDG_"))} | {
        "HOME": str(places["home"]),
        "XDG_CACHE_HOME": str(places["cache"]),
        "XDG_CONFIG_HOME": str(places["config"]),
        "TMPDIR": str(places["tmp"]),
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("pare")), "export", "--checkpoint", str(debug_checkpoint)]
        + ["--format", "onnx", "--out", str(places["out"] / "pare.onnx")],
        capture_output=True,
        text=True,
        env=env,
        cwd=places["out"],
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in places["out"].iterdir()] == ["pare.onnx"]
    for name in ("home", "cache", "tmp", "config"):
        assert not any(places[name].rglob("*")), f"{name}: {sorted(map(str, places[name].rglob('*')))}"
