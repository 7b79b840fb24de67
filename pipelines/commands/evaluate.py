"""``pare evaluate``, ``pare occlusion-analysis`` and ``pare attention``: measure and look at a trained model."""

from __future__ import annotations

import argparse
import re

from pare_model.errors import UserFacingError
from pipelines.commands.config import _split_config_args

OVERRIDE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*=")
"""The start of a ``key=value`` override; a shard folder never starts so (``s3://b/date=1`` has its ``=`` after a
``/``)."""


def _settings_after_shards(args: argparse.Namespace) -> list[str]:
    """The config file and overrides the user gave after ``--shards`` (whose ``nargs='+'`` takes every word up to the
    next option), moved from the shard folders to the settings, in order; the settings."""
    shards = args.shards or []
    config_files = [value for value in shards if value.endswith((".yaml", ".yml"))]
    overrides = [value for value in shards if OVERRIDE.match(value)]
    args.shards = [value for value in shards if value not in config_files and value not in overrides] or None
    settings = list(args.args)
    if config_files:
        if len(config_files) > 1 or (settings and "=" not in settings[0]):
            raise UserFacingError(
                f"more than one config file given ({', '.join(([settings[0]] if settings else []) + config_files)}); "
                "pass one, before the key=value overrides"
            )
        settings = config_files + settings
    if args.shards is None and shards:
        raise UserFacingError(f"--shards names no shard folder, only settings ({' '.join(shards)}); add the folder")
    return settings + overrides


def _config(args: argparse.Namespace):
    from pipelines.config.loader import load_config

    path, overrides = _split_config_args(_settings_after_shards(args))
    flags = {"checkpoint": args.checkpoint, "run_id": args.run}
    overrides = [*overrides, *(f"evaluate.{key}={value}" for key, value in flags.items() if value)]
    if args.shards:
        overrides.append(f"evaluate.shards=[{','.join(args.shards)}]")
    if args.out:
        key = "evaluate.occlusion.output_dir" if args.command == "occlusion-analysis" else "evaluate.output_dir"
        overrides.append(f"{key}={args.out}")
    return load_config(path, overrides)


def _evaluate(args: argparse.Namespace) -> int:
    from pipelines.evaluation.job import run_evaluation, summary_text

    print(summary_text(run_evaluation(_config(args))))
    return 0


def _occlusion(args: argparse.Namespace) -> int:
    from pipelines.occlusion_sensitivity.job import run_occlusion_analysis, summary_text

    print(summary_text(run_occlusion_analysis(_config(args))))
    return 0


def _attention(args: argparse.Namespace) -> int:
    from pipelines.evaluation.attention import run_attention_pictures

    config = _config(args)
    files = run_attention_pictures(config, args.num, args.out or "outputs/attention")
    print(f"{len(files) - 1} attention pictures and a contact sheet -> {files[-1].parent.resolve()}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="model checkpoint: `pare train`'s model.pt or a released PARE .ckpt")
    parser.add_argument("--run", help="MLflow run id of a `pare train` run (its best model; results logged to it)")
    parser.add_argument(
        "--shards",
        nargs="+",
        metavar="DIR",
        help="shard folders (`pare preprocess` output); a config file or key=value override after them still counts",
    )
    parser.add_argument("--out", help="output folder")
    parser.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]", help="a YAML config file and/or overrides"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="MPJPE, PA-MPJPE and PVE on test shards (3DPW, 3DPW-OCC, Human3.6M P2), on Ray actors",
        description=(
            "PARE's protocol (H36M-regressor joints, 14 LSP joints, pelvis-centred, mm) per subset, joint, sequence "
            "and sample, with the mean-pose baseline. Writes metrics.json, CSVs and a chart to evaluate.output_dir and "
            "logs them to the training run in MLflow (evaluate.log_to)."
        ),
    )
    _common(evaluate)
    evaluate.set_defaults(handler=_evaluate)
    occlusion = subparsers.add_parser(
        "occlusion-analysis",
        help="the paper's occlusion sensitivity analysis: per-joint error heatmaps and a part-sensitivity mesh",
        description=(
            "Slide a grey patch (evaluate.occlusion.patch_size / stride on the 224 input) over each image, measure "
            "per-joint MPJPE and PA-MPJPE at every position, and draw the paper's Figure 1 (per-joint error heatmaps) "
            "and Figure 3 (the body coloured by how much occluding each part raises the error)."
        ),
    )
    _common(occlusion)
    occlusion.set_defaults(handler=_occlusion)
    attention = subparsers.add_parser(
        "attention",
        help="pictures of the 24 part-attention maps over the crops of test shards",
        description="For the first --num images of the shards: the crop, the 2D part branch and the 24 attention maps.",
    )
    _common(attention)
    attention.add_argument("--num", type=int, default=8, help="images (default 8)")
    attention.set_defaults(handler=_attention)
