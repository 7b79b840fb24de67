"""``pare shards stats``: counts, fit-quality histograms and a contact sheet of random samples."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw

from pipelines.data.reading import decode_labels, iter_samples, read_manifest
from pipelines.io.storage import Storage

BINS = {"reprojection_error": np.linspace(0.0, 20.0, 21), "keypoints_in_silhouette": np.linspace(0.0, 1.0, 21)}


@dataclass
class ShardStats:
    folder: str
    samples: int = 0
    shards: int = 0
    bytes: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    with_smpl: int = 0
    with_joints_3d: int = 0
    with_segm: int = 0
    histograms: dict[str, list[int]] = field(default_factory=dict)
    """Counts per bin of each fit-quality value (bins in ``bin_edges``; values past the last edge in the last bin)."""
    bin_edges: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def _tile(sample: dict) -> tuple[np.ndarray, str]:
    from pipelines.visualize.overlays import draw_keypoints, overlay_labels

    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(sample["jpg"], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    labels = decode_labels(sample["labels.png"])
    if labels.shape != image.shape[:2]:  # stored at a fraction of the crop's side (sample format 2)
        labels = cv2.resize(labels, image.shape[1::-1], interpolation=cv2.INTER_NEAREST_EXACT)
    annotation = json.loads(sample["json"])
    tile = overlay_labels(image, labels, alpha=0.45) if labels.max() > 0 else image.copy()
    keypoints = np.asarray(annotation["keypoints_2d"])
    tile = draw_keypoints(tile, keypoints[:, :2], (keypoints[:, 2] > 0).astype(int) * 2)
    crop = annotation["crop"]
    half = crop["box_size"] / 2.0
    (cx, cy), canvas = crop["box_center"], Image.fromarray(tile)
    ImageDraw.Draw(canvas).rectangle([cx - half, cy - half, cx + half, cy + half], outline=(255, 255, 0), width=2)
    return np.asarray(canvas), annotation["key"]


def shard_stats(storage: Storage, folder: str, sample_count: int = 16, seed: int = 0):
    """Statistics of a folder, and up to ``sample_count`` random samples (reservoir-sampled while streaming)."""
    manifest = read_manifest(storage, folder)
    stats = ShardStats(folder or storage.uri, shards=len(manifest["shards"]), bytes=manifest["totals"]["bytes"])
    stats.rejected_by_reason = dict(manifest.get("rejects_by_reason", {}))
    values: dict[str, list[float]] = {name: [] for name in BINS}
    rng, chosen = random.Random(seed), []
    for _, sample in iter_samples(storage, folder, manifest):
        annotation = json.loads(sample["json"])
        stats.samples += 1
        stats.with_smpl += annotation["has_smpl"]
        stats.with_joints_3d += annotation["has_joints_3d"]
        stats.with_segm += annotation["has_segm"]
        for name in BINS:
            value = annotation["fit_quality"].get(name)
            if value is not None:
                values[name].append(value)
        if len(chosen) < sample_count:
            chosen.append(sample)
        elif (slot := rng.randrange(stats.samples)) < sample_count:
            chosen[slot] = sample
    for name, edges in BINS.items():
        clipped = np.clip(values[name], edges[0], edges[-1])
        stats.histograms[name] = np.histogram(clipped, bins=edges)[0].tolist()
        stats.bin_edges[name] = edges.round(3).tolist()
    return stats, [_tile(sample) for sample in chosen]


def histogram_png(stats: ShardStats, width: int = 720, height: int = 260) -> Image.Image:
    """Bar charts of the fit-quality histograms, side by side."""
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    panel = width // len(BINS)
    for p, name in enumerate(BINS):
        counts = np.asarray(stats.histograms[name], float)
        left, top, bottom = p * panel + 30, 30, height - 30
        draw.text((left, 8), f"{name} ({int(counts.sum())} samples)", fill=(0, 0, 0))
        bar = (panel - 50) / len(counts)
        peak = max(counts.max(), 1.0)
        for k, count in enumerate(counts):
            x0 = left + k * bar
            draw.rectangle([x0, bottom - (bottom - top) * count / peak, x0 + bar - 2, bottom], fill=(60, 110, 200))
        edges = stats.bin_edges[name]
        draw.text((left, bottom + 6), f"{edges[0]:g}", fill=(0, 0, 0))
        draw.text((left + panel - 80, bottom + 6), f"{edges[-1]:g}+", fill=(0, 0, 0))
        draw.line([left, bottom, left + panel - 50, bottom], fill=(0, 0, 0))
    return canvas


def _fraction(count: int, total: int) -> str:
    return f"{count / total:.0%}" if total else "-"


def count_table(all_stats: list[ShardStats]) -> str:
    rows = [f"{'folder':28s} {'samples':>8s} {'shards':>6s} {'MB':>8s} {'smpl':>6s} {'3d':>6s} {'segm':>6s}  rejected"]
    for s in all_stats:
        rejected = ", ".join(f"{k} {v}" for k, v in s.rejected_by_reason.items()) or "none"
        rows.append(
            f"{s.folder:28s} {s.samples:8d} {s.shards:6d} {s.bytes / 1e6:8.1f} {_fraction(s.with_smpl, s.samples):>6s} "
            f"{_fraction(s.with_joints_3d, s.samples):>6s} {_fraction(s.with_segm, s.samples):>6s}  {rejected}"
        )
    return "\n".join(rows)
