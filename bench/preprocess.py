"""Preprocessing throughput: samples/s per core end to end and per stage, and the speed-up of 2 Ray workers.

    .venv/bin/python bench/preprocess.py [--num 200] [--image-size 640] [--repeat 10]

1. Writes a synthetic COCO+EFT source with COCO-sized JPEGs (longer side ``--image-size``).
2. One core, in process: the sample builder over every record (read/decode, crop, fit and
   project, render labels, encode), with seconds per stage.
3. The Ray job (`pare preprocess`) with 1 and then 2 workers on the same records repeated
   ``--repeat`` times under new ids. Per run: the whole build stage (with actor start-up) and
   the steady build (first shard start to last shard end on the workers, writes included),
   whose rates give samples/s per core end to end and the speed-up; and the bytes the job
   wrote per sample, by kind of file (it runs with ``keep_work=true`` on a fresh folder, so every
   file it wrote is still there, each written once).
Prints figures only: it never passes or fails on time.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def synth_source(out: Path, num: int, image_size: int, asset_dir: Path) -> Path:
    from pipelines.config.loader import load_config
    from pipelines.synth import run_synth

    config = load_config(None, [f"body_model.asset_dir={asset_dir}", f"synth.image_size={image_size}"])
    run_synth(config, "coco_eft", out, num, seed=0, occluders=0.3)
    return out


COCO_OPTIONS = {"images": "images/train2014", "eft": "eft_fits/COCO2014-All-ver01.json"}


def build_in_process(root: Path, asset_dir: Path, passes: int = 1):
    """Run the sample builder over the source's records ``passes`` times on one thread.

    Returns (builder, records, samples written, seconds).
    """
    import cv2
    import torch

    from preprocessing.bodies import BodyModels
    from preprocessing.readers import build_reader, validated
    from preprocessing.samples import CropConfig, QualityConfig
    from preprocessing.samples.build import SampleBuilder

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    records = [r for r in validated(build_reader("coco_eft", str(root), "train", COCO_OPTIONS).records())]
    records = [r for r in records if hasattr(r, "key")]
    builder = SampleBuilder(BodyModels(asset_dir), CropConfig(), QualityConfig())
    builder.build(records[:4])  # compile and warm up
    builder.timings.clear()
    start = time.perf_counter()
    written = 0
    for _ in range(passes):
        for i in range(0, len(records), 64):
            results = builder.build(records[i : i + 64])
            written += sum(1 for r in results if hasattr(r, "members"))
    return builder, records, written, time.perf_counter() - start


def _rate_of_one_process(args) -> float:
    _, _, written, seconds = build_in_process(*args)
    return written / seconds


def machine_ceiling(root: Path, asset_dir: Path, passes: int) -> None:
    """Two plain processes building at once, no Ray: what this machine allows two workers at best."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        rates = pool.map(_rate_of_one_process, [(root, asset_dir, passes)] * 2)
    print(f"  machine ceiling: 2 plain processes without Ray build {sum(rates):.0f} samples/s together")


def single_core(root: Path, asset_dir: Path) -> None:
    builder, records, written, seconds = build_in_process(root, asset_dir)
    print(f"\nOne core, in process: {len(records)} records, {written} samples, {len(records) / seconds:.0f} samples/s")
    for stage, value in sorted(builder.timings.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:7s} {1000 * value / len(records):6.2f} ms/sample  ({100 * value / seconds:4.1f}%)")
    other = seconds - sum(builder.timings.values())
    print(f"  {'other':7s} {1000 * other / len(records):6.2f} ms/sample  (Python, JSON)")


def written_bytes(out: Path) -> Counter:
    """Bytes of the files under a job's fresh output folder, by kind (work files kept)."""
    kinds: Counter = Counter()
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        if path.parent.name == "_work":
            kind = "part files" if path.suffix == ".tar" else "work JSON"
        else:
            kind = "shards" if path.name.startswith("shard-") else "manifest+rejects"
        kinds[kind] += path.stat().st_size
    return kinds


def print_written(out: Path, samples: int) -> None:
    kinds = written_bytes(out)
    parts = ", ".join(f"{kind} {kinds[kind] / samples:.0f}" for kind in sorted(kinds))
    print(f"  bytes written per sample: {sum(kinds.values()) / samples:.0f} ({parts})")


def ray_job(root: Path, asset_dir: Path, repeat: int, workers: int, out: Path, chunk_size: int) -> float:
    """Run the job; prints its figures and returns the steady build rate in samples/s."""
    from pipelines.config.loader import load_config
    from pipelines.preprocess.job import run_preprocess

    overrides = [
        f"body_model.asset_dir={asset_dir}",
        f"preprocess.output={out}",
        f"preprocess.num_workers={workers}",
        "preprocess.samples_per_shard=500",
        f"preprocess.chunk_size={chunk_size}",
        "preprocess.keep_work=true",  # so that every file the job wrote can be counted
    ]
    for k in range(repeat):
        name = f"preprocess.sources.copy{k}"
        overrides += [f"{name}.reader=coco_eft", f"{name}.root={root}", f"{name}.dataset=coco{k}"]
        overrides += [f"{name}.options.{key}={value}" for key, value in COCO_OPTIONS.items()]
    report = run_preprocess(load_config(None, overrides), show_progress=False)
    samples = sum(f.samples for f in report.folders)
    stages = report.stage_seconds
    build, busy, steady = stages["build"], stages["build_busy"], stages["steady_records_per_s"]
    # "pack": the copy stage of the versions before write-once shards, so that this script measures them too
    later = "".join(f"{stage} {stages[stage]:.1f} s, " for stage in ("pack", "finish") if stage in stages)
    print(
        f"  {workers} worker(s): {samples} samples; build stage {build:.1f} s = {samples / build:.0f} samples/s "
        f"with actor start-up; {steady:.0f} samples/s while all workers ran ({stages['build_steady']:.1f} s); "
        f"{samples / busy:.0f} samples/s per busy worker ({later}whole job {report.seconds:.1f} s)"
    )
    print_written(out, samples)
    return steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=200, help="synthetic records (default 200)")
    parser.add_argument("--image-size", type=int, default=640, help="longer image side (COCO: 640)")
    parser.add_argument("--repeat", type=int, default=10, help="copies of the source in the Ray runs (default 10)")
    parser.add_argument(
        "--chunk-size", type=int, default=128, help="records per body-model batch (default 128, the job's)"
    )
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
        print(f"\nRay job, {args.repeat} x {args.num} records, batches of {args.chunk_size}, shards of 500:")
        one = ray_job(root, asset_dir, args.repeat, 1, tmp / "out1", args.chunk_size)
        two = ray_job(root, asset_dir, args.repeat, 2, tmp / "out2", args.chunk_size)
        print(
            f"  end to end, 1 worker: {one:.0f} samples/s per core; speed-up with 2 workers (steady): {two / one:.2f}x"
        )
        ray.shutdown()
        machine_ceiling(root, asset_dir, passes=max(1, args.repeat // 2))


if __name__ == "__main__":
    main()
