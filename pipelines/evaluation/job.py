"""``pare evaluate``: PARE's protocol on test shards, distributed over Ray actors, reported and logged.

The driver resolves the model and the shard folders, plans units of work, runs them on
``evaluate.num_actors`` Ray actors (each loads the model once) with a progress bar, merges the
per-sample errors exactly, and writes the reports (:mod:`pipelines.evaluation.report`) and logs
them to MLflow (:mod:`pipelines.evaluation.tracking`).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.body_model_source import prepare_assets
from pipelines.config.evaluate import EvaluateConfig
from pipelines.config.schema import PareConfig
from pipelines.data.shard_folders import ShardFolder
from pipelines.evaluation.measure import EvalPart, evaluate_unit
from pipelines.evaluation.predictors import ContextSpec
from pipelines.evaluation.report import mlflow_metrics, summarise, write_reports
from pipelines.evaluation.shard_check import check_shards, expected_samples
from pipelines.evaluation.source import EvaluationError, ModelSource, resolve_source
from pipelines.evaluation.subsets import check_subsets, incomplete_note
from pipelines.evaluation.tracking import Logged, check_logging, log_results
from pipelines.evaluation.workers import EvaluationActors, plan_units, run_units, shared_actors
from pipelines.io.cluster import actors_for_work, init_ray
from pipelines.preflight import check_body_model, check_output_folder


@dataclass(frozen=True)
class EvaluationResult:
    summary: dict
    output_dir: Path
    files: list[Path]
    source: ModelSource
    logged: Logged | None
    without_ground_truth: int
    unreadable: int
    seconds: float
    expected: int = 0
    """Samples the manifests list (the first ``max_samples`` per folder)."""
    lost: int = 0
    """Of those, samples neither evaluated nor left out for lack of ground truth (unreadable or in damaged shards)."""
    damaged: tuple[str, ...] = ()
    missing_joints: int = 0
    """Samples left out because their 3D joints lack a joint the protocol evaluates (validity 0)."""
    non_finite: int = 0
    """Samples left out because their ground truth holds NaN or infinity."""


def shard_folders(config: PareConfig) -> tuple[list, list[str]]:
    """(folders, problems of their damaged shards); damaged shards raise unless evaluate.allow_damaged_shards."""
    from pipelines.data.shard_folders import resolve_folders

    if not config.evaluate.shards:
        raise EvaluationError(
            "no test shards: pass --shards DIR (a `pare preprocess` output folder such as outputs/shards/3dpw/test) "
            "or set evaluate.shards"
        )
    folders = [folder for location in config.evaluate.shards for folder in resolve_folders(location)]
    folders = [folder for folder in folders if folder.total > 0]
    if not folders:
        raise EvaluationError(f"the shard folders {config.evaluate.shards} hold no samples")
    return folders, check_shards(folders, config.evaluate.allow_damaged_shards)


def context_spec(config: PareConfig, source: ModelSource) -> ContextSpec:
    """What every actor needs; the body model is loaded here first, so a bad one fails once, on the driver."""
    evaluate = config.evaluate
    asset_dir = prepare_assets(config.body_model).resolve()
    check_body_model(asset_dir)
    return ContextSpec(
        asset_dir=str(asset_dir),
        predictor=evaluate.predictor,
        checkpoint=source.location,  # a remote one is copied by each actor: they need not share the driver's disk
        device="cuda" if evaluate.use_gpu else "cpu",
        threads=evaluate.cpus_per_actor,
    )


def _check_gpu(config: PareConfig) -> None:
    if config.evaluate.use_gpu and not config.evaluate.ray_address:
        import torch

        if not torch.cuda.is_available():
            raise EvaluationError("evaluate.use_gpu=true but this machine has no CUDA GPU; set evaluate.use_gpu=false")


def actor_gpus(config: PareConfig) -> float:
    """The GPUs each evaluation actor holds."""
    return 1.0 if config.evaluate.use_gpu else 0.0


def model_actors(config: PareConfig) -> contextlib.AbstractContextManager[EvaluationActors]:
    """Evaluation actors that have loaded the model ``config.evaluate`` names, to pass to several evaluations and
    occlusion analyses of it (``shared``); killed when the ``with`` block ends."""
    evaluate = config.evaluate
    init_ray(evaluate.ray_address)
    spec = context_spec(config, resolve_source(config))
    return shared_actors(spec, evaluate.num_actors, evaluate.cpus_per_actor, actor_gpus(config))


def actors_for(evaluate: EvaluateConfig, folders: Sequence[ShardFolder]) -> int:
    """How many new actors an evaluation of ``folders`` starts: ``num_actors``, but at most one per
    ``samples_per_actor`` samples it reads."""
    samples = sum(min(f.total, evaluate.max_samples) if evaluate.max_samples else f.total for f in folders)
    return actors_for_work(samples, evaluate.samples_per_actor, evaluate.num_actors)


def _evaluate_on_actors(config: PareConfig, source, folders, shared: EvaluationActors | None) -> EvalPart:
    """Every sample of ``folders`` measured on :func:`actors_for` new Ray actors, or on ``shared``'s, merged."""
    evaluate = config.evaluate
    actors = actors_for(evaluate, folders)
    units = plan_units(folders, actors, evaluate.max_samples)
    job = functools.partial(evaluate_unit, batch_size=evaluate.batch_size, baseline=evaluate.baseline)
    part = EvalPart()
    spec = context_spec(config, source)
    label = f"evaluate {source.label}"
    for result in run_units(spec, job, units, actors, evaluate.cpus_per_actor, actor_gpus(config), label, shared):
        part.extend(result)
    return part


