"""The spread of the suite's learning assertions over seeds and the CPU kernels torch can pick on one machine.

    .venv/bin/python -m bench.learning_spread                    # the learning-sanity fits: 5 seeds x 3 kernel sets
    .venv/bin/python -m bench.learning_spread --trained --seeds 0 1 2   # the shared trained model's checks too

A learning test's outcome depends on the code, the samples, the thread count and the CPU kernels: another
machine's instruction set picks other kernels (other rounding), and a few hundred Adam steps turn a last-bit
difference into another trajectory. This script measures what the suite asserts, the way the tests compute it,
for each seed and each ``ATEN_CPU_CAPABILITY`` torch offers here (``default``, ``avx2`` and the native one, in
fresh processes since torch reads it at import), and prints the figures beside the tests' limits:

1. tests/test_learning_sanity.py: 8 training samples fitted without augmentation (500 steps) and with the full
   augmentation (1000 steps); median orientation error and MPJPE of the plain and mirrored views, on one thread
   as the tests run them (its functions are used as they are);
2. ``--trained``: `pare train configs/train_synthetic.yaml` on the suite's shards (the ``trained_run`` fixture's
   command) with ``train.seed``: the training loss and val/mpjpe, which tests/test_train_job.py checks (the loss falls below 0.2 of its first
   window; val/mpjpe falls from step 200 to 600), beside val/baseline_pa_mpjpe.

The shards and the body model are the suite's (tests/train_helpers.py), made once under ``--work``. Run it as a
module from the repository root (``-m``), which puts the root on the import path for the tests' helpers. Prints
figures only; about 2 minutes of one core per fit, 5-10 minutes per training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ROOT = Path(__file__).resolve().parents[1]
CAPABILITIES = ("default", "avx2", "native")
"""``ATEN_CPU_CAPABILITY`` values measured; ``native`` leaves it unset (torch's best for this CPU)."""
FITS = ("plain", "augmented")


def prepare(work: Path) -> tuple[Path, Path]:
    """(body model folder, shards folder) of the suite, made once under ``work``."""
    from pare_model.body_model.procedural.files import write_asset_folder
    from pare_model.body_model.procedural.generator import generate
    from tests.train_helpers import make_training_shards

    assets, data, done = work / "body_model", work / "training", work / "prepared"
    if not done.exists():
        assets.mkdir(parents=True, exist_ok=True)
        write_asset_folder(generate(0), assets, "pkl")
        data.mkdir(exist_ok=True)
        make_training_shards(assets, data)
        done.write_text("")
    return assets, data / "shards"


def sanity_figures(assets: Path, shards: Path, fit: str, seed: int) -> dict:
    """The learning-sanity test's figures for one fit (``plain`` or ``augmented``) and seed, on one thread."""
    import glob

    import numpy as np
    import torch
    import webdataset as wds

    from pare_model.body_model import load_body_model
    from tests import test_learning_sanity as sanity

    torch.set_num_threads(1)
    urls = sorted(glob.glob(str(shards / "coco-eft" / "train" / "*.tar")))
    raw = [dict(s) for _, s in zip(range(sanity.NUM_SAMPLES), wds.WebDataset(urls, shardshuffle=False), strict=False)]
    config = sanity._config(assets)
    body_model = load_body_model(assets)
    plain = sanity._views(raw, config, flip=False)
    truth = sanity._truth(plain, body_model, mirrored=False)
    views = {"plain views": (plain["image"], truth)}
    if fit == "augmented":
        mirrored = sanity._views(raw, config, flip=True)
        views["mirrored views"] = (mirrored["image"], sanity._truth(plain, body_model, mirrored=True))
    steps = sanity.STEPS_PLAIN if fit == "plain" else sanity.STEPS_AUGMENTED
    start = time.perf_counter()
    model = sanity.fit(raw, config, assets, steps, augment=fit == "augmented", seed=seed)
    figures = {"fit": fit, "seed": seed, "steps": steps, "seconds": round(time.perf_counter() - start, 1)}
    figures["samples"] = [s["__key__"] for s in raw]
    for name, (images, target) in views.items():
        orient, error = sanity._errors(model, images, target)
        figures[name] = {"orient_median": float(np.median(orient)), "mpjpe_median": float(np.median(error))}
    if fit == "augmented":
        per_view = sanity.mirrored_root_errors(model, views["mirrored views"][0], truth[0])
        figures["mirrored roots"] = {name: [round(float(v), 2) for v in values] for name, values in per_view.items()}
    untrained = sanity._errors(sanity.fit(raw, config, assets, 0, augment=False, seed=seed), plain["image"], truth)
    figures["untrained"] = {
        "orient_median": float(np.median(untrained[0])),
        "mpjpe_median": float(np.median(untrained[1])),
    }
    return figures


def trained_figures(assets: Path, shards: Path, seed: int, work: Path, precision: str = "") -> dict:
    """val/pa_mpjpe at each validation and the baseline of `pare train configs/train_synthetic.yaml` with ``seed``
    (and ``train.precision`` when given)."""
    from mlflow.tracking import MlflowClient

    storage = Path(tempfile.mkdtemp(prefix=f"train-{seed}-", dir=work))
    overrides = [
        f"body_model.asset_dir={assets}",
        f"data.datasets.coco.shards=[{shards / 'coco-eft' / 'train'}]",
        f"data.validation=[{shards / '3dpw' / 'test'}]",
        f"train.storage_path={storage}",
        f"train.seed={seed}",
    ] + ([f"train.precision={precision}"] if precision else [])
    pare = str(Path(sys.executable).with_name("pare"))
    start = time.perf_counter()
    done = subprocess.run(
        [pare, "train", str(ROOT / "configs" / "train_synthetic.yaml"), *overrides],
        capture_output=True,
        text=True,
        cwd=storage,
    )
    if done.returncode != 0:
        return {"seed": seed, "error": (done.stdout + done.stderr)[-2000:]}
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pare-synthetic")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`pare.run_name` = 'synthetic'")

    def values(key: str) -> dict[int, float]:
        return {m.step: m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)}

    losses = list(values("train/loss").values())
    return {
        "seed": seed,
        "precision": precision,
        "seconds": round(time.perf_counter() - start, 1),
        "val_pa_mpjpe": values("val/pa_mpjpe"),
        "val_mpjpe": values("val/mpjpe"),
        "baseline": list(values("val/baseline_pa_mpjpe").values())[-1],
        "loss_ratio": losses[-1] / losses[0],
    }


