"""The quickstart job: the README's first command, the whole pipeline on the embedded procedural default.

1. the body model: the procedural stand-in (NOT SMPL) is generated on first use, posed and drawn;
2. synthetic data in the real layouts: COCO-EFT-like training images and 3DPW-like frames (all three splits);
3. ``pare preprocess`` (Ray Data) into WebDataset shards with part labels;
4. ``pare train`` (Ray Train, ``train.num_workers`` CPU workers), tracked in MLflow;
5. ``pare evaluate`` of the final model (not the "best" one: training validated on these same
   frames) on the 3DPW-like frames (3DPW: the test split; 3DPW-OCC: the occluded sequences of all
   three splits, the paper's set) against the mean-pose baseline, and on its own training images;
6. ``pare occlusion-analysis`` on a few test images (the paper's Figures 1 and 3);
7. a summary: the metrics, the targets that show PARE working (:data:`TARGETS`), where the pictures
   are, and the ``mlflow ui`` command.

Rerunning reuses the shards that exist and resumes (or skips) the finished training run.
``quickstart.pipeline=false`` stops after step 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from pare_model.body_model import BodyModel
from pare_model.body_model.assets import BodyModelAssets
from pare_model.geometry import axis_angle_to_matrix, rot6d_to_matrix
from pare_model.joint_sets import SMPL_PARENTS
from pipelines.body_model_source import load_assets
from pipelines.config.body_model import BodyModelConfig
from pipelines.config.quickstart import QuickstartConfig
from pipelines.config.schema import PareConfig
from pipelines.visualize.body_sheet import BodyState, Panel, body_sheet
from pipelines.visualize.demo_poses import demo_pose

PREVIEW_FILE = "body_model_preview.png"
PEOPLE_FILE = "synthetic_people.png"
PEOPLE_SHOWN = 6


@dataclass(frozen=True)
class QuickstartResult:
    preview_png: Path
    people_png: Path
    asset_dir: Path
    procedural: bool
    pipeline: PipelineResult | None = None


@dataclass(frozen=True)
class PipelineResult:
    shards: Path
    train_samples: int
    test_frames: int
    training: object  # pipelines.training.job.TrainingResult
    evaluation: object  # pipelines.evaluation.job.EvaluationResult
    train_evaluation: object  # the same on the training images
    occlusion: object  # pipelines.occlusion_sensitivity.job.OcclusionResult
    seconds: float
    stage_seconds: dict[str, float]  # wall time per stage: synthetic data and shards, training, ...


@dataclass(frozen=True)
class Target:
    """One figure the quickstart's model should reach: ``value`` at most (or at least) ``limit``."""

    name: str
    value: float
    limit: float
    at_least: bool = False
    detail: str = ""
    """What the value is made of, printed after it (e.g. the two figures of a ratio)."""

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def line(self) -> str:
        relation = ">=" if self.at_least else "<="
        detail = f"; {self.detail}" if self.detail else ""
        return (
            f"    [{'met' if self.met else 'MISSED'}] {self.name}: {self.value:.2f} "
            f"(target {relation} {self.limit:g}{detail})"
        )


TARGETS = {
    "mpjpe_ratio": 0.6,
    "pa_mpjpe_ratio": 0.7,
    "orient_median_train_deg": 20.0,
    "orient_median_test_deg": 30.0,
    "local_sensitivity_ratio": 2.0,
}
"""What shows the embedded default's PARE working: MPJPE and PA-MPJPE against the mean pose on the test frames,
the median global orientation error on the training images and the test frames, and the occlusion analysis's
local sensitivity (a joint's error rises at least twice as much with the patch on it as with the patch far away)."""


