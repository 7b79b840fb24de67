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
from array import array
from collections.abc import Mapping
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


def _median(values: array) -> float | None:
    return round(float(np.median(values)), 4) if len(values) else None


class FitQualityTally:
    """Counts and medians of the fit-quality values of the written samples, added a shard at a time: the values
    are kept as numbers, not as the samples' dicts."""

    def __init__(self) -> None:
        self.with_fit = 0
        self.errors = array("d")
        self.inside = array("d")

    def add(self, samples: list[dict]) -> None:
        """Add the per-sample entries of a shard's summary (``quality`` and ``has_smpl``)."""
        for sample in samples:
            self.with_fit += 1 if sample["has_smpl"] else 0
            quality = sample["quality"]
            if quality["reprojection_error"] is not None:
                self.errors.append(quality["reprojection_error"])
            if quality["keypoints_in_silhouette"] is not None:
                self.inside.append(quality["keypoints_in_silhouette"])

    def summary(self) -> dict:
        return {
            "samples_with_fit": self.with_fit,
            "reprojection_error_median": _median(self.errors),
            "keypoints_in_silhouette_median": _median(self.inside),
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
    rejects_by_reason: Mapping[str, int],
    fit_quality: dict,
) -> dict:
    """The manifest of one dataset/split folder (``fit_quality``: :meth:`FitQualityTally.summary`)."""
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
            "rejected": sum(rejects_by_reason.values()),
            "shards": len(shards),
            "bytes": sum(shard["bytes"] for shard in shards),
        },
        "rejects_by_reason": {reason: count for reason, count in sorted(rejects_by_reason.items()) if count},
        "fit_quality": fit_quality,
    }


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's text: the dataset digest training logs to MLflow."""
    return hashlib.sha256(manifest_text(manifest).encode()).hexdigest()


def reject_line(reject: dict) -> str:
    """One line of ``rejects.jsonl``."""
    return json.dumps(reject, sort_keys=True) + "\n"


def shard_problems(
    storage, folder: str, manifest: dict, checksums: bool = True, trusted: Mapping[str, list] | None = None
) -> list[str]:
    """What is wrong with the shard files of ``folder`` against ``manifest`` (empty: all good).

    Checks that every listed shard exists with the listed size and, with ``checksums``, sha256,
    and that no unlisted shard sits beside them. A shard whose ``[size, mtime_ns]`` equals its
    entry in ``trusted`` (what it was when last verified) is not hashed again.
    """
    problems = []
    trusted = trusted or {}
    listed = {shard["name"] for shard in manifest.get("shards", [])}
    for shard in manifest.get("shards", []):
        path = in_folder(folder, shard["name"])
        stat = storage.stat(path)
        if stat is None:
            problems.append(f"{shard['name']}: missing")
            continue
        size = stat[0]
        if size != shard["bytes"]:
            problems.append(f"{shard['name']}: {size} bytes, manifest says {shard['bytes']}")
            continue
        if stat[1] is not None and trusted.get(shard["name"]) == list(stat):
            continue
        if checksums and hashlib.sha256(storage.read_bytes(path)).hexdigest() != shard["sha256"]:
            problems.append(f"{shard['name']}: sha256 differs from the manifest")
    for name in storage.list(folder):
        if name.startswith("shard-") and name.endswith(".tar") and name not in listed:
            problems.append(f"{name}: not listed in the manifest")
    return problems
