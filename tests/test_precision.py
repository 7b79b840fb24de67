"""Mixed precision: what ``train.precision`` resolves to on this machine, and the float32 islands under autocast.

Whether this CPU runs bf16 natively is read here from the kernel's own list of CPU flags (``/proc/cpuinfo``),
independently of torch's detection that the code uses. The islands: under bf16 autocast, the body model (its
skinning and joint regressors), the 6D-to-rotation decoding and the camera projection compute exactly what
they compute in float32; before, bf16 put the vertices 2.2 mm off on average and up to 19 mm.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pare_model.errors import UserFacingError
from pare_model.geometry import axis_angle_to_matrix, project_to_crop, rot6d_to_matrix
from pipelines.config.train import TrainConfig
from pipelines.training.precision import resolve_precision

CPU = torch.device("cpu")


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.double() - reference.double()).abs().max() / reference.double().abs().max())


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    pytest.skip("/proc/cpuinfo lists no flags")


def test_auto_is_the_default_and_picks_bf16_exactly_where_the_cpu_has_native_bf16():
    assert TrainConfig().precision == "auto" and TrainConfig().channels_last
    native = bool(_cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile"})
    resolved = resolve_precision("auto", True, CPU)
    assert resolved.name == ("bf16" if native else "fp32"), resolved
    assert resolved.dtype == (torch.bfloat16 if native else None) and resolved.memory_format == torch.channels_last
    assert resolved.describe().startswith("precision: ") and "train.precision=auto" in resolved.describe()


def test_explicit_settings_are_kept_and_fp16_on_a_cpu_is_refused():
    assert resolve_precision("fp32", False, CPU).dtype is None
    assert resolve_precision("fp32", False, CPU).memory_format == torch.contiguous_format
    assert resolve_precision("bf16", True, CPU).dtype == torch.bfloat16  # emulated where not native: allowed
    with pytest.raises(UserFacingError, match="fp16 needs GPUs"):
        resolve_precision("fp16", True, CPU)


def test_the_body_model_computes_in_float32_under_bf16_autocast(body_model):
    generator = torch.Generator().manual_seed(0)
    rotations = axis_angle_to_matrix(torch.randn(4, 24, 3, generator=generator) * 0.4)
    betas = torch.randn(4, 10, generator=generator)
    with torch.no_grad():
        plain = body_model(rotations[:, :1], rotations[:, 1:], betas)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = body_model(rotations[:, :1], rotations[:, 1:], betas)
    for name in ("vertices", "joints", "smpl_joints", "h36m_joints", "lsp14_joints"):
        assert mixed[name].dtype == torch.float32, name
        assert _relative_error(mixed[name], plain[name]) <= 1e-5, (name, _relative_error(mixed[name], plain[name]))


def test_rotations_and_the_projection_compute_in_float32_under_bf16_autocast():
    """Given bf16 inputs (a network's output), they compute in float32 what float32 makes of those same values."""
    generator = torch.Generator().manual_seed(1)
    rot6d = torch.randn(4, 24, 6, generator=generator).bfloat16()
    points = (torch.randn(4, 49, 3, generator=generator) * 0.5).bfloat16()
    cam = torch.tensor([[0.9, 0.05, -0.02]]).repeat(4, 1).bfloat16()
    plain = rot6d_to_matrix(rot6d.float()), project_to_crop(points.float(), cam.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = rot6d_to_matrix(rot6d), project_to_crop(points, cam)
    for value, reference in zip(mixed, plain, strict=True):
        assert value.dtype == torch.float32 and _relative_error(value, reference) <= 1e-5


def test_the_model_under_bf16_autocast_poses_and_projects_its_prediction_in_float32(procedural_dir):
    """The network runs in bf16; its mesh, joints and 2D keypoints are what float32 makes of its pose and camera."""
    from pare_model.model import build_model_from_assets
    from pare_model.model_config import ModelConfig

    config = ModelConfig(backbone="resnet_small", image_size=64, num_branch_filters=8, num_features_smpl=8)
    model = build_model_from_assets(config, procedural_dir).eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model(images)
    with torch.no_grad():
        body = model.body_model(pred["pred_pose"][:, :1], pred["pred_pose"][:, 1:], pred["pred_shape"].float())
        keypoints = project_to_crop(body["joints"], pred["pred_cam"].float(), config.focal_length, config.image_size)
    assert pred["pred_pose"].dtype == pred["pred_vertices"].dtype == pred["pred_keypoints_2d"].dtype == torch.float32
    assert _relative_error(pred["pred_vertices"], body["vertices"]) <= 1e-5
    assert _relative_error(pred["pred_keypoints_3d"], body["joints"]) <= 1e-5
    assert _relative_error(pred["pred_keypoints_2d"], keypoints) <= 1e-5
