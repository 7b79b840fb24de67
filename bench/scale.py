"""How cost grows with the work: `pare preprocess`, the training loader and evaluation from 1k to a million records.

    .venv/bin/python bench/scale.py [--sizes 1000,10000,100000] [--plan-sizes 10000,100000,1000000] [--pool 500]
                                    [--network-resolution 224] [--loader-samples 100000] [--eval-samples 35000]
                                    [--max-rss-mb 6000] [--out outputs/bench-scale]

1. Renders a pool of ``--pool`` synthetic COCO-EFT-like images once. For each size N it writes a COCO-EFT
   source of N annotations that reuse the pool's images under distinct image and annotation ids (the image
   files are links to the pool's), so that synthesis does not dominate.
2. For each N, `pare preprocess` (2 Ray workers, a fresh local Ray cluster) in its own driver process:
   samples/s per core (samples over the workers' busy seconds), the job's time outside building, peak RSS of
   the driver and of the largest Ray worker, manifest and rejects sizes; then the same command again, which
   has nothing to do (the no-op rerun).
   ``--plan-sizes``: for each N, the job's planning step alone in its own driver process, twice: first on a
   fresh output (it converts the annotation files into the columnar cache), then again (the cache is reused):
   seconds, microseconds per record and the driver's peak RSS. Planning streams the records and writes each
   shard's records as its builders' input (``_work``), as the job does; the output is removed afterwards.
   ``--network-resolution`` shrinks the crops (and the build time) so that a full build of a million records
   and its no-op rerun fit in an hour here; planning does not depend on it.
3. The training loader in one process (full augmentation and occlusion, as training draws it) over two
   datasets mixed 0.7 / 0.3, the largest and the second-largest shards: samples/s, RSS after warm-up and its
   peak after that, and the share of each dataset it produced.
4. `pare evaluate` (2 actors, an untrained resnet_small) of the first ``--eval-samples`` samples of the
   largest shards: samples/s and peak RSS of the driver and the largest actor.

Memory is sampled every 0.25 s over the stage's process and all its descendants (Ray's raylet and workers);
"after warm-up" means after the first quarter of the stage's run time. RSS counts the pages of Ray's shared
object store that a process touched. A stage whose driver passes ``--max-rss-mb`` is killed (the run stops
there). Prints tables, writes ``scale.json`` and ``scale.png`` (time and memory against N) to ``--out``.
Figures only: never pass or fail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ANNOTATIONS = "annotations/person_keypoints_train2014.json"
EFT = "eft_fits/COCO2014-All-ver01.json"
IMAGES = "images/train2014"
MIX = (0.7, 0.3)
MB = 1024 * 1024


# --- the sources ---------------------------------------------------------------------------------------------


def make_pool(out: Path, num: int, asset_dir: Path) -> Path:
    from pipelines.config.loader import load_config
    from pipelines.synth import run_synth

    if not (out / ANNOTATIONS).is_file():
        config = load_config(None, [f"body_model.asset_dir={asset_dir}", "synth.pose_variation=0.3"])
        run_synth(config, "coco_eft", out, num, seed=0, occluders=0.3)
    return out


def _templates(items: list[dict], fields: tuple[str, ...]) -> list[str]:
    """``json.dumps`` of each item with ``fields`` set to placeholders that :func:`_fill` replaces."""
    return [json.dumps(dict(item, **{f: SLOT[f] for f in fields})) for item in items]


SLOT = {"id": -7000000000001, "image_id": -7000000000002, "annotId": -7000000000003}


def _fill(template: str, value: int) -> str:
    for slot in SLOT.values():
        template = template.replace(str(slot), str(value))
    return template


def _write_document(path: Path, head: dict, arrays: dict[str, tuple[list[str], int]]) -> None:
    """``json.dumps`` of ``head`` with each of ``arrays``' members (templates, count) streamed into its place:
    the same text as the whole document dumped at once, written without holding it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(partial, "w") as out:
        out.write("{")
        for index, (key, value) in enumerate(head.items()):
            out.write((", " if index else "") + json.dumps(key) + ": ")
            if key not in arrays:
                out.write(json.dumps(value))
                continue
            templates, count = arrays[key]
            out.write("[")
            for k in range(count):
                out.write((", " if k else "") + _fill(templates[k % len(templates)], k + 1))
            out.write("]")
        out.write("}")
    partial.rename(path)


