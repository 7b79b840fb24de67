"""Preprocessing throughput: samples/s per core end to end and per stage, and the speed-up of 2 Ray workers.

    .venv/bin/python bench/preprocess.py [--num 300] [--image-size 640] [--repeat 4]

1. Writes a synthetic COCO+EFT source with COCO-sized JPEGs (longer side ``--image-size``).
2. One core, in process: the sample builder over every record (read/decode, crop, fit and
   project, render labels, encode), with seconds per stage.
3. The Ray job (`pare preprocess`) with 1 and then 2 workers on the same records repeated
   ``--repeat`` times under new ids; the build stage's time gives the speed-up.
Prints figures only: it never passes or fails on time.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def synth_source(out: Path, num: int, image_size: int, asset_dir: Path) -> Path:
    from pipelines.commands.synth import run_synth
    from pipelines.config.loader import load_config

    config = load_config(None, [f"body_model.asset_dir={asset_dir}", f"synth.image_size={image_size}"])
    run_synth(config, "coco_eft", out, num, seed=0, occluders=0.3)
    return out


COCO_OPTIONS = {"images": "images/train2014", "eft": "eft_fits/COCO2014-All-ver01.json"}


def single_core(root: Path, asset_dir: Path) -> None:
    import cv2
    import torch

    from preprocessing.readers import build_reader, validated
    from preprocessing.samples import CropConfig, QualityConfig, SampleBuilder
    from preprocessing.synth.bodies import BodyModels

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    records = [r for r in validated(build_reader("coco_eft", str(root), "train", COCO_OPTIONS).records())]
    records = [r for r in records if hasattr(r, "key")]
    builder = SampleBuilder(BodyModels(asset_dir), CropConfig(), QualityConfig())
    builder.build(records[:4])  # compile and warm up
    builder.timings.clear()
    start = time.perf_counter()
    chunk = 64
    written = 0
    for i in range(0, len(records), chunk):
        results = builder.build(records[i : i + chunk])
        written += sum(1 for r in results if hasattr(r, "members"))
    seconds = time.perf_counter() - start
    print(f"\nOne core, in process: {len(records)} records, {written} samples, {len(records) / seconds:.0f} samples/s")
    for stage, value in sorted(builder.timings.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:7s} {1000 * value / len(records):6.2f} ms/sample  ({100 * value / seconds:4.1f}%)")
    other = seconds - sum(builder.timings.values())
    print(f"  {'other':7s} {1000 * other / len(records):6.2f} ms/sample  (part files, JSON, Python)")


def ray_job(root: Path, asset_dir: Path, repeat: int, workers: int, out: Path) -> float:
    from pipelines.config.loader import load_config
    from pipelines.preprocess.job import run_preprocess

    overrides = [
        f"body_model.asset_dir={asset_dir}",
        f"preprocess.output={out}",
        f"preprocess.num_workers={workers}",
        "preprocess.samples_per_shard=500",
    ]
    for k in range(repeat):
        name = f"preprocess.sources.copy{k}"
        overrides += [f"{name}.reader=coco_eft", f"{name}.root={root}", f"{name}.dataset=coco{k}"]
        overrides += [f"{name}.options.{key}={value}" for key, value in COCO_OPTIONS.items()]
    report = run_preprocess(load_config(None, overrides), show_progress=False)
    samples = sum(f.samples for f in report.folders)
    build = report.stage_seconds["build"]
    print(
        f"  {workers} worker(s): {samples} samples, build stage {build:.1f} s = {samples / build:.0f} samples/s "
        f"(pack {report.stage_seconds['pack']:.1f} s, whole job {report.seconds:.1f} s)"
    )
    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=300, help="synthetic records (default 300)")
    parser.add_argument("--image-size", type=int, default=640, help="longer image side (COCO: 640)")
    parser.add_argument("--repeat", type=int, default=4, help="copies of the source in the Ray runs (default 4)")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        tmp = Path(tmp)
        from pipelines.body_model_source import generate_procedural_folder

        asset_dir = generate_procedural_folder(tmp / "body_model", 0)
        root = synth_source(tmp / "coco", args.num, args.image_size, asset_dir)
        single_core(root, asset_dir)
        import ray

        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
        print(f"\nRay job, {args.repeat} x {args.num} records (actor start-up is in the first chunk):")
        one = ray_job(root, asset_dir, args.repeat, 1, tmp / "out1")
        two = ray_job(root, asset_dir, args.repeat, 2, tmp / "out2")
        print(f"  speed-up with 2 workers: {one / two:.2f}x")
        ray.shutdown()


if __name__ == "__main__":
    main()
