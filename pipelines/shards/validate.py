"""``pare shards validate``: a shard folder against its manifest, down to every decoded sample."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np
from tqdm import tqdm

from pipelines.data.manifest import MANIFEST_FORMAT, REJECTS_FILE, in_folder, shard_problems
from pipelines.data.reading import decode_labels, read_manifest
from pipelines.io.storage import Storage
from preprocessing.samples.encode import MEMBER_SUFFIXES

SHAPES = {"keypoints_2d": (49, 3), "joints_3d": (24, 4), "pose": (72,), "betas": (10,)}


@dataclass
class ValidationReport:
    folder: str
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _sample_problems(key: str, sample: dict, size: int, label_size: int) -> list[str]:
    problems = []
    members = sorted(k for k in sample if not k.startswith("__"))
    if members != sorted(MEMBER_SUFFIXES):
        return [f"{key}: members {members}, expected {list(MEMBER_SUFFIXES)}"]
    image = cv2.imdecode(np.frombuffer(sample["jpg"], np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape != (size, size, 3):
        problems.append(f"{key}: jpg does not decode to {size}x{size}x3")
    try:
        labels = decode_labels(sample["labels.png"])
    except OSError:
        return problems + [f"{key}: labels.png does not decode"]
    if labels.shape != (label_size, label_size) or labels.dtype != np.uint8:
        expected = f"({label_size}, {label_size}) uint8"
        problems.append(f"{key}: labels are {labels.shape} {labels.dtype}, expected {expected}")
    elif labels.max() > 24:
        problems.append(f"{key}: label value {int(labels.max())} outside 0..24")
    try:
        annotation = json.loads(sample["json"])
    except ValueError:
        return problems + [f"{key}: json does not parse"]
    for name, shape in SHAPES.items():
        value = np.asarray(annotation.get(name), dtype=np.float64)
        if value.shape != shape or not np.isfinite(value).all():
            problems.append(f"{key}: {name} is not a finite array of shape {shape}")
    for flag in ("has_smpl", "has_joints_3d", "has_segm"):
        if annotation.get(flag) not in (0, 1):
            problems.append(f"{key}: {flag} is {annotation.get(flag)!r}, expected 0 or 1")
    if annotation.get("has_segm") == 0 and labels.size and labels.max() > 0:
        problems.append(f"{key}: has_segm is 0 but the label map is not empty")
    if annotation.get("key") != key:
        problems.append(f"{key}: json key {annotation.get('key')!r} differs from the member key")
    return problems


def validate_folder(storage: Storage, folder: str, show_progress: bool = True) -> ValidationReport:
    """Every check of a dataset/split folder; problems are listed, never raised."""
    report = ValidationReport(folder or storage.uri)
    manifest = read_manifest(storage, folder)
    if manifest.get("format") != MANIFEST_FORMAT:
        report.problems.append(f"manifest format is {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        return report
    report.problems += shard_problems(storage, folder, manifest)
    if report.problems:
        return report  # decoding damaged or missing shards would only repeat the problems
    size = manifest["sample_format"]["crop_resolution"]
    label_size = manifest["sample_format"].get("label_resolution", size)  # sample format 1: at the crop's side
    seen: set[str] = set()
    counts: Counter = Counter()
    firsts: dict[str, tuple[str, str]] = {}
    total = manifest["totals"]["samples"]
    for shard, sample in tqdm(
        _readable_samples(storage, folder, manifest, report),
        total=total,
        desc=f"validate {folder}",
        unit="sample",
        disable=not show_progress,
    ):
        key = sample["__key__"]
        counts[shard] += 1
        first, _ = firsts.get(shard, (key, key))
        firsts[shard] = (first, key)
        if key in seen:
            report.problems.append(f"{shard}: key {key} appears twice in the folder")
        if "." in key:
            report.problems.append(f"{shard}: key {key} contains a dot")
        seen.add(key)
        report.problems += [f"{shard}: {p}" for p in _sample_problems(key, sample, size, label_size)]
        report.samples += 1
    for entry in manifest["shards"]:
        name = entry["name"]
        if counts[name] != entry["samples"]:
            report.problems.append(f"{name}: {counts[name]} samples, manifest says {entry['samples']}")
        if name in firsts and firsts[name] != (entry["first_key"], entry["last_key"]):
            report.problems.append(f"{name}: first/last keys {firsts[name]} differ from the manifest")
    report.problems += _totals_problems(storage, folder, manifest, report.samples)
    return report


def _readable_samples(storage: Storage, folder: str, manifest: dict, report: ValidationReport):
    """(shard name, raw sample) of every shard; a shard that stops being readable adds a problem and the next is read."""
    from pipelines.data.reading import ShardReadError, shard_samples

    for entry in manifest["shards"]:
        try:
            for sample in shard_samples(storage, folder, entry["name"]):
                yield entry["name"], sample
        except ShardReadError as error:
            report.problems.append(f"{entry['name']}: not a readable tar of samples ({error.reason})")


def _totals_problems(storage: Storage, folder: str, manifest: dict, samples: int) -> list[str]:
    problems = []
    totals = manifest["totals"]
    if totals["inputs"] != totals["samples"] + totals["rejected"]:
        problems.append(
            f"totals: inputs {totals['inputs']} != samples {totals['samples']} + rejected {totals['rejected']}"
        )
    if samples != totals["samples"]:
        problems.append(f"totals: {samples} samples in the shards, manifest says {totals['samples']}")
    path = in_folder(folder, REJECTS_FILE)
    if not storage.exists(path):
        return problems + [f"{REJECTS_FILE} is missing"]
    lines = [line for line in storage.read_text(path).splitlines() if line.strip()]
    reasons: Counter = Counter()
    for number, line in enumerate(lines, 1):
        try:
            reasons[json.loads(line)["reason"]] += 1
        except (ValueError, KeyError, TypeError):
            problems.append(f"{REJECTS_FILE} line {number} is not a JSON object with a reason")
    if len(lines) != totals["rejected"]:
        problems.append(f"{REJECTS_FILE} has {len(lines)} lines, manifest says {totals['rejected']} rejected")
    if dict(sorted(reasons.items())) != manifest.get("rejects_by_reason", {}):
        problems.append(
            f"rejects by reason {dict(reasons)} differ from the manifest's {manifest.get('rejects_by_reason')}"
        )
    return problems
