"""Official checkpoint import: every tensor accounted for, identical outputs, clear errors."""

from __future__ import annotations

import os
import sys
import types

import pytest
import torch

from pare_model.checkpoint import (
    CheckpointError,
    build_model_from_assets,
    export_official_checkpoint,
    import_official_checkpoint,
    load_model,
    load_official_checkpoint,
    read_model_checkpoint,
    save_model_checkpoint,
)
from pare_model.model_config import ModelConfig

TRAINER_EXTRAS = {
    "smpl.shapedirs": torch.zeros(6890, 3, 10),
    "smpl_native.v_template": torch.zeros(6890, 3),
    "J_regressor": torch.zeros(17, 6890),
    "K": torch.eye(3)[None],
    "R": torch.eye(3)[None],
    "part_label_bins": torch.arange(24.0),
}


def _randomise(model):
    """Give every parameter and BN statistic non-default values, so a lost tensor shows."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.network_state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(
                    torch.rand(tensor.shape, generator=generator) * 0.2 + 0.9
                    if "running_var" in name
                    else tensor + 0.01 * torch.randn(tensor.shape, generator=generator)
                )
    return model.eval()


@pytest.fixture(scope="module")
def pare_hrnet(procedural_dir):
    torch.manual_seed(0)
    return _randomise(build_model_from_assets(ModelConfig(backbone="hrnet_w32"), procedural_dir))


@pytest.fixture(scope="module")
def fake_yacs():
    """A stand-in ``yacs.config.CfgNode`` so the file holds hyper-parameters as the released ones do."""
    module = types.ModuleType("yacs.config")

    class CfgNode(dict):
        pass

    CfgNode.__module__ = "yacs.config"
    CfgNode.__qualname__ = "CfgNode"
    module.CfgNode = CfgNode
    sys.modules.update({"yacs": types.ModuleType("yacs"), "yacs.config": module})
    yield CfgNode
    for name in ("yacs", "yacs.config"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def official_file(pare_hrnet, fake_yacs, tmp_path_factory):
    path = tmp_path_factory.mktemp("official") / "pare_checkpoint.ckpt"
    export_official_checkpoint(pare_hrnet, path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"].update(TRAINER_EXTRAS)
    payload["hyper_parameters"] = fake_yacs(PARE=fake_yacs(BACKBONE="hrnet_w32-conv"))
    payload["pytorch-lightning_version"] = "1.1.8"
    torch.save(payload, path)
    return path


def test_official_layout_keys(official_file):
    state = torch.load(official_file, weights_only=False)["state_dict"]
    assert state["model.head.pose_mlp.weight"].shape == (1, 6, 128, 24, 1, 1)
    assert state["model.head.keypoint_final_layer.weight"].shape == (25, 128, 1, 1)
    assert state["model.head.smpl_final_layer.weight"].shape == (64, 128, 1, 1)
    assert state["model.head.shape_mlp.weight"].shape == (10, 1536)
    assert state["model.head.cam_mlp.weight"].shape == (3, 1536)
    assert state["model.head.init_pose"].shape == (1, 144)
    assert "model.head.keypoint_deconv_layers.3.weight" in state  # 2 x [conv, BN, ReLU]
    assert "model.smpl.smpl.J_regressor_extra" in state and "model.smpl.smpl.shapedirs" in state
    assert state["model.backbone.final_layer.weight"].shape == (24, 32, 1, 1)  # unused by PARE, present in files


def test_import_accounts_for_every_tensor_and_reproduces_outputs(official_file, pare_hrnet, procedural_dir):
    model, report = import_official_checkpoint(official_file, procedural_dir)
    state = torch.load(official_file, weights_only=False)["state_dict"]
    groups = [report.network, report.body_model, report.trainer_buffers, report.unused_backbone]
    assert sorted(k for group in groups for k in group) == sorted(state), "each tensor in exactly one group"
    assert report.total == len(state)
    assert sorted(report.trainer_buffers) == sorted(TRAINER_EXTRAS)
    assert sorted(report.unused_backbone) == ["model.backbone.final_layer.bias", "model.backbone.final_layer.weight"]
    assert report.config.backbone == "hrnet_w32" and report.config.head == "pare"
    assert report.body_model_mismatch == []  # exported from the same body model
    assert "accounted for" in report.summary()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, actual = pare_hrnet(images), model(images)
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_load_official_checkpoint_returns_a_ready_model(official_file, procedural_dir):
    model = load_official_checkpoint(official_file, procedural_dir)
    assert not model.training


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.update({"model.head.extra_layer.weight": torch.zeros(3)}),
            "unexpected keys: model.head.extra_layer.weight",
        ),
        (lambda s: s.pop("model.head.cam_mlp.bias"), "missing keys: model.head.cam_mlp.bias"),
        (
            lambda s: s.update({"model.head.cam_mlp.weight": torch.zeros(4, 1536)}),
            r"model.head.cam_mlp.weight: file \(4, 1536\)",
        ),
        (
            lambda s: s.update({"model.head.pose_mlp.weight": torch.zeros(24, 6, 128)}),
            "expected \\(1, 6, C, 24, 1, 1\\)",
        ),
    ],
)
def test_broken_checkpoints_list_the_bad_keys(official_file, procedural_dir, tmp_path, fake_yacs, change, message):
    payload = torch.load(official_file, weights_only=False)
    change(payload["state_dict"])
    broken = tmp_path / "broken.ckpt"
    torch.save(payload, broken)
    with pytest.raises(CheckpointError, match=message):
        import_official_checkpoint(broken, procedural_dir)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch should_never_exist",))


def test_files_that_would_run_code_are_refused(tmp_path, procedural_dir):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "payload": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="not plain data"):
        import_official_checkpoint(path, procedural_dir)
    assert not (tmp_path / "should_never_exist").exists() and not os.path.exists("should_never_exist")


def test_missing_truncated_and_foreign_files(tmp_path, procedural_dir, official_file):
    with pytest.raises(CheckpointError, match="does not exist"):
        import_official_checkpoint(tmp_path / "nope.ckpt", procedural_dir)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(official_file.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        import_official_checkpoint(truncated, procedural_dir)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a PARE training checkpoint"):
        import_official_checkpoint(foreign, procedural_dir)


def test_native_checkpoint_round_trip(procedural_dir, tmp_path):
    config = ModelConfig(backbone="debug", head="hmr")
    torch.manual_seed(5)
    model = _randomise(build_model_from_assets(config, procedural_dir))
    path = save_model_checkpoint(tmp_path / "model.pt", model.network_state_dict(), config, {"step": 7})
    checkpoint = read_model_checkpoint(path)
    assert checkpoint.config == config and checkpoint.metadata == {"step": 7}
    loaded = load_model(path, procedural_dir)
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(images)["pred_vertices"], loaded(images)["pred_vertices"])
    assert not list(tmp_path.glob("*.partial"))


def test_native_reader_points_official_files_to_the_importer(official_file):
    with pytest.raises(CheckpointError, match="pare checkpoint import"):
        read_model_checkpoint(official_file)


def test_cli_import_and_info(official_file, procedural_dir, tmp_path):
    from tests.test_cli import run_pare

    out = tmp_path / "imported.pt"
    body = ["body_model.source=procedural", f"body_model.asset_dir={procedural_dir}"]
    result = run_pare("checkpoint", "import", "--official", str(official_file), "--out", str(out), *body)
    assert result.returncode == 0, result.stderr
    assert "tensors accounted for" in result.stdout and out.is_file()
    info = run_pare("checkpoint", "info", str(out))
    assert info.returncode == 0 and "model.backbone: hrnet_w32" in info.stdout
    again = run_pare("checkpoint", "import", "--official", str(official_file), "--out", str(out), *body)
    assert again.returncode == 2 and "pass --force" in again.stderr
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"garbage")
    failed = run_pare("checkpoint", "import", "--official", str(broken), "--out", str(tmp_path / "x.pt"), *body)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "not a readable PyTorch checkpoint" in failed.stderr


def test_the_documented_top_level_names_are_the_checkpoint_functions():
    import pare_model
    import pare_model.checkpoint as checkpoint

    assert pare_model.load_official_checkpoint is checkpoint.load_official_checkpoint
    assert pare_model.import_official_checkpoint is checkpoint.import_official_checkpoint
    with pytest.raises(AttributeError, match="no attribute 'load_oficial_checkpoint'"):
        pare_model.load_oficial_checkpoint  # noqa: B018