def scaled_source(pool: Path, out: Path, size: int) -> Path:
    """A COCO-EFT source of ``size`` annotations cycling over the pool's, each under new image and annotation ids
    (annotation k and its image both get id k + 1), written as a stream: a million records take no memory."""
    if (out / EFT).is_file():
        return out
    coco = json.loads((pool / ANNOTATIONS).read_text())
    eft = json.loads((pool / EFT).read_text())
    images = {image["id"]: image for image in coco["images"]}
    fits = {entry["annotId"]: entry for entry in eft["data"]}
    pool_annotations = [a for a in coco["annotations"] if a["id"] in fits]
    image_templates = _templates([images[a["image_id"]] for a in pool_annotations], ("id",))
    annotation_templates = _templates(pool_annotations, ("id", "image_id"))
    fit_templates = _templates([fits[a["id"]] for a in pool_annotations], ("annotId",))
    arrays = {"images": (image_templates, size), "annotations": (annotation_templates, size)}
    _write_document(out / ANNOTATIONS, coco, arrays)
    _write_document(out / EFT, eft, {"data": (fit_templates, size)})
    (out / IMAGES).parent.mkdir(parents=True, exist_ok=True)
    if not (out / IMAGES).exists():
        (out / IMAGES).symlink_to((pool / IMAGES).resolve())
    return out


# --- memory ------------------------------------------------------------------------------------------------


@dataclass
class MemoryTrace:
    """RSS over time of a process (the driver) and the largest of its descendants."""

    times: list[float] = field(default_factory=list)
    driver: list[float] = field(default_factory=list)
    worker: list[float] = field(default_factory=list)

    def peak(self, series: str, start: int = 0) -> float:
        """Largest value (MB) of ``series`` from sample ``start`` on."""
        return max(getattr(self, series)[start:], default=0.0)

    def warm(self, fraction: float = 0.25) -> int:
        """Index of the sample that ends the warm-up: ``fraction`` of the stage's run time."""
        return min(int(len(self.times) * fraction), max(len(self.times) - 1, 0))


MAX_RSS_MB = [0.0]
"""Kill a stage whose driver's RSS passes this (0: no limit); set from --max-rss-mb."""


def trace_memory(pid: int, trace: MemoryTrace, stop: threading.Event, every: float = 0.25) -> None:
    import psutil

    start = time.monotonic()
    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            driver = root.memory_info().rss / MB
            rss = []
            for child in root.children(recursive=True):
                try:
                    rss.append(child.memory_info().rss / MB)
                except psutil.Error:
                    continue
        except psutil.Error:
            break
        trace.times.append(time.monotonic() - start)
        trace.driver.append(driver)
        trace.worker.append(max(rss, default=0.0))
        if MAX_RSS_MB[0] and driver > MAX_RSS_MB[0]:
            print(f"stage driver at {driver:.0f} MB, over --max-rss-mb {MAX_RSS_MB[0]:.0f}: killed", flush=True)
            os.killpg(pid, 9)
            break
        stop.wait(every)


def run_stage(args: list[str]) -> tuple[dict, MemoryTrace, float]:
    """``bench/scale.py --stage ...`` in its own process; returns its JSON answer, its memory and its seconds."""
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, so that --max-rss-mb ends its Ray processes too
    )
    trace, stop = MemoryTrace(), threading.Event()
    watcher = threading.Thread(target=trace_memory, args=(process.pid, trace, stop), daemon=True)
    watcher.start()
    out, _ = process.communicate()
    stop.set()
    watcher.join()
    if process.returncode != 0:
        raise SystemExit(f"stage {args} failed (exit {process.returncode}); rerun it alone to see why")
    answer = json.loads(out.strip().splitlines()[-1])
    return answer, trace, time.monotonic() - start


# --- the stages, each in its own process ------------------------------------------------------------------


def job_config(source: Path, output: Path, asset_dir: Path, dataset: str, network_resolution: int):
    from pipelines.config.loader import load_config

    name = "preprocess.sources.scale"
    overrides = [
        f"body_model.asset_dir={asset_dir}",
        f"preprocess.output={output}",
        "preprocess.num_workers=2",
        f"preprocess.crop.network_resolution={network_resolution}",
        f"{name}.reader=coco_eft",
        f"{name}.root={source}",
        f"{name}.dataset={dataset}",
        f"{name}.options.images={IMAGES}",
        f"{name}.options.eft={EFT}",
    ]
    return load_config(None, overrides)


def stage_preprocess(source: Path, output: Path, asset_dir: Path, dataset: str, network_resolution: int) -> dict:
    from pipelines.preprocess.job import run_preprocess

    config = job_config(source, output, asset_dir, dataset, network_resolution)
    report = run_preprocess(config, show_progress=False)
    samples = sum(f.samples for f in report.folders)
    return {"samples": samples, "seconds": report.seconds, "stages": report.stage_seconds}


