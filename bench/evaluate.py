"""Evaluation throughput: samples/s of `pare evaluate` and images/s of the occlusion analysis, on Ray actors.

    .venv/bin/python bench/evaluate.py [--frames 360] [--backbone resnet_small] [--image-size 128]

1. Writes synthetic 3DPW-like test frames and preprocesses them into shards (not timed).
2. Saves an untrained model of the given backbone and input size (speed does not depend on the weights).
3. Times `run_evaluation` with 1 and 2 actors (model + mean-pose baseline, every metric), after a
   warm-up run that starts Ray and the actors' imports, and `run_occlusion_analysis` on 8 images.

Prints figures only: it never passes or fails on time.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=360)
    parser.add_argument("--backbone", default="resnet_small")
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()

    from pare_model.checkpoint import build_model_from_assets, save_model_checkpoint
    from pare_model.model_config import ModelConfig
    from pipelines.config.loader import load_config
    from pipelines.evaluation.job import run_evaluation
    from pipelines.occlusion_sensitivity.job import run_occlusion_analysis
    from pipelines.synthetic_shards import make_synthetic_shards

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        made = make_synthetic_shards(root, 8, args.frames, samples_per_shard=40)
        model_config = ModelConfig(backbone=args.backbone, image_size=args.image_size)
        model = build_model_from_assets(model_config, made.body_model)
        checkpoint = save_model_checkpoint(root / "model.pt", model.network_state_dict(), model_config)
        samples = 0
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
            f"backbone {args.backbone} at {args.image_size} px"
        )
        for actors in (1, 1, 2):  # the first run warms up Ray and the imports
            config = load_config(
                None,
                [
                    f"body_model.asset_dir={made.body_model}",
                    f"evaluate.checkpoint={checkpoint}",
                    f"evaluate.shards=[{made.validation}]",
                    f"evaluate.num_actors={actors}",
                    f"evaluate.output_dir={root / 'eval'}",
                    "evaluate.log_to=none",
                ],
            )
            start = time.perf_counter()
            result = run_evaluation(config)
            seconds = time.perf_counter() - start
            samples = result.summary["3dpw"]["num_samples"]
            print(
                f"evaluate, {actors} actor(s): {samples} samples in {seconds:.1f} s = {samples / seconds:.1f} samples/s "
                "(model + baseline, every metric, including Ray actor start-up)"
            )
        config.evaluate.occlusion.num_images = 8
        config.evaluate.occlusion.output_dir = str(root / "occlusion")
        start = time.perf_counter()
        occlusion = run_occlusion_analysis(config)
        seconds = time.perf_counter() - start
        print(
            f"occlusion analysis, 2 actors: {occlusion.num_images} images x 37 forward passes in {seconds:.1f} s "
            f"= {occlusion.num_images / seconds:.2f} images/s (including figures)"
        )


if __name__ == "__main__":
    main()
