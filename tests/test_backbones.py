"""Backbones: shapes, gradients, registry, key names of the original weight files, weight loading."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pare_model.backbones import (
    BACKBONES,
    PARE_FINAL_LAYER_SHAPES,
    BackboneWeightsError,
    HRNet,
    ResNet50,
    UnknownBackboneError,
    build_backbone,
    hrnet_stages,
    hrnet_w32,
    load_backbone_weights,
    make_deconv_layers,
    resnet50,
)
from pare_model.backbones.hrnet import BilinearResize
from pare_model.errors import UserFacingError

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def bn(prefix: str) -> list[str]:
    return [f"{prefix}.{name}" for name in BN_KEYS]


def bottleneck_keys(prefix: str, projection: bool) -> list[str]:
    keys = []
    for k in (1, 2, 3):
        keys += [f"{prefix}.conv{k}.weight", *bn(f"{prefix}.bn{k}")]
    if projection:
        keys += [f"{prefix}.downsample.0.weight", *bn(f"{prefix}.downsample.1")]
    return keys


def original_hrnet_w32_keys() -> set[str]:
    """State-dict keys of the original PARE ``hrnet_w32(use_conv=True)``, spelled out from its code."""
    keys = ["conv1.weight", *bn("bn1"), "conv2.weight", *bn("bn2")]
    for b in range(4):
        keys += bottleneck_keys(f"layer1.{b}", projection=b == 0)
    # transitions: branch 1 changes 256 -> 32 channels; each stage grows one new branch
    for prefix in ("transition1.0", "transition1.1.0", "transition2.2.0", "transition3.3.0"):
        keys += [f"{prefix}.0.weight", *bn(f"{prefix}.1")]
    for stage, num_modules, num_branches in ((2, 1, 2), (3, 4, 3), (4, 3, 4)):
        for m in range(num_modules):
            base = f"stage{stage}.{m}"
            for i in range(num_branches):
                for b in range(4):
                    keys += [f"{base}.branches.{i}.{b}.conv1.weight", *bn(f"{base}.branches.{i}.{b}.bn1")]
                    keys += [f"{base}.branches.{i}.{b}.conv2.weight", *bn(f"{base}.branches.{i}.{b}.bn2")]
                for j in range(num_branches):
                    if j > i:
                        keys += [f"{base}.fuse_layers.{i}.{j}.0.weight", *bn(f"{base}.fuse_layers.{i}.{j}.1")]
                    for k in range(i - j):
                        keys += [f"{base}.fuse_layers.{i}.{j}.{k}.0.weight", *bn(f"{base}.fuse_layers.{i}.{j}.{k}.1")]
    for stage, steps in ((2, 1), (3, 2), (4, 3)):
        for k in range(steps):
            keys += [f"upsample_stage_{stage}.{4 * k + 1}.weight", *bn(f"upsample_stage_{stage}.{4 * k + 2}")]
    keys += ["final_layer.weight", "final_layer.bias"]
    assert len(keys) == len(set(keys))
    return set(keys)


def torchvision_resnet50_keys() -> set[str]:
    keys = ["conv1.weight", *bn("bn1")]
    for layer, blocks in enumerate((3, 4, 6, 3), start=1):
        for b in range(blocks):
            keys += bottleneck_keys(f"layer{layer}.{b}", projection=b == 0)
    return set(keys)


@pytest.fixture(scope="module")
def hrnet() -> HRNet:
    return hrnet_w32().eval()


@pytest.fixture(scope="module")
def resnet() -> ResNet50:
    return resnet50().eval()


# ---------------------------------------------------------------- registry and shapes


def test_registry_names_and_error_lists_them():
    assert set(BACKBONES) == {"hrnet_w32", "resnet50", "resnet_small", "debug"}
    with pytest.raises(UnknownBackboneError) as info:
        build_backbone("hrnet_w48")
    assert isinstance(info.value, UserFacingError) and isinstance(info.value, ValueError)
    for name in BACKBONES:
        assert name in str(info.value)
    assert "'hrnet_w48'" in str(info.value)


@pytest.mark.parametrize(
    ("name", "channels", "stride"),
    [("hrnet_w32", 480, 4), ("resnet50", 2048, 32), ("resnet_small", 128, 32), ("debug", 64, 4)],
)
def test_output_shape_at_224_matches_feature_info(name, channels, stride):
    backbone = build_backbone(name).eval()
    assert (backbone.feature_info.channels, backbone.feature_info.stride) == (channels, stride)
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, channels, 224 // stride, 224 // stride)
    assert torch.isfinite(out).all()


def test_debug_backbone_channels_are_configurable():
    backbone = build_backbone("debug", out_channels=480)
    assert backbone.feature_info.channels == 480
    assert backbone(torch.randn(2, 3, 64, 32)).shape == (2, 480, 16, 8)


@pytest.mark.parametrize(("height", "width"), [(128, 96), (104, 72)])
def test_hrnet_non_square_and_non_multiple_of_32_inputs(hrnet, height, width):
    with torch.no_grad():
        out = hrnet(torch.randn(1, 3, height, width))
    # two stride-2 convs with padding 1 round up
    assert out.shape == (1, 480, -(-height // 4), -(-width // 4))


def test_bilinear_resize_equals_the_originals_fixed_x2_upsampling():
    x = torch.randn(2, 5, 7, 6)
    reference = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)(x)
    torch.testing.assert_close(BilinearResize()(x, (14, 12)), reference, rtol=0, atol=0)
    # nearest resize to the target size (fusion) equals fixed-factor nearest upsampling
    torch.testing.assert_close(
        F.interpolate(x, size=(28, 24), mode="nearest"), F.interpolate(x, scale_factor=4, mode="nearest")
    )


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_gradients_reach_the_first_conv(name):
    backbone = build_backbone(name).train()
    out = backbone(torch.randn(2, 3, 64, 64))
    (out * torch.randn_like(out)).sum().backward()
    first_conv = next(m for m in backbone.modules() if isinstance(m, nn.Conv2d))
    grad = first_conv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is not None for p in backbone.parameters()), "every parameter takes part in the forward"


# ---------------------------------------------------------------- HRNet keys, sizes, init


def test_hrnet_keys_are_the_originals_minus_the_unused_final_layer(hrnet):
    ours = set(hrnet.state_dict())
    expected = original_hrnet_w32_keys()
    assert expected - ours == set(HRNet.known_unused_keys) == {"final_layer.weight", "final_layer.bias"}
    assert ours - expected == set()
    assert len(ours) == 1866
    for key in (
        "transition1.0.0.weight",
        "transition1.1.0.0.weight",
        "transition3.3.0.1.running_var",
        "stage2.0.fuse_layers.0.1.0.weight",
        "stage3.3.fuse_layers.2.0.1.0.weight",
        "stage4.2.fuse_layers.3.2.0.1.num_batches_tracked",
        "upsample_stage_2.1.weight",
        "upsample_stage_4.10.running_mean",
        "layer1.0.downsample.1.weight",
    ):
        assert key in ours, key


def test_hrnet_tensor_shapes_and_parameter_counts(hrnet):
    state = hrnet.state_dict()
    assert state["conv1.weight"].shape == (64, 3, 3, 3)
    assert state["transition1.0.0.weight"].shape == (32, 256, 3, 3)
    assert state["transition3.3.0.0.weight"].shape == (256, 128, 3, 3)
    assert state["stage2.0.fuse_layers.0.1.0.weight"].shape == (32, 64, 1, 1)
    assert state["stage4.2.fuse_layers.3.0.2.0.weight"].shape == (256, 32, 3, 3)
    assert state["upsample_stage_3.5.weight"].shape == (128, 128, 3, 3)
    params = dict(hrnet.named_parameters())
    assert sum(p.numel() for p in params.values()) == 31_408_960
    # The COCO pose net (28.5 M incl. its 17-joint final layer) builds stage 4's last module with
    # a single output; PARE keeps all four, so fuse rows 1-3 there and the upsampling are extra.
    extra = ("upsample_stage_",) + tuple(f"stage4.2.fuse_layers.{i}." for i in (1, 2, 3))
    pose_net = sum(p.numel() for n, p in params.items() if not n.startswith(extra)) + 17 * 32 + 17
    assert pose_net == 28_536_113
    assert PARE_FINAL_LAYER_SHAPES == {"final_layer.weight": (24, 32, 1, 1), "final_layer.bias": (24,)}


def test_hrnet_init_and_batchnorm_settings(hrnet):
    weight = hrnet.stage4[2].branches[3][0].conv1.weight  # 256 x 256 x 3 x 3
    assert abs(weight.std().item() - 0.001) < 0.0001 and abs(weight.mean().item()) < 0.0001
    bns = [m for m in hrnet.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.momentum == 0.1 and m.eps == 1e-5 for m in bns)
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in bns)


# ---------------------------------------------------------------- ResNet-50 and deconv


def test_resnet50_has_torchvision_keys_and_v15_strides(resnet):
    state = resnet.state_dict()
    assert set(state) == torchvision_resnet50_keys()
    assert len(state) == 318 and "fc.weight" not in state
    assert state["layer3.5.bn3.running_var"].shape == (1024,)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    block = resnet.layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2) and block.downsample[0].stride == (2, 2)
    assert sum(p.numel() for p in resnet.parameters()) == 23_508_032
    assert ResNet50.known_unused_keys == ("fc.weight", "fc.bias")


def test_resnet50_init_is_kaiming_fan_out(resnet):
    weight = resnet.layer4[0].conv2.weight  # 512 x 512 x 3 x 3, fan_out = 512 * 9
    expected = (2 / (512 * 9)) ** 0.5
    assert abs(weight.std().item() / expected - 1) < 0.02


def test_deconv_layers_indices_shapes_and_output():
    layers = make_deconv_layers(2048)
    assert [type(m) for m in layers] == [nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU] * 3
    expected = set()
    for k in range(3):
        expected |= {f"{3 * k}.weight", *bn(str(3 * k + 1))}
    state = layers.state_dict()
    assert set(state) == expected
    assert state["0.weight"].shape == (2048, 256, 4, 4) and state["6.weight"].shape == (256, 256, 4, 4)
    assert all(m.bias is None for m in layers if isinstance(m, nn.ConvTranspose2d))
    assert layers.eval()(torch.randn(1, 2048, 7, 7)).shape == (1, 256, 56, 56)
    assert make_deconv_layers(8, num_layers=2, num_filters=4, kernel=3)(torch.randn(1, 8, 5, 3)).shape == (1, 4, 20, 12)
    with pytest.raises(ValueError, match="kernel"):
        make_deconv_layers(8, kernel=5)


# ---------------------------------------------------------------- initial weights


def _counterfeit_coco_file(source: HRNet) -> dict[str, torch.Tensor]:
    """What a COCO pose file looks like to us: no upsampling, 17-joint final layer, old counters gone."""
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("upsample_stage_")}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    state["final_layer.weight"] = torch.randn(17, 8, 1, 1)
    state["final_layer.bias"] = torch.randn(17)
    state["head.extra.weight"] = torch.randn(3)  # not ours, not known
    state["conv1.weight"] = torch.randn(64, 4, 3, 3)  # wrong shape (RGBA)
    return state


def test_hrnet_weight_file_round_trip_reports_exactly_what_differs(tmp_path):
    # Width 8 keeps the file small; the key set is the same as W32's. Two builds draw different weights.
    source = HRNet(hrnet_stages(8))
    state = _counterfeit_coco_file(source)
    path = tmp_path / "pose_hrnet_w32_256x192.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)

    target = HRNet(hrnet_stages(8))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = load_backbone_weights(target, path)

    ours = target.state_dict()
    upsample = [k for k in ours if k.startswith("upsample_stage_") and not k.endswith("num_batches_tracked")]
    assert report.source == str(path) and report.total == 1866
    assert set(report.missing) == set(upsample) and len(upsample) == 30
    assert set(report.missing_counters) == {k for k in ours if k.endswith("num_batches_tracked")}
    assert report.unexpected == ("head.extra.weight",)
    assert report.shape_mismatch == (("conv1.weight", (64, 4, 3, 3), (64, 3, 3, 3)),)
    assert set(report.ignored) == {"final_layer.weight", "final_layer.bias"}
    assert len(report.loaded) == 1866 - 30 - len(report.missing_counters) - 1
    assert not report.ok
    for key in report.loaded:
        torch.testing.assert_close(ours[key], state[key], rtol=0, atol=0)
    assert not torch.equal(ours["stage4.0.branches.3.0.conv1.weight"], before["stage4.0.branches.3.0.conv1.weight"])
    for key in (*report.missing, "conv1.weight"):
        torch.testing.assert_close(ours[key], before[key], rtol=0, atol=0)

    summary = report.summary()
    assert f"loaded {len(report.loaded):,} of 1,866 tensors from {path}" in summary
    assert "upsample_stage_2 (5), upsample_stage_3 (10), upsample_stage_4 (15), conv1 (1)" in summary
    assert "conv1.weight is [64, 4, 3, 3] in the file, [64, 3, 3, 3] here" in summary
    assert "final_layer.weight" in summary and "head (1)" in summary


def test_strict_loading_raises_with_the_key_lists_and_loads_nothing():
    target = build_backbone("debug")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in target.state_dict().items()}
    del state["layers.1.running_var"]
    state["layers.9.weight"] = torch.zeros(1)
    with pytest.raises(BackboneWeightsError) as info:
        load_backbone_weights(target, state, strict=True)
    assert "layers.1.running_var" in str(info.value) and "layers.9.weight" in str(info.value)
    for key, value in target.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    del state["layers.9.weight"]
    state["layers.1.running_var"] = torch.rand(16) + 0.5
    report = load_backbone_weights(target, state, strict=True)
    assert report.ok and len(report.loaded) == report.total


def test_resnet_ignores_the_imagenet_classifier(resnet):
    state = dict(resnet.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    report = load_backbone_weights(resnet50(), state, strict=True)
    assert report.ok and report.ignored == ("fc.weight", "fc.bias") and report.unexpected == ()
    assert "ignored 2 tensors this backbone never uses: fc.weight, fc.bias" in report.summary()


def test_legacy_serialisation_format_loads(tmp_path):
    source, target = build_backbone("debug"), build_backbone("debug")
    path = tmp_path / "old.pth"
    torch.save(source.state_dict(), path, _use_new_zipfile_serialization=False)
    report = load_backbone_weights(target, path)
    assert report.ok
    torch.testing.assert_close(target.layers[0].weight, source.layers[0].weight)


class _NotWeights:
    pass


def test_bad_files_raise_user_facing_errors(tmp_path):
    backbone = build_backbone("hrnet_w32")
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(BackboneWeightsError, match="pose_hrnet_w32_256x192.pth") as info:
        load_backbone_weights(backbone, missing)
    assert str(missing) in str(info.value) and isinstance(info.value, UserFacingError)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(BackboneWeightsError, match="cannot read"):
        load_backbone_weights(backbone, garbage)

    unsafe = tmp_path / "object.pth"
    with unsafe.open("wb") as f:
        pickle.dump({"conv1.weight": _NotWeights()}, f, protocol=2)
    with pytest.raises(BackboneWeightsError, match="cannot read"):
        load_backbone_weights(backbone, unsafe)

    foreign = tmp_path / "foreign.pth"
    torch.save({"model.backbone.conv1.weight": torch.zeros(64, 3, 3, 3)}, foreign)
    with pytest.raises(BackboneWeightsError, match="none of the 1 entries"):
        load_backbone_weights(backbone, foreign)

    with pytest.raises(BackboneWeightsError, match="no state dict"):
        load_backbone_weights(backbone, {"epoch": 3})
