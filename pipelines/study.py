"""``pare study CONFIG``: train variants of one config the same way, evaluate them on the same test set, compare.

The shipped study (``configs/study_occlusion.yaml``) is the paper's claim in small: PARE and an
HMR-style baseline (same backbone, same data, same steps; a lower learning rate, at which alone the
HMR head trains without diverging, see docs/evaluation.md) trained on synthetic data with synthetic occlusion, evaluated on an occluded synthetic 3DPW-like test set,
and reported with ``pare compare``. Steps:

1. synthetic COCO-EFT-like training data and a 3DPW-like test set (``study.test_occluders``; its three splits,
   so that 3DPW-OCC is the paper's set), preprocessed into shards (reused when they exist);
2. for each variant: ``pare train`` with the variant's overrides (run name = variant name; a
   rerun resumes or skips it), ``pare evaluate`` of its final model into its run (not the "best"
   model, which validation picked on the same test set) on the test set and on its own training
   images (``eval/coco-eft/*``: did it fit what it saw?), and ``pare occlusion-analysis``;
   Each variant is trained once per seed of ``study.seeds`` (runs ``<variant>-seed<N>`` when there are
   several);
3. ``pare compare`` over all runs: ``<output_dir>/compare/comparison.md`` and charts; and the study
   table, each variant's metrics as mean and standard deviation over its seeds:
   ``<output_dir>/study_table.md`` (:mod:`pipelines.study_table`).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pare_model.errors import UserFacingError
from pipelines.config.loader import load_config
from pipelines.config.schema import PareConfig
from pipelines.config.train import DatasetConfig

if TYPE_CHECKING:
    from pipelines.evaluation.workers import EvaluationActors


@dataclass(frozen=True)
class Measured:
    """A training run and the measurements of its final model."""

    training: object  # pipelines.training.job.TrainingResult
    evaluation: object  # pipelines.evaluation.job.EvaluationResult on the test set
    train_evaluation: object  # the same on the training images
    occlusion: object  # pipelines.occlusion_sensitivity.job.OcclusionResult
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage, in the order they ran


@dataclass(frozen=True)
class VariantResult:
    name: str  # the run's name: the variant's, with -seed<N> when the study has several seeds
    variant: str
    seed: int
    run_id: str
    evaluation: object  # pipelines.evaluation.job.EvaluationResult
    train_evaluation: object
    occlusion: object  # pipelines.occlusion_sensitivity.job.OcclusionResult


@dataclass(frozen=True)
class StudyResult:
    variants: list[VariantResult]
    comparison_markdown: str
    comparison_dir: Path
    table_markdown: str
    table_files: list[Path]
    tracking_uri: str


def _shards(config: PareConfig):
    from pipelines.synthetic_shards import make_synthetic_shards

    study = config.study
    return make_synthetic_shards(
        Path(study.output_dir) / "data",
        study.train_samples,
        study.test_frames,
        image_size=study.image_size,
        pose_variation=config.synth.pose_variation,
        samples_per_shard=40,
        show_progress=True,
        asset_dir=config.body_model.asset_dir,
        test_occluders=study.test_occluders,
        reuse=True,
    )


def train_and_measure(
    config: PareConfig, train_shards: Path, test_shards: Path, evaluation_shards: Sequence[Path] = ()
) -> Measured:
    """``pare train`` on ``train_shards`` (validating on ``test_shards``), then ``pare evaluate`` of the final model
    on ``evaluation_shards`` (default: ``test_shards``; the synthetic data's whole 3DPW, for 3DPW-OCC) and on the
    (un-augmented) training images, and ``pare occlusion-analysis`` on ``test_shards``.

    The final model, not the "best" one: validation ran on the same test set, so choosing by it would bias the
    figures. Evaluation logs into the training run. The three measurements share one set of Ray actors, which
    load the model once. ``config`` is updated in place.
    """
    from pipelines.evaluation.job import model_actors
    from pipelines.training.job import run_training

    config.data.datasets = {"coco": DatasetConfig(shards=[str(train_shards)])}
    config.data.validation = [str(test_shards)]
    seconds: dict[str, float] = {}
    print(f"Training {config.train.max_steps} steps on {config.train.num_workers} Ray Train workers ...")
    with stage_timer(seconds, "training"):
        training = run_training(config)
    config.tracking.tracking_uri = training.tracking_uri
    config.evaluate.checkpoint = training.checkpoint
    config.evaluate.shards = [str(folder) for folder in evaluation_shards or [test_shards]]
    on_test = copy.deepcopy(config)
    on_test.evaluate.shards = [str(test_shards)]
    on_train = copy.deepcopy(config)
    on_train.evaluate.shards = [str(train_shards)]
    on_train.evaluate.subsets = []
    on_train.evaluate.output_dir = str(
        Path(config.evaluate.output_dir).with_name(Path(config.evaluate.output_dir).name + "_train")
    )
    with model_actors(config) as actors:
        evaluation, train_evaluation, occlusion = _measure(config, on_train, on_test, actors, seconds)
    return Measured(training, evaluation, train_evaluation, occlusion, seconds)


def _measure(
    config: PareConfig, on_train: PareConfig, on_test: PareConfig, actors: EvaluationActors, seconds: dict[str, float]
) -> tuple:
    """(evaluation on the test shards, on the training images, occlusion analysis on the test split), timed into
    ``seconds``."""
    from pipelines.evaluation.job import run_evaluation
    from pipelines.occlusion_sensitivity.job import run_occlusion_analysis

    print("Evaluating the final model on the test shards ...")
    with stage_timer(seconds, "evaluation"):
        evaluation = run_evaluation(config, actors)
    print("Evaluating it on its own training images (no augmentation) ...")
    with stage_timer(seconds, "evaluation on the training images"):
        train_evaluation = run_evaluation(on_train, actors)
    print("Occlusion sensitivity analysis ...")
    with stage_timer(seconds, "occlusion analysis"):
        occlusion = run_occlusion_analysis(on_test, actors)
    return evaluation, train_evaluation, occlusion


@contextlib.contextmanager
def stage_timer(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Adds the wall time of the ``with`` block to ``seconds[stage]``."""
    start = time.monotonic()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.monotonic() - start


def _variant_config(
    path: str | None, overrides: list[str], name: str, changes: list[str], output_dir: Path, seed: int
) -> PareConfig:
    config = load_config(
        path,
        [
            *overrides,
            *changes,
            f"train.run_name={name}",
            f"train.seed={seed}",
            f"train.storage_path={output_dir / 'train'}",
        ],
    )
    config.evaluate.output_dir = str(output_dir / name / "evaluate")
    config.evaluate.occlusion.output_dir = str(output_dir / name / "occlusion")
    return config


def _logged(tracking_uri: str, results: list[VariantResult], metrics: list[str]) -> list[str]:
    """The metrics of ``metrics`` that some variant logged (a small test set may have no 3DPW-OCC frame)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    logged = set().union(*(client.get_run(result.run_id).data.metrics for result in results))
    return [metric for metric in metrics if metric in logged]


def _check_tracking(config: PareConfig, output_dir: Path) -> None:
    """Before minutes of data making: the store every variant will log to answers."""
    from pipelines.tracking_store import prepare_tracking
    from pipelines.training.tracking import resolve_tracking_uri

    prepare_tracking(
        resolve_tracking_uri(config.tracking, str((output_dir / "train").resolve())), config.tracking.timeout_s
    )


def run_study(path: str | None, overrides: list[str]) -> StudyResult:
    """Run the study of the config at ``path`` (with ``overrides``); returns the comparison and where things are."""
    from pipelines.compare.report import write_report
    from pipelines.compare.runs import read_comparison
    from pipelines.study_table import seed_table, write_table

    base = load_config(path, overrides)
    if len(base.study.variants) * len(base.study.seeds) < 2:
        raise UserFacingError(
            "a study compares at least two runs: name two variants in study.variants, or give one variant "
            "two or more study.seeds (its table then has a spread but no verdict)"
        )
    output_dir = Path(base.study.output_dir)
    _check_tracking(base, output_dir)
    shards = _shards(base)
    results, tracking_uri = [], ""
    seeds = base.study.seeds
    for variant, changes in base.study.variants.items():
        for seed in seeds:
            name = variant if len(seeds) == 1 else f"{variant}-seed{seed}"
            print(f"Study variant {variant!r} ({' '.join(changes)}), seed {seed}:")
            config = _variant_config(path, overrides, name, changes, output_dir, seed)
            measured = train_and_measure(config, shards.train, shards.validation, shards.evaluation)
            tracking_uri = measured.training.tracking_uri
            results.append(
                VariantResult(
                    name,
                    variant,
                    seed,
                    measured.training.run_id,
                    measured.evaluation,
                    measured.train_evaluation,
                    measured.occlusion,
                )
            )
    comparison = read_comparison(
        tracking_uri,
        base.tracking.experiment,
        [r.run_id for r in results],
        _logged(tracking_uri, results, base.study.compare_metrics) or None,
    )
    markdown, _ = write_report(comparison, output_dir / "compare")
    runs = {variant: [r.run_id for r in results if r.variant == variant] for variant in base.study.variants}
    table_metrics = _logged(tracking_uri, results, base.study.table_metrics or base.study.compare_metrics)
    table, table_files = write_table(seed_table(tracking_uri, runs, table_metrics), output_dir)
    return StudyResult(results, markdown, output_dir / "compare", table, table_files, tracking_uri)


def summary_text(result: StudyResult) -> str:
    lines = [
        result.comparison_markdown,
        "",
        "Over the seeds (mean ± standard deviation):",
        result.table_markdown,
        "Study finished:",
    ]
    for variant in result.variants:
        entry = variant.evaluation.summary.get("3dpw", next(iter(variant.evaluation.summary.values())))
        lines.append(
            f"  {variant.name:8s} occluded test set: PA-MPJPE {entry['pa_mpjpe']:.1f} mm, MPJPE {entry['mpjpe']:.1f} mm, "
            f"median orientation error {entry['orient_error_median']:.0f} deg; "
            f"occlusion analysis in {variant.occlusion.output_dir.resolve()}"
        )
    lines += [
        f"  study table (Markdown, CSV): {result.table_files[0].resolve()}",
        f"  comparison (Markdown, CSV, curves.png, bars.png): {result.comparison_dir.resolve()}",
        f"  open it all: mlflow ui --backend-store-uri {result.tracking_uri}",
    ]
    return "\n".join(lines)