def targets(run: PipelineResult) -> list[Target]:
    """The quickstart's :data:`TARGETS` measured on a finished pipeline (3DPW-like test frames, final model)."""
    test = run.evaluation.summary["3dpw"]
    train = next(iter(run.train_evaluation.summary.values()))
    local = run.occlusion.local
    return [
        Target("MPJPE / mean-pose MPJPE (test)", test["mpjpe"] / test["baseline"]["mpjpe"], TARGETS["mpjpe_ratio"]),
        Target(
            "PA-MPJPE / mean-pose PA-MPJPE (test)",
            test["pa_mpjpe"] / test["baseline"]["pa_mpjpe"],
            TARGETS["pa_mpjpe_ratio"],
        ),
        Target(
            "median orientation error, training images (deg)",
            train["orient_error_median"],
            TARGETS["orient_median_train_deg"],
        ),
        Target(
            "median orientation error, test frames (deg)",
            test["orient_error_median"],
            TARGETS["orient_median_test_deg"],
        ),
        Target(
            "occlusion: error increase on the joint / far from it",
            local["ratio"],
            TARGETS["local_sensitivity_ratio"],
            at_least=True,
            detail=_local_detail(local),
        ),
    ]


def _local_detail(local: dict) -> str:
    """The two increases behind the occlusion ratio; an infinite ratio is a far patch that did not raise the error."""
    figures = f"on the joint {local['near']:+.1f} mm, far {local['far']:+.1f} mm"
    if local["far"] <= 0 < local["near"]:
        return figures + ": the far patch did not raise the error, so the ratio is infinite"
    return figures


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


def run_quickstart(config: PareConfig) -> QuickstartResult:
    """The whole quickstart (or only the picture with ``quickstart.pipeline=false``); returns where the results are."""
    preview = draw_body_model(config.body_model, config.quickstart)
    if not config.quickstart.pipeline:
        return preview
    return replace(preview, pipeline=run_pipeline(config))


def draw_body_model(body_config: BodyModelConfig, config: QuickstartConfig) -> QuickstartResult:
    """Prepare the body model and draw it; returns where the picture is."""
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
    people = output_dir / PEOPLE_FILE
    draw_people(body, posed, kind).save(people)
    return QuickstartResult(
        preview_png=preview, people_png=people, asset_dir=Path(assets.source).parent, procedural=assets.procedural
    )


def draw_people(body: BodyModel, posed: BodyState, kind: str):
    """The synthetic data's people (seeds 0..5) from the front and the back: what shows which way they face."""
    import numpy as np

    from pipelines.visualize.people_sheet import people_sheet
    from preprocessing.synth.appearance import random_vertex_colors

    part_map, template = body.part_map.numpy(), body.smpl.v_template.numpy()
    colors = [random_vertex_colors(np.random.default_rng(seed), part_map, template) for seed in range(PEOPLE_SHOWN)]
    return people_sheet(
        posed.vertices,
        body.faces.numpy(),
        colors,
        f"Synthetic people ({kind}): front and back (hair and face, chest print or buttons, "
        "belt buckle and back pockets, toe caps)",
    )


def run_pipeline(config: PareConfig) -> PipelineResult:
    """Steps 2 to 6 of the module docstring."""
    from pipelines.study import stage_timer, train_and_measure
    from pipelines.tracking_store import prepare_tracking
    from pipelines.training.tracking import resolve_tracking_uri

    start = time.monotonic()
    seconds: dict[str, float] = {}
    quick = config.quickstart
    # before minutes of data making: the store training will log to answers
    prepare_tracking(
        resolve_tracking_uri(config.tracking, str(Path(config.train.storage_path).resolve())), config.tracking.timeout_s
    )
    print(
        f"Synthetic data: {quick.train_samples} COCO-EFT-like training images and {quick.test_frames} 3DPW-like "
        "frames of its three splits (procedural body model), preprocessed into shards on Ray ..."
    )
    with stage_timer(seconds, "synthetic data and shards"):
        shards = quickstart_shards(config)
    measured = train_and_measure(config, shards.train, shards.validation, shards.evaluation)
    return PipelineResult(
        shards.train.parent.parent,
        quick.train_samples,
        quick.test_frames,
        measured.training,
        measured.evaluation,
        measured.train_evaluation,
        measured.occlusion,
        time.monotonic() - start,
        {**seconds, **measured.stage_seconds},
    )