def stage_plan(source: Path, output: Path, asset_dir: Path, dataset: str) -> dict:
    """The job's planning step alone (as ``run_preprocess`` runs it before Ray starts)."""
    from pipelines.body_model_source import prepare_assets
    from pipelines.io.storage import Storage
    from pipelines.preprocess.job import _plans, annotation_cache, folder_fingerprint
    from pipelines.preprocess.plan import build_readers

    config = job_config(source, output, asset_dir, dataset, 224)
    storage = Storage(config.preprocess.output)
    readers = build_readers(config.preprocess)
    body = folder_fingerprint(prepare_assets(config.body_model))
    for reader in readers.values():
        reader.cache_root = annotation_cache(storage)
    start = time.perf_counter()
    plans, items, _ = _plans(config, readers, storage, body, show_progress=False)
    seconds = time.perf_counter() - start
    return {"records": sum(plan.inputs for plan in plans), "shards": len(items), "seconds": seconds}


def stage_loader(shards: list[str], samples: int) -> dict:
    import collections

    import psutil

    from pipelines.config.train import LoaderConfig
    from pipelines.data.stream import MixSource, TrainStream

    sources = []
    for folder, ratio, name in zip(shards, MIX, ("a", "b"), strict=True):
        urls = tuple(str(p) for p in sorted(Path(folder).glob("*.tar")))
        sources.append(MixSource(name, urls, (1.0,) * len(urls), ratio))
    stream = iter(TrainStream(sources, LoaderConfig(), 224, 0, 1, 0))
    for _ in range(3 * LoaderConfig().shuffle_buffer):
        next(stream)  # warm up: open shards, build the occluders, fill both shuffle buffers (one per source)
    warm = psutil.Process().memory_info().rss / MB
    counts: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    for _ in range(samples):
        counts[next(stream)["dataset"]] += 1
    return {"samples": samples, "seconds": time.perf_counter() - start, "rss_warm": warm, "counts": dict(counts)}


def stage_evaluate(shards: str, asset_dir: Path, samples: int, out: Path) -> dict:
    from pare_model.checkpoint import build_model_from_assets, save_model_checkpoint
    from pare_model.model_config import ModelConfig
    from pipelines.config.loader import load_config
    from pipelines.evaluation.job import run_evaluation

    model_config = ModelConfig(backbone="resnet_small", image_size=128, num_branch_filters=32, num_features_smpl=32)
    model = build_model_from_assets(model_config, asset_dir)
    checkpoint = save_model_checkpoint(out / "model.pt", model.network_state_dict(), model_config)
    config = load_config(
        None,
        [
            f"body_model.asset_dir={asset_dir}",
            f"evaluate.checkpoint={checkpoint}",
            f"evaluate.shards=[{shards}]",
            f"evaluate.max_samples={samples}",
            "evaluate.num_actors=2",
            f"evaluate.output_dir={out / 'evaluate'}",
            "evaluate.log_to=none",
        ],
    )
    start = time.perf_counter()
    result = run_evaluation(config)
    done = max(entry["num_samples"] for entry in result.summary.values())  # subsets may overlap: the largest
    return {"samples": done, "seconds": time.perf_counter() - start}


# --- the orchestration ----------------------------------------------------------------------------------------


def file_size(folder: Path, name: str) -> int:
    return sum(p.stat().st_size for p in folder.rglob(name))


def measure_plan(root: Path, pool: Path, asset_dir: Path, size: int) -> dict:
    source = scaled_source(pool, root / f"source-{size}", size)
    output = root / f"plan-{size}"
    shutil.rmtree(output, ignore_errors=True)
    args = ["--stage", "plan", str(source), str(output), str(asset_dir), f"scale{size}"]
    first, first_trace, _ = run_stage(args)  # converts the annotation files into the cache beside the output
    again, again_trace, _ = run_stage(args)  # reuses the cache
    shutil.rmtree(output, ignore_errors=True)
    return {
        "size": size,
        "source_mb": sum(p.stat().st_size for p in source.rglob("*.json")) / MB,
        "records": first["records"],
        "convert_plan_s": first["seconds"],
        "plan_s": again["seconds"],
        "plan_us_per_record": 1e6 * again["seconds"] / max(again["records"], 1),
        "convert_driver_mb": first_trace.peak("driver"),
        "driver_mb": again_trace.peak("driver"),
    }


