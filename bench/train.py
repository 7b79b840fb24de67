"""Training throughput: steps/s, samples/s and the loader-wait fraction per precision and Ray Train worker count.

    .venv/bin/python bench/train.py [--steps 200] [--backbone resnet_small] [--image-size 128] [--batch 16]
    .venv/bin/python bench/train.py --precisions fp32,auto --rounds 2 --workers 2 --branch-filters 32  # quickstart's
    .venv/bin/python bench/train.py --backbone hrnet_w32 --image-size 224 --batch 64 --gpu --precisions fp32,bf16

Writes synthetic shards (as bench/loader.py), then runs `pare train`'s job for ``--steps`` steps per precision and
worker count, ``--rounds`` times with the precisions interleaved (so that a machine whose load changes during the
run slows them alike), and reads the per-step figures the loop logs to MLflow (their mean after the first logging
window, which holds start-up). ``compute`` is samples/s over the step time less the loader wait. The table ends
with each precision's median over the rounds against the first one's. Prints figures only: it never passes or
fails on time.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def training_overrides(root: Path, shards: Path, assets: Path, workers: int, args) -> list[str]:
    """The `pare train` overrides for ``workers`` Ray Train workers with ``args``' settings (this script's options:
    steps, backbone, image_size, batch, loader_workers, cpus_per_worker, log_every, gpu, precision)."""
    storage = root / f"train-{workers}"
    overrides = [
        f"body_model.asset_dir={assets}",
        f"data.datasets.coco.shards=[{shards}]",
        f"model.backbone={args.backbone}",
        f"model.image_size={args.image_size}",
        f"loader.batch_size={args.batch}",
        f"loader.num_workers={args.loader_workers}",
        f"train.storage_path={storage}",
        f"train.num_workers={workers}",
        f"train.max_steps={args.steps}",
        f"train.log_every={args.log_every}",
        "train.images_every=0",
        f"train.checkpoint_every={args.steps}",
        f"train.validate_every={args.steps}",
        f"train.use_gpu={str(args.gpu).lower()}",
        f"train.precision={args.precision}",
        f"train.cpus_per_worker={args.cpus_per_worker}",
        "tracking.system_metrics=false",
    ]
    if args.backbone in ("debug", "resnet_small"):
        width = args.branch_filters
        overrides += [f"model.num_branch_filters={width}", f"model.num_features_smpl={width}"]
    return overrides


def read_figures(result, batch: int, workers: int) -> dict[str, float]:
    """steps/s, samples/s and the loader-wait share of step time of a finished run (a ``TrainingResult``), from the
    per-window figures the loop logged to MLflow: their mean after the first window, which holds start-up."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(result.tracking_uri)

    def mean(key: str) -> float:
        values = [m.value for m in client.get_metric_history(result.run_id, key)][1:]  # skip the start-up window
        return sum(values) / max(len(values), 1)

    rate, wait = mean("train/samples_per_s"), mean("train/loader_wait_fraction")
    return {
        "samples_per_s": rate,
        "steps_per_s": rate / (batch * workers),
        "wait": wait,
        "compute_per_s": rate / (1 - wait) if wait < 1 else float("nan"),
    }


def measure(root: Path, shards: Path, assets: Path, workers: int, args) -> dict[str, float]:
    from pipelines.config.loader import load_config
    from pipelines.training.job import run_training

    result = run_training(load_config(None, training_overrides(root, shards, assets, workers, args)))
    return read_figures(result, args.batch, workers)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--backbone", default="resnet_small")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16, help="per worker")
    parser.add_argument("--loader-workers", type=int, default=0, help="loader processes per training worker")
    parser.add_argument("--workers", default="1,2", help="Ray Train worker counts to measure")
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument(
        "--branch-filters",
        type=int,
        default=16,
        help="PARE branch width of the small backbones (the CPU configs use 32)",
    )
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--precisions", default="auto", help="train.precision values, e.g. fp32,auto")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every precision, interleaved")
    parser.add_argument("--num", type=int, default=400, help="synthetic source people")
    return parser.parse_args()


def summary(rows: list[tuple[str, int, dict[str, float]]], precisions: list[str], workers: list[int]) -> list[str]:
    """Per worker count, each precision's median samples/s (and compute) over the rounds against the first one's."""
    import statistics

    lines = []
    for count in workers:
        medians = {
            p: {
                key: statistics.median(f[key] for q, w, f in rows if q == p and w == count)
                for key in ("samples_per_s", "compute_per_s")
            }
            for p in precisions
        }
        base = medians[precisions[0]]
        for precision, median in medians.items():
            lines.append(
                f"{count} worker(s), {precision}: median {median['samples_per_s']:.1f} samples/s "
                f"({median['samples_per_s'] / base['samples_per_s']:.2f}x {precisions[0]}), compute "
                f"{median['compute_per_s']:.1f} ({median['compute_per_s'] / base['compute_per_s']:.2f}x)"
            )
    return lines


def main() -> None:
    args = parse_args()
    precisions, workers = args.precisions.split(","), [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        from pipelines.synthetic_shards import make_synthetic_shards
        from pipelines.training.precision import resolve_precision

        made = make_synthetic_shards(root, args.num, image_size=640)
        shards, assets = made.train, made.body_model
        import torch

        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f} at the start; backbone {args.backbone} at {args.image_size} px, batch "
            f"{args.batch} per worker, {args.loader_workers} loader processes per worker, {args.steps} steps"
        )
        print(f"auto on this machine's CPU: {resolve_precision('auto', True, torch.device('cpu')).describe()}")
        print("| precision | round | workers | steps/s | samples/s | compute samples/s | loader wait |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        rows = []
        for round_index in range(args.rounds):
            for precision in precisions:
                for count in workers:
                    args.precision = precision
                    figures = measure(root / f"{precision}-{round_index}", shards, assets, count, args)
                    rows.append((precision, count, figures))
                    print(
                        f"| {precision} | {round_index + 1} | {count} | {figures['steps_per_s']:.2f} | "
                        f"{figures['samples_per_s']:.1f} | {figures['compute_per_s']:.1f} | "
                        f"{100 * figures['wait']:.0f} % |",
                        flush=True,
                    )
        print("\n".join(summary(rows, precisions, workers)))


if __name__ == "__main__":
    main()