def _run_info(config: PareConfig, source, folders, part: EvalPart, expected: int, lost: int, damaged) -> dict:
    """What was evaluated and how many samples were expected, unreadable or lost (metrics.json's header)."""
    return {
        "evaluated": source.location or source.label,
        "predictor": config.evaluate.predictor,
        "step": source.step,
        "training_run_id": source.training_run_id or None,
        "shards": [{"uri": f.uri, "samples": f.total, "manifest_sha256": f.digest} for f in folders],
        "without_ground_truth": part.without_ground_truth,
        "missing_joints": part.missing_joints,
        "unreadable": part.unreadable,
        "non_finite_ground_truth": part.non_finite,
        "samples_expected": expected,
        "samples_lost": lost,
        "damaged_shards": damaged,
        "protocol": "H36M-regressor joints, 14 LSP joints centred on the H36M pelvis; a dataset's 3D joints: "
        "slots 0-12 and 18 of SPIN's 24 (J24_TO_J14) centred on slot 14; mm",
    }


def run_evaluation(config: PareConfig, shared: EvaluationActors | None = None) -> EvaluationResult:
    """Evaluate as configured; returns the summary and where the files and the MLflow run are.

    ``shared``: actors already running for this model and these settings
    (:func:`~pipelines.evaluation.workers.shared_actors`), used instead of starting new ones."""
    start = time.monotonic()
    evaluate = config.evaluate
    _check_gpu(config)
    check_output_folder(evaluate.output_dir, "evaluate.output_dir (--out)")
    source = resolve_source(config)
    check_logging(config, source)
    folders, damaged = shard_folders(config)
    init_ray(evaluate.ray_address)
    part = _evaluate_on_actors(config, source, folders, shared)
    if not len(part):
        raise EvaluationError(_nothing_to_evaluate(folders, part))
    found = [name for names in part.subsets for name in names]
    subsets = check_subsets(evaluate.subsets, found)
    if not evaluate.subsets and incomplete_note(found):
        print(incomplete_note(found))
    summary = summarise(part, subsets, evaluate.baseline)
    expected = expected_samples(folders, evaluate.max_samples)
    lost = expected - len(part) - part.without_ground_truth - part.missing_joints - part.non_finite
    info = _run_info(config, source, folders, part, expected, lost, damaged)
    output_dir = Path(evaluate.output_dir)
    files = write_reports(output_dir, part, summary, info, evaluate.baseline)
    params = {f"evaluate.{k}": v for k, v in vars(evaluate).items() if k != "occlusion"}
    logged = log_results(config, source, mlflow_metrics(summary), files, "evaluation", params, "evaluate")
    return EvaluationResult(
        summary,
        output_dir,
        files,
        source,
        logged,
        part.without_ground_truth,
        part.unreadable,
        time.monotonic() - start,
        expected,
        lost,
        tuple(damaged),
        part.missing_joints,
        part.non_finite,
    )


def _nothing_to_evaluate(folders, part: EvalPart) -> str:
    uris = [f.uri for f in folders]
    if part.missing_joints:
        return (
            f"the 3D joints of all {part.missing_joints} samples of {uris} that have them lack a joint the protocol "
            "evaluates (slots 0-12, 18 'Head (H36M)' and 14 'Pelvis (MPII)' of SPIN's 24; docs/data-formats.md); "
            "shards written before the joint convention was fixed put Human3.6M's head elsewhere: run pare preprocess "
            "again"
        )
    return (
        f"no sample of {uris} has 3D ground truth (a fit or 3D joints); "
        "evaluate on test shards such as 3dpw/test or h36m/test"
    )


def summary_text(result: EvaluationResult) -> str:
    lines = [f"Evaluated {result.source.label} in {result.seconds:.0f} s (mm; mean-pose baseline in brackets):"]
    for name, entry in result.summary.items():
        base = entry.get("baseline", {})
        cells = []
        for metric in ("mpjpe", "pa_mpjpe", "pve"):
            if entry.get(metric) is not None:
                extra = f" [{base[metric]:.1f}]" if base.get(metric) is not None else ""
                cells.append(f"{metric.upper().replace('PA_', 'PA-')} {entry[metric]:.1f}{extra}")
        if entry.get("orient_error_median") is not None:
            extra = f" [{base['orient_error_median']:.0f}]" if base.get("orient_error_median") is not None else ""
            cells.append(f"orientation error median {entry['orient_error_median']:.0f} deg{extra}")
        lines.append(f"  {name:10s} {entry['num_samples']:6d} samples  " + "  ".join(cells))
    if result.without_ground_truth or result.unreadable or result.missing_joints:
        missing = (
            f"{result.missing_joints} whose 3D joints lack an evaluated joint (docs/evaluation.md), "
            if result.missing_joints
            else ""
        )
        lines.append(
            f"  left out: {result.without_ground_truth} samples without 3D ground truth, {missing}"
            f"{result.unreadable} unreadable (see pare shards validate)"
        )
    if result.non_finite:
        lines.append(
            f"  EXCLUDED: {result.non_finite} samples whose ground truth holds NaN or infinity (pare shards validate "
            "names them; rebuild the shards with pare preprocess, which rejects such records); the numbers above "
            "cover the rest"
        )
    if result.lost:
        lines.append(
            f"  LOST: {result.lost} of the {result.expected} samples the manifests list were not evaluated "
            "(unreadable, or in damaged shards); the numbers above cover the rest"
        )
    for problem in result.damaged:
        lines.append(f"  damaged shard: {problem}")
    lines.append(f"  files: {result.output_dir.resolve()}")
    if result.logged:
        where = "training run" if result.logged.into_training_run else "evaluation run"
        lines.append(
            f"  MLflow {where} {result.logged.run_id}: mlflow ui --backend-store-uri {result.logged.tracking_uri}"
        )
    return "\n".join(lines)