def measure_preprocess(root: Path, pool: Path, asset_dir: Path, size: int, network_resolution: int) -> dict:
    source = scaled_source(pool, root / f"source-{size}", size)
    output = root / f"shards-{size}-{network_resolution}"
    shutil.rmtree(output, ignore_errors=True)  # the first run builds everything, the second has nothing to do
    args = ["--stage", "preprocess", str(source), str(output), str(asset_dir), f"scale{size}", str(network_resolution)]
    job, trace, wall = run_stage(args)
    rerun, _, rerun_wall = run_stage(args)
    stages = job["stages"]
    busy = stages.get("build_busy", stages.get("build", 0.0))
    return {
        "size": size,
        "network_resolution": network_resolution,
        "samples": job["samples"],
        "wall_s": wall,
        "job_s": job["seconds"],
        "ms_per_sample": 1000 * busy / max(job["samples"], 1),
        "per_core": job["samples"] / max(busy, 1e-9),
        "outside_build_s": job["seconds"] - stages.get("build", 0.0),
        "plan_finish_s": stages.get("plan", 0.0) + stages.get("finish", 0.0),
        "ray_start_s": stages.get("ray_init", 0.0),
        "driver_mb": trace.peak("driver"),
        "worker_mb": trace.peak("worker"),
        "manifest_kb": file_size(output, "manifest.json") / 1024,
        "rejects_kb": file_size(output, "rejects.jsonl") / 1024,
        "rerun_s": rerun_wall,
        "rerun_job_s": rerun["seconds"],
        "shards": str(next(output.glob("*/*/manifest.json")).parent),
    }


def measure_loader(big: str, small: str, samples: int) -> dict:
    answer, trace, _ = run_stage(["--stage", "loader", big, small, str(samples)])
    counts = answer["counts"]
    total = sum(counts.values())
    share = {name: count / total for name, count in sorted(counts.items())}
    return {
        "samples": total,
        "per_s": total / answer["seconds"],
        "rss_warm_mb": answer["rss_warm"],
        "rss_peak_after_warm_mb": trace.peak("driver", trace.warm()),
        "share": share,
    }


def measure_evaluate(shards: str, asset_dir: Path, samples: int, out: Path) -> dict:
    answer, trace, wall = run_stage(["--stage", "evaluate", shards, str(asset_dir), str(samples), str(out)])
    return {
        "samples": answer["samples"],
        "per_s": answer["samples"] / answer["seconds"],
        "driver_mb": trace.peak("driver"),
        "actor_warm_mb": trace.worker[trace.warm()] if trace.worker else 0.0,
        "actor_peak_after_warm_mb": trace.peak("worker", trace.warm()),
        "wall_s": wall,
    }


def print_plan_table(rows: list[dict]) -> None:
    print(
        "\n| N | source MB | first plan s (converts) | its driver MB | plan s (cache) | us/record | driver MB |\n"
        "| --- | --- | --- | --- | --- | --- | --- |"
    )
    for r in rows:
        print(
            f"| {r['size']} | {r['source_mb']:.0f} | {r['convert_plan_s']:.1f} | {r['convert_driver_mb']:.0f} | "
            f"{r['plan_s']:.1f} | {r['plan_us_per_record']:.0f} | {r['driver_mb']:.0f} |"
        )