def quickstart_shards(config: PareConfig):
    """The quickstart's synthetic shards under ``quickstart.output_dir/data``: made, or reused when a rerun finds them."""
    from pipelines.synthetic_shards import make_synthetic_shards

    quick = config.quickstart
    return make_synthetic_shards(
        Path(quick.output_dir) / "data",
        quick.train_samples,
        quick.test_frames,
        image_size=quick.image_size,
        pose_variation=config.synth.pose_variation,
        samples_per_shard=40,
        show_progress=True,
        asset_dir=config.body_model.asset_dir,
        train_occluders=0.0,
        reuse=True,
    )


def _metric_line(name: str, entry: dict) -> str:
    base = entry["baseline"]
    change = 100.0 * (entry["pa_mpjpe"] / base["pa_mpjpe"] - 1.0)
    relation = f"{-change:.0f}% below" if change < 0 else f"{change:.0f}% above"
    return (
        f"    {name:9s} ({entry['num_samples']} frames): PA-MPJPE {entry['pa_mpjpe']:.1f} mm vs {base['pa_mpjpe']:.1f} "
        f"for the mean pose ({relation} it); MPJPE {entry['mpjpe']:.1f} vs {base['mpjpe']:.1f}; "
        f"PVE {entry['pve']:.1f} vs {base['pve']:.1f}; median orientation error "
        f"{entry['orient_error_median']:.0f} vs {base['orient_error_median']:.0f} deg"
    )


def _stage_text(run: PipelineResult) -> str:
    """Where the pipeline's time went: each stage's minutes, and the rest (tracking store, Ray start-up)."""
    stages = [f"{stage} {seconds / 60:.1f}" for stage, seconds in run.stage_seconds.items()]
    rest = run.seconds - sum(run.stage_seconds.values())
    return ", ".join([*stages, f"other {rest / 60:.1f}"])


def summary(result: QuickstartResult) -> str:
    kind = "a procedural stand-in, NOT SMPL" if result.procedural else "user-supplied files"
    lines = [
        "Quickstart finished.",
        f"  body model ({kind}): {result.asset_dir.resolve()}",
        f"  picture of the posed body with its 24 parts and joints: {result.preview_png.resolve()}",
        f"  the synthetic people from the front and the back: {result.people_png.resolve()}",
    ]
    run = result.pipeline
    if run is None:
        return "\n".join(lines)
    from pipelines.occlusion_sensitivity.job import local_text

    training, evaluation, occlusion = run.training, run.evaluation, run.occlusion
    worst = ", ".join(f"{name} ({value:+.1f} mm)" for name, value in occlusion.worst_parts) or "none"
    lines += [
        f"  synthetic data ({run.train_samples} training images, {run.test_frames} 3DPW-like frames) and shards: "
        f"{run.shards.resolve()}",
        f"  training: {training.steps} steps, final model {training.checkpoint}",
        "  evaluation of the final model (mm; mean-pose baseline = the average body for every image):",
        *(_metric_line(name, entry) for name, entry in evaluation.summary.items()),
        *(_metric_line(f"{name}*", entry) for name, entry in run.train_evaluation.summary.items()),
        "    (* its own training images, un-augmented)",
        f"    metrics and per-joint / per-sequence CSVs and chart: {evaluation.output_dir.resolve()}",
        f"  occlusion sensitivity ({occlusion.num_images} images): MPJPE {occlusion.clean['mpjpe']:.1f} mm clean, "
        f"{occlusion.occluded['mpjpe']:.1f} mm with the patch; hiding these parts hurts most: {worst}",
        f"    {local_text(occlusion.local)}",
        f"    Figure 1 (per-joint heatmaps) and Figure 3 (part-sensitivity mesh): {occlusion.output_dir.resolve()}",
        f"  targets that show PARE working on the embedded default ({sum(t.met for t in targets(run))} of "
        f"{len(TARGETS)} met):",
        *(target.line() for target in targets(run)),
        f"  pipeline time: {run.seconds / 60:.1f} min ({_stage_text(run)})",
        f"  open every run, metric and picture: mlflow ui --backend-store-uri {training.tracking_uri}",
    ]
    return "\n".join(lines)
