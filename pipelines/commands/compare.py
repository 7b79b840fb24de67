"""``pare compare --experiment NAME``: params, final and best metrics and curves of MLflow runs side by side."""

from __future__ import annotations

import argparse
import re
from pathlib import Path


def default_out(experiment: str) -> Path:
    """``outputs/compare/<experiment>``, the name made safe for a folder (MLflow names may hold slashes)."""
    return Path("outputs") / "compare" / (re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("._") or "experiment")


def _compare(args: argparse.Namespace) -> int:
    from pipelines.compare.report import write_report
    from pipelines.compare.runs import log_comparison_run, read_comparison

    comparison = read_comparison(args.tracking_uri, args.experiment, args.runs, args.metrics)
    text, files = write_report(comparison, Path(args.out) if args.out else default_out(args.experiment))
    print(text)
    print("Wrote " + ", ".join(str(path) for path in files.all()))
    if args.log_artifacts:
        run_id = log_comparison_run(comparison, files.all())
        print(f"Logged the report as run compare-{args.experiment} ({run_id}) in experiment {args.experiment!r}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare MLflow runs: differing params, final and best metrics, curves",
        description="Read the runs of an MLflow experiment and write comparison.md, comparison.csv, curves.png and "
        "bars.png: the params that differ, each metric's final and best value per run (best run in bold), every "
        "run's metric history and a bar chart of final values.",
    )
    parser.add_argument("--experiment", required=True, help="MLflow experiment name")
    parser.add_argument("--runs", nargs="+", metavar="ID_OR_NAME", help="only these runs, by run id or run name")
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help="metrics to compare (default: every val/* and eval/*, train/loss)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI; training's default store is "
        "sqlite:///<storage_path>/mlflow.db)",
    )
    parser.add_argument("--out", default=None, help="output folder (default: outputs/compare/<experiment>)")
    parser.add_argument(
        "--log-artifacts",
        action="store_true",
        help="also log the four files as a new run compare-<experiment> in the same experiment",
    )
    parser.set_defaults(handler=_compare)
