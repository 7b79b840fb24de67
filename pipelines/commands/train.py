"""``pare train CONFIG [key=value ...]``: train PARE on Ray Train, tracked in MLflow."""

from __future__ import annotations

import argparse

from pipelines.commands.config import _split_config_args


def _run(args: argparse.Namespace) -> int:
    from pipelines.config.loader import load_config

    path, overrides = _split_config_args(args.args)
    config = load_config(path, overrides)  # a mistake in it is reported before torch and Ray are imported
    from pipelines.training.job import run_training

    result = run_training(config)
    resumed = " (resumed)" if result.resumed else ""
    print(
        "\n".join(
            [
                f"Training run '{result.run_name}'{resumed} finished at step {result.steps} in {result.seconds:.0f} s.",
                f"  best validation PA-MPJPE: {result.best_pa_mpjpe:.1f} mm",
                f"  latest model: {result.checkpoint}",
                f"  best model:   {result.best_checkpoint} (use with pare predict, or train.init_checkpoint)",
                f"  MLflow run {result.run_id} at {result.tracking_uri}"
                + (f"; registered model {result.registered_model}" if result.registered_model else ""),
                f"  open it with: mlflow ui --backend-store-uri {result.tracking_uri}",
            ]
        )
    )
    if result.skipped_samples:
        print(
            f"  SKIPPED: the loaders dropped {result.skipped_samples} samples or shard reads (unreadable, or ground "
            "truth with NaN or infinity); check the shards with `pare shards validate`"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train PARE on shards with Ray Train (DDP), tracked in MLflow",
        description=(
            "Train on the shard folders in data.datasets, mixed by data.stages, with train.num_workers Ray Train "
            "workers (CPU/gloo or GPU/NCCL). Checkpoints go to train.storage_path/train.run_name; rerunning the "
            "same command resumes. Runs are logged to tracking.tracking_uri (default: sqlite under a local storage_path; an s3:// "
            "storage_path needs a tracking server)."
        ),
    )
    parser.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]", help="a YAML config file and/or overrides"
    )
    parser.set_defaults(handler=_run)
