"""``manifest.json`` of a shard folder: what it holds, where it came from, and how to check it.

The manifest is written last, after every shard, so a folder with a manifest is complete. It
holds no times or host names: the same inputs and config give the same manifest, whether the
job ran once or was killed and rerun.

``samples_per_shard`` is the number of planned records per shard: shard ``k`` holds what was
built from records ``k*N .. (k+1)*N - 1``, so it holds at most ``N`` samples (fewer where
records were rejected), and a shard left empty is not listed. Readers take each shard's
``samples`` from its entry, never from ``samples_per_shard``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib import metadata

import numpy as np

MANIFEST_FILE = "manifest.json"
REJECTS_FILE = "rejects.jsonl"
MANIFEST_FORMAT = "pare-shards"
MANIFEST_VERSION = 1


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def in_folder(folder: str, name: str) -> str:
    """``name`` inside the relative ``folder`` of a storage root ('' is the root itself)."""
    return f"{folder}/{name}" if folder else name


def code_version() -> str:
    """The installed pare-pipeline version and the sample format version."""
    from preprocessing.samples.encode import SAMPLE_FORMAT_VERSION

    try:
        version = metadata.version("pare-pipeline")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"pare-pipeline {version}, sample format {SAMPLE_FORMAT_VERSION}"


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None


def fit_quality_summary(samples: list[dict]) -> dict:
    """Counts and medians of the fit-quality values of the written samples."""
    errors = [s["quality"]["reprojection_error"] for s in samples if s["quality"]["reprojection_error"] is not None]
    inside = [
        s["quality"]["keypoints_in_silhouette"] for s in samples if s["quality"]["keypoints_in_silhouette"] is not None
    ]
    return {
        "samples_with_fit": sum(1 for s in samples if s["has_smpl"]),
        "reprojection_error_median": _median(errors),
        "keypoints_in_silhouette_median": _median(inside),
    }


def build_manifest(
    *,
    dataset: str,
    split: str,
    reader: str,
    source: dict,
    config_hash: str,
    samples_per_shard: int,
    sample_format: dict,
    shards: list[dict],
    inputs: int,
    rejects: list[dict],
    samples: list[dict],
) -> dict:
    """The manifest of one dataset/split folder."""
    written = sum(shard["samples"] for shard in shards)
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "dataset": dataset,
        "split": split,
        "reader": reader,
        "source": source,
        "config_hash": config_hash,
        "code_version": code_version(),
        "samples_per_shard": samples_per_shard,
        "sample_format": sample_format,
        "shards": shards,
        "totals": {
            "inputs": inputs,
            "samples": written,
            "rejected": len(rejects),
            "shards": len(shards),
            "bytes": sum(shard["bytes"] for shard in shards),
        },
        "rejects_by_reason": dict(sorted(Counter(r["reason"] for r in rejects).items())),
        "fit_quality": fit_quality_summary(samples),
    }


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's text: the dataset digest training logs to MLflow."""
    return hashlib.sha256(manifest_text(manifest).encode()).hexdigest()


def rejects_text(rejects: list[dict]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rejects)


def shard_problems(storage, folder: str, manifest: dict, checksums: bool = True) -> list[str]:
    """What is wrong with the shard files of ``folder`` against ``manifest`` (empty: all good).

    Checks that every listed shard exists with the listed size and, with ``checksums``, sha256,
    and that no unlisted shard sits beside them.
    """
    problems = []
    listed = {shard["name"] for shard in manifest.get("shards", [])}
    for shard in manifest.get("shards", []):
        path = in_folder(folder, shard["name"])
        if not storage.exists(path):
            problems.append(f"{shard['name']}: missing")
            continue
        size = storage.size(path)
        if size != shard["bytes"]:
            problems.append(f"{shard['name']}: {size} bytes, manifest says {shard['bytes']}")
            continue
        if checksums and hashlib.sha256(storage.read_bytes(path)).hexdigest() != shard["sha256"]:
            problems.append(f"{shard['name']}: sha256 differs from the manifest")
    for name in storage.list(folder):
        if name.startswith("shard-") and name.endswith(".tar") and name not in listed:
            problems.append(f"{name}: not listed in the manifest")
    return problems