def print_table(rows: list[dict], loader: dict | None, evaluation: dict | None) -> None:
    print(
        "\n| N | crop px | samples | job s | ms/sample (build) | samples/s per core | plan + finish s | Ray start s | "
        "driver MB | largest worker MB | manifest KB | rejects KB | no-op rerun s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['size']} | {r['network_resolution']} | {r['samples']} | {r['job_s']:.1f} | "
            f"{r['ms_per_sample']:.2f} | {r['per_core']:.0f} | {r['plan_finish_s']:.1f} | {r['ray_start_s']:.1f} | "
            f"{r['driver_mb']:.0f} | {r['worker_mb']:.0f} | {r['manifest_kb']:.0f} | {r['rejects_kb']:.1f} | "
            f"{r['rerun_s']:.1f} |"
        )
    if loader:
        share = ", ".join(f"{name} {100 * value:.2f} %" for name, value in loader["share"].items())
        print(
            f"\nloader: {loader['samples']} samples at {loader['per_s']:.0f} samples/s (one process); RSS "
            f"{loader['rss_warm_mb']:.0f} MB after warm-up, peak {loader['rss_peak_after_warm_mb']:.0f} MB after; "
            f"mix {share} (configured {100 * MIX[0]:.0f} / {100 * MIX[1]:.0f})"
        )
    if evaluation:
        print(
            f"evaluate: {evaluation['samples']} samples at {evaluation['per_s']:.1f} samples/s (2 actors); driver "
            f"peak {evaluation['driver_mb']:.0f} MB; largest actor {evaluation['actor_warm_mb']:.0f} MB after "
            f"warm-up, peak {evaluation['actor_peak_after_warm_mb']:.0f} MB after"
        )


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    sizes = [r["size"] for r in rows]
    left, right = figure.subplots(1, 2)
    left.plot(sizes, [r["ms_per_sample"] for r in rows], "o-", label="build ms per sample")
    left.plot(
        sizes, [1000 * r["outside_build_s"] / r["samples"] for r in rows], "s-", label="outside build, ms per sample"
    )
    left.set(xscale="log", xlabel="records N", ylabel="ms per sample", title="time per sample")
    left.legend()
    right.plot(sizes, [r["driver_mb"] for r in rows], "o-", label="driver")
    right.plot(sizes, [r["worker_mb"] for r in rows], "s-", label="largest Ray worker")
    right.set(xscale="log", xlabel="records N", ylabel="peak RSS (MB)", title="memory")
    right.legend()
    figure.suptitle("pare preprocess at growing N (2 workers; bench/scale.py)")
    figure.savefig(path, dpi=90)


def run_child(argv: list[str]) -> None:
    """One stage in this process: prints its JSON answer as the last line."""
    stage, rest = argv[0], argv[1:]
    if stage == "preprocess":
        answer = stage_preprocess(Path(rest[0]), Path(rest[1]), Path(rest[2]), rest[3], int(rest[4]))
    elif stage == "plan":
        answer = stage_plan(Path(rest[0]), Path(rest[1]), Path(rest[2]), rest[3])
    elif stage == "loader":
        answer = stage_loader(rest[:2], int(rest[2]))
    else:
        answer = stage_evaluate(rest[0], Path(rest[1]), int(rest[2]), Path(rest[3]))
    print(json.dumps(answer), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--stage":
        run_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="records per preprocessing run ('' for none)")
    parser.add_argument("--plan-sizes", default="", help="records per planning-only run, e.g. 10000,100000,1000000")
    parser.add_argument("--network-resolution", type=int, default=224, help="preprocess.crop.network_resolution")
    parser.add_argument("--max-rss-mb", type=float, default=6000, help="kill a stage whose driver passes this")
    parser.add_argument("--pool", type=int, default=500, help="distinct rendered images the sources reuse")
    parser.add_argument("--loader-samples", type=int, default=100_000)
    parser.add_argument("--eval-samples", type=int, default=35_000)
    parser.add_argument("--out", default="outputs/bench-scale", help="work folder (kept: a rerun reuses the sources)")
    args = parser.parse_args()
    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    from pipelines.body_model_source import generate_procedural_folder

    asset_dir = root / "body_model"
    if not asset_dir.is_dir():
        generate_procedural_folder(asset_dir, 0)
    pool = make_pool(root / "pool", args.pool, asset_dir)
    MAX_RSS_MB[0] = args.max_rss_mb
    plan_rows = []
    for size in sorted(int(s) for s in args.plan_sizes.split(",") if s):
        plan_rows.append(measure_plan(root, pool, asset_dir, size))
        print(f"plan N={size}: {json.dumps(plan_rows[-1])}", flush=True)
    rows = []
    for size in sorted(int(s) for s in args.sizes.split(",") if s):
        rows.append(measure_preprocess(root, pool, asset_dir, size, args.network_resolution))
        print(f"N={size}: {json.dumps(rows[-1])}", flush=True)
    loader = evaluation = None
    if len(rows) >= 2 and args.loader_samples:
        loader = measure_loader(rows[-1]["shards"], rows[-2]["shards"], args.loader_samples)
    if rows and args.eval_samples:
        evaluation = measure_evaluate(rows[-1]["shards"], asset_dir, args.eval_samples, root / "eval")
    if plan_rows:
        print_plan_table(plan_rows)
    if rows:
        print_table(rows, loader, evaluation)
        plot(rows, root / "scale.png")
    (root / "scale.json").write_text(
        json.dumps({"plan": plan_rows, "preprocess": rows, "loader": loader, "evaluate": evaluation}, indent=1)
    )
    print(f"\n{root / 'scale.json'}" + (f", {root / 'scale.png'}" if rows else ""))


if __name__ == "__main__":
    main()