def break_flip() -> None:
    """Fault injection for ``--break-flip``: the loader's flip leaves the root orientation unmirrored (the defect
    the augmented learning-sanity test exists to catch), in this process only."""
    import numpy as np

    from preprocessing.augment import crop_geometry

    mirrored = crop_geometry.flip_smpl_pose
    crop_geometry.flip_smpl_pose = lambda pose: np.concatenate([pose[..., :3], mirrored(pose)[..., 3:]], axis=-1)


def child(args) -> None:
    """One kernel set's measurements in this process: one JSON line per fit or training."""
    assets, shards = prepare(args.work)
    if args.break_flip:
        break_flip()
    for seed in args.seeds:
        for fit in args.fits:
            print(json.dumps({"kind": "sanity", **sanity_figures(assets, shards, fit, seed)}), flush=True)
        if args.trained:
            figures = trained_figures(assets, shards, seed, args.work, args.precision)
            print(json.dumps({"kind": "trained", **figures}), flush=True)


def measure(capability: str, args) -> list[dict]:
    """Run :func:`child` in a fresh process with ``ATEN_CPU_CAPABILITY`` set (unset for ``native``)."""
    env = dict(os.environ)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if capability != "native":
        env["ATEN_CPU_CAPABILITY"] = capability
    command = [sys.executable, "-m", "bench.learning_spread", "--child", "--work", str(args.work)]
    command += ["--seeds", *map(str, args.seeds), "--fits", *args.fits]
    command += (["--trained"] if args.trained else []) + (["--break-flip"] if args.break_flip else [])
    command += ["--precision", args.precision] if args.precision else []
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0:
        print(f"{capability}: exit {done.returncode}\n{done.stderr[-3000:]}", file=sys.stderr)
    for row in rows:
        row["capability"] = capability
    return rows


def print_sanity(rows: list[dict]) -> None:
    print("\nLearning sanity (tests/test_learning_sanity.py): median orientation error (deg) / median MPJPE (mm)")
    print(f"{'fit':<10} {'view':<15} {'kernels':<8} per seed: orientation / MPJPE")
    for fit in FITS:
        for view in ("plain views", "mirrored views"):
            cells = [r for r in rows if r["kind"] == "sanity" and r["fit"] == fit and view in r]
            if not cells:
                continue
            for capability in CAPABILITIES:
                mine = [r for r in cells if r["capability"] == capability]
                text = "  ".join(
                    f"s{r['seed']} {r[view]['orient_median']:5.1f}/{r[view]['mpjpe_median']:5.1f}" for r in mine
                )
                print(f"{fit:<10} {view:<15} {capability:<8} {text}")
            orient = [r[view]["orient_median"] for r in cells]
            error = [r[view]["mpjpe_median"] for r in cells]
            print(
                f"{fit:<10} {view:<15} {'range':<8} orientation {min(orient):.1f}-{max(orient):.1f} deg, "
                f"MPJPE {min(error):.1f}-{max(error):.1f} mm, {len(cells)} fits"
            )


def print_plain_checks(rows: list[dict]) -> None:
    """The plain test's own checks per fit: the median MPJPE against the untrained network's, and the median
    orientation error, against ``PLAIN_DROP`` and ``PLAIN_ORIENTATION``."""
    from tests.test_learning_sanity import PLAIN_DROP, PLAIN_ORIENTATION

    cells = [r for r in rows if r["kind"] == "sanity" and r["fit"] == "plain"]
    if not cells:
        return
    print(f"\nPlain fits: MPJPE / untrained MPJPE (limit {PLAIN_DROP}), orientation (limit {PLAIN_ORIENTATION:g} deg)")
    print("kernels  seed  ratio  orientation  untrained orientation / MPJPE")
    ratios = []
    for r in cells:
        untrained = r["untrained"]
        ratios.append(r["plain views"]["mpjpe_median"] / untrained["mpjpe_median"])
        print(
            f"{r['capability']:<8} {r['seed']:>4}  {ratios[-1]:5.2f}  {r['plain views']['orient_median']:11.1f}  "
            f"{untrained['orient_median']:.1f} / {untrained['mpjpe_median']:.1f}"
        )
    print(f"range: MPJPE ratio {min(ratios):.2f}-{max(ratios):.2f}")


