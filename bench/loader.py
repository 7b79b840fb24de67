"""Training-loader throughput: augmented samples/s per core from shards, next to PARE's per-image way.

    .venv/bin/python bench/loader.py [--num 400] [--image-size 640] [--samples 2000]

1. Writes a synthetic COCO+EFT source with COCO-sized JPEGs and preprocesses it into shards
   (a Ray job; not timed).
2. Shards, one process on one core: read the tars with webdataset, decode the 424-px crop (with
   simplejpeg, as the loader does, and for comparison with OpenCV's decoder, as it did before) and
   its part labels (106 px since sample format 2), draw PARE's augmentation (scale, rotation, flip, shift),
   warp the image to 224 and the labels to the loss's 56, paste 1..7 occluders, colour gain and motion blur,
   and emit the loss's arrays. Timed after a warm-up that fills the shuffle buffer (before the fix of
   2026-12-08 the timing began after 50 samples and counted the buffer's filling, about a third more tar reads).
3. Baseline, the way the original PARE loads data: per sample, decode the full source image
   (640 px) and crop it to 224 with the same augmentation, occlusion and photometric steps
   (no part labels: the original renders them on the GPU).
4. The shard loader through a torch DataLoader with 2 loader processes (both cores).

Steps 2 and 3 alternate, twice. Prints figures only: it never passes or fails on time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def warm_up(config) -> int:
    """Samples to draw before timing: open shards, build the occluders and fill the shuffle buffer, which reads
    two samples per sample it gives until it holds ``shuffle_buffer`` (once per loader process, at the start)."""
    return config.shuffle_buffer + 50


def shard_rate(shards: Path, samples: int) -> float:
    from pipelines.config.train import LoaderConfig
    from pipelines.data.stream import MixSource, TrainStream

    urls = tuple(str(p) for p in sorted(shards.glob("*.tar")))
    config = LoaderConfig()
    stream = iter(TrainStream([MixSource("coco", urls, (1.0,) * len(urls), 1.0)], config, 224, 0, 1, 0))
    for _ in range(warm_up(config)):
        next(stream)
    start = time.perf_counter()
    for _ in range(samples):
        next(stream)
    return samples / (time.perf_counter() - start)


def opencv_decode(data: bytes):
    """The loader's crop decode before simplejpeg: OpenCV's."""
    import cv2
    import numpy as np

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None


@contextlib.contextmanager
def crops_decoded_with(decode):
    """The shard loader with another crop decoder, for an A/B in one process."""
    from pipelines.data import samples

    saved = samples.decode_jpeg_bgr
    samples.decode_jpeg_bgr = decode
    try:
        yield
    finally:
        samples.decode_jpeg_bgr = saved


def alternated_rates(shards: Path, source: Path, samples: int, rounds: int = 2) -> dict[str, list[float]]:
    """samples/s of the shard loader, of it with OpenCV's crop decoder and of the baseline, the three alternated
    ``rounds`` times in this process, so that a machine whose speed drifts (other tenants, clocks) moves all three."""
    rates: dict[str, list[float]] = {"shards": [], "opencv": [], "baseline": []}
    for _ in range(rounds):
        rates["shards"].append(shard_rate(shards, samples))
        with crops_decoded_with(opencv_decode):
            rates["opencv"].append(shard_rate(shards, samples))
        rates["baseline"].append(baseline_rate(source, samples))
    return rates


def baseline_rate(source: Path, samples: int) -> float:
    """Decode the full image and crop it per sample (the original PARE loader's way)."""
    import cv2
    import numpy as np

    from pipelines.config.train import LoaderConfig
    from pipelines.synthetic_shards import COCO_OPTIONS
    from preprocessing.augment.crop_geometry import sample_draw
    from preprocessing.augment.photometric import apply_photometric, build_photometric
    from preprocessing.augment.synthetic_occlusion import Occluder
    from preprocessing.readers import build_reader, validated
    from preprocessing.render.cameras import affine_for_cv2, apply_affine, compose_affine, crop_affine

    config = LoaderConfig()
    records = [
        r
        for r in validated(build_reader("coco_eft", str(source), "train", COCO_OPTIONS).records())
        if hasattr(r, "key")
    ]
    rng = np.random.default_rng(0)
    occluder, photometric = Occluder(config.occlusion, 0), build_photometric(config.augment, 0)
    mirror = np.array([[-1.0, 0, 224.0], [0, 1.0, 0]])
    start = time.perf_counter()
    for index in range(samples):
        record = records[index % len(records)]
        image = cv2.cvtColor(cv2.imread(record.image.path), cv2.COLOR_BGR2RGB)
        draw = sample_draw(rng, config.augment)
        affine = crop_affine(record.center, record.box_size * draw.scale, 224, draw.rotation)
        if draw.flip:
            affine = compose_affine(mirror, affine)
        crop = cv2.warpAffine(image, affine_for_cv2(affine), (224, 224), flags=cv2.INTER_LINEAR)
        apply_affine(record.keypoints_2d[:, :2], affine)
        occluder(crop, rng)
        apply_photometric(photometric, crop)
    return samples / (time.perf_counter() - start)


def loader_rate(shards: Path, samples: int, workers: int) -> float:
    from pipelines.config.train import LoaderConfig
    from pipelines.data.stream import MixSource, TrainStream, make_loader

    urls = tuple(str(p) for p in sorted(shards.glob("*.tar")))
    config = LoaderConfig(batch_size=64, num_workers=workers)
    batches = iter(
        make_loader(TrainStream([MixSource("coco", urls, (1.0,) * len(urls), 1.0)], config, 224, 0, 1, 0), config)
    )
    for _ in range(-(-workers * warm_up(config) // 64)):
        next(batches)
    count = max(8, samples // 64)
    start = time.perf_counter()
    for _ in range(count):
        next(batches)
    return count * 64 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=400, help="synthetic source people")
    parser.add_argument("--image-size", type=int, default=640, help="longer side of the source JPEGs")
    parser.add_argument("--samples", type=int, default=2000, help="samples timed per measurement")
    parser.add_argument("--workers", type=int, default=2, help="loader processes for the DataLoader figure")
    args = parser.parse_args()

    import cv2
    import torch

    from pipelines.synthetic_shards import make_synthetic_shards

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        made = make_synthetic_shards(Path(folder), args.num, image_size=args.image_size)
        source, shards = made.coco_source, made.train
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
            f"source JPEGs {args.image_size} px, crops 424 px -> 224 px, occlusion on (procedural), "
            "colour gain + motion blur p=0.5"
        )
        rates = alternated_rates(shards, source, args.samples)

        def line(name: str) -> str:
            each = ", ".join(f"{value:.0f}" for value in rates[name])
            return f"{sum(rates[name]) / len(rates[name]):7.0f} samples/s (each round: {each})"

        print(f"shards, 1 core:                        {line('shards')}")
        print(f"shards, 1 core, OpenCV crop decode:    {line('opencv')} (the loader before simplejpeg)")
        print(f"baseline (full image + crop), 1 core:  {line('baseline')}")
        ratios = ", ".join(f"{a / b:.2f}" for a, b in zip(rates["shards"], rates["baseline"], strict=True))
        print(f"shards / baseline in each round:       {ratios}")
        rate = loader_rate(shards, args.samples, args.workers)
        print(
            f"DataLoader, {args.workers} loader processes:          {rate:7.0f} samples/s "
            f"({rate / args.workers:.0f} per process)"
        )


if __name__ == "__main__":
    main()
