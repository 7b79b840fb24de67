"""The quickstart job: the README's first command, run on the embedded procedural default.

Today it prepares the body model (generating the procedural stand-in on first use), poses it
and writes a picture of the rest and posed body with its 24 parts coloured and its joints
drawn. Later stages (synthetic data, preprocessing, training, evaluation) join it as they
land.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pare_model.body_model import BodyModel
from pare_model.body_model.assets import BodyModelAssets
from pare_model.geometry import axis_angle_to_matrix, rot6d_to_matrix
from pare_model.joint_sets import SMPL_PARENTS
from pipelines.body_model_source import load_assets
from pipelines.config.body_model import BodyModelConfig
from pipelines.config.quickstart import QuickstartConfig
from pipelines.visualize.body_sheet import BodyState, Panel, body_sheet
from pipelines.visualize.demo_poses import demo_pose

PREVIEW_FILE = "body_model_preview.png"


@dataclass(frozen=True)
class QuickstartResult:
    preview_png: Path
    asset_dir: Path
    procedural: bool


def _pose_rotations(assets: BodyModelAssets, pose: str) -> torch.Tensor:
    """(24, 3, 3) joint rotations of the named pose, the body upright and facing the viewer."""
    if pose == "mean":
        rotations = rot6d_to_matrix(torch.as_tensor(assets.mean_params["pose"]).reshape(24, 6))
        rotations[0] = torch.eye(3)  # the mean pose is upside down in camera coordinates
        return rotations
    return axis_angle_to_matrix(torch.as_tensor(demo_pose(pose), dtype=torch.float32))


@torch.no_grad()
def _pose_body(body: BodyModel, rotations: torch.Tensor) -> BodyState:
    output = body(rotations[None, :1], rotations[None, 1:], torch.zeros(1, 10))
    return BodyState(output["vertices"][0].numpy(), output["smpl_joints"][0].numpy())


def run_quickstart(body_config: BodyModelConfig, config: QuickstartConfig) -> QuickstartResult:
    """Prepare the body model and draw it; returns where the results are."""
    assets = load_assets(body_config)
    body = BodyModel.from_assets(assets)
    rest = _pose_body(body, torch.eye(3).repeat(24, 1, 1))
    posed = _pose_body(body, _pose_rotations(assets, config.pose))
    kind = "procedural stand-in, NOT SMPL" if assets.procedural else "from " + assets.source
    seed = f", seed {assets.metadata.get('seed')}" if assets.procedural else ""
    title = f"Body model ({kind}{seed}): {len(rest.vertices)} vertices, 24 parts, 24 joints"
    sheet = body_sheet(
        [
            Panel("rest pose", rest, yaw=0.0),
            Panel(f"'{config.pose}' front", posed, yaw=0.0),
            Panel(f"'{config.pose}' three-quarter", posed, yaw=-40.0, pitch=12.0),
            Panel(f"'{config.pose}' side", posed, yaw=-90.0),
        ],
        faces=body.faces.numpy(),
        part_map=body.part_map.numpy(),
        parents=SMPL_PARENTS,
        title=title,
        panel_size=config.panel_size,
    )
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    preview = output_dir / PREVIEW_FILE
    sheet.save(preview)
    return QuickstartResult(preview_png=preview, asset_dir=Path(assets.source).parent, procedural=assets.procedural)


def summary(result: QuickstartResult) -> str:
    kind = "a procedural stand-in, NOT SMPL" if result.procedural else "user-supplied files"
    return "\n".join([
        "Quickstart finished.",
        f"  body model ({kind}): {result.asset_dir.resolve()}",
        f"  picture of the posed body with its 24 parts and joints: {result.preview_png.resolve()}",
    ])