def print_augmented_checks(rows: list[dict]) -> None:
    """The augmented test's own checks per fit: each view's median MPJPE against the untrained network's, and the
    mirrored views' root margin (tests/test_learning_sanity.py ``root_margin``) against ``ROOT_MARGIN``."""
    import numpy as np

    from tests.test_learning_sanity import AUGMENTED_DROP, ROOT_MARGIN, SEPARATION, root_margin

    cells = [r for r in rows if r["kind"] == "sanity" and "mirrored roots" in r]
    if not cells:
        return
    print(
        f"\nAugmented fits: MPJPE / untrained MPJPE (limit {AUGMENTED_DROP}), and the mirrored views' root margin "
        f"over views {SEPARATION[0]:g}-{SEPARATION[1]:g} deg apart (limit {ROOT_MARGIN:g} deg)"
    )
    print("kernels  seed  plain  mirrored  root margin (views)  untrained orientation / MPJPE")
    ratios, margins = [], []
    for r in cells:
        untrained = r["untrained"]
        plain, mirrored = (
            r[view]["mpjpe_median"] / untrained["mpjpe_median"] for view in ("plain views", "mirrored views")
        )
        margin, count = root_margin({name: np.asarray(values) for name, values in r["mirrored roots"].items()})
        ratios += [plain, mirrored]
        margins.append(margin)
        print(
            f"{r['capability']:<8} {r['seed']:>4}  {plain:5.2f}  {mirrored:8.2f}  {margin:8.1f} ({count})        "
            f"{untrained['orient_median']:.1f} / {untrained['mpjpe_median']:.1f}"
        )
    print(
        f"range: MPJPE ratio {min(ratios):.2f}-{max(ratios):.2f}, root margin {min(margins):.1f}-{max(margins):.1f} deg"
    )


def print_trained(rows: list[dict]) -> None:
    trained = [r for r in rows if r["kind"] == "trained"]
    if not trained:
        return
    print(
        "\nShared trained model (tests/test_train_job.py, tests/test_evaluate.py): val/pa_mpjpe by step, its last "
        "over the mean pose's, the training loss's last window over its first (test: < 0.2), and whether val/mpjpe "
        "fell from the first validation to the last (test: yes)"
    )
    for r in trained:
        if "error" in r:
            print(f"{r['capability']:<8} seed {r['seed']}: failed: {r['error'][-300:]}")
            continue
        history = {int(step): value for step, value in r["val_pa_mpjpe"].items()}
        mpjpe = [value for _, value in sorted((int(step), value) for step, value in r["val_mpjpe"].items())]
        steps = "  ".join(f"{step}: {value:.1f}" for step, value in sorted(history.items()))
        ratio = history[max(history)] / r["baseline"]
        print(
            f"{r['capability']:<8} {r.get('precision') or 'config':<6} seed {r['seed']}: {steps}  baseline "
            f"{r['baseline']:.1f}  last/baseline {ratio:.3f}  loss {r['loss_ratio']:.3f}  val/mpjpe "
            f"{mpjpe[0]:.1f} -> {mpjpe[-1]:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--capabilities", nargs="+", default=list(CAPABILITIES), choices=CAPABILITIES)
    parser.add_argument("--fits", nargs="*", default=list(FITS), choices=FITS, help="learning-sanity fits to measure")
    parser.add_argument("--trained", action="store_true", help="also train the shared model once per seed")
    parser.add_argument("--precision", default="", help="train.precision of the --trained runs (default: the config's)")
    parser.add_argument("--break-flip", action="store_true", help="measure with the root left unmirrored on flips")
    parser.add_argument("--work", type=Path, default=None, help="folder for the shards and runs (default: a temp one)")
    parser.add_argument("--parallel", type=int, default=1, help="kernel sets measured at once (one core each)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="learning-spread-"))).resolve()
    if args.child:
        return child(args)
    import platform
    from concurrent.futures import ThreadPoolExecutor

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; work folder {args.work}")
    if args.break_flip:
        print("FAULT INJECTED: flips leave the root orientation unmirrored (--break-flip)")
    prepare(args.work)
    import ray

    ray.shutdown()  # the shards' preprocessing started one; the measurements run in other processes
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = [row for part in pool.map(lambda c: measure(c, args), args.capabilities) for row in part]
    (args.work / f"figures{'-broken-flip' if args.break_flip else ''}.json").write_text(json.dumps(rows, indent=1))
    print_sanity(rows)
    print_plain_checks(rows)
    print_augmented_checks(rows)
    print_trained(rows)
    print(f"\nAll figures: {args.work}/figures*.json")


if __name__ == "__main__":
    main()
