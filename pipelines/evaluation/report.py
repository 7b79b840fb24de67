"""Evaluation results as numbers and files: per subset, per joint, per sequence and per sample.

Written to the output folder:

- ``metrics.json``: per subset the sample count, MPJPE, PA-MPJPE, PVE (mm), the global orientation
  error (degrees, mean and median), the same for the mean-pose baseline, and the per-joint means;
  plus what was evaluated and what was left out;
- ``per_joint.csv``, ``per_sequence.csv``, ``per_sample.csv``: the breakdowns;
- ``per_joint.png``: per-joint MPJPE and PA-MPJPE of each subset, the baseline's beside them.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from pare_model.joint_sets import LSP14_JOINT_NAMES
from pipelines.evaluation.measure import EvalPart

SUMMARY_METRICS = ("mpjpe", "pa_mpjpe", "pve", "orient_error")
"""Per-sample metrics averaged per subset and sequence (mm; orient_error in degrees)."""

MEDIAN_METRICS = ("orient_error",)
"""Metrics whose median is reported too (``<name>_median``): a few samples facing the wrong way move the mean."""


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else None


def _averages(arrays: dict[str, np.ndarray], selection) -> dict:
    out = {name: _mean(arrays[name][selection]) for name in SUMMARY_METRICS}
    return out | {f"{name}_median": _median(arrays[name][selection]) for name in MEDIAN_METRICS}


def _summary(arrays: dict[str, np.ndarray], mask: np.ndarray) -> dict:
    out: dict = {"num_samples": int(mask.sum())} | _averages(arrays, mask)
    out["num_pve_samples"] = int(np.isfinite(arrays["pve"][mask]).sum())
    return out


def subset_masks(part: EvalPart, subsets: list[str]) -> dict[str, np.ndarray]:
    return {name: np.array([name in s for s in part.subsets], bool) for name in subsets}


def summarise(part: EvalPart, subsets: list[str], with_baseline: bool) -> dict[str, dict]:
    """Per subset: counts, mean errors, the baseline's, and per-joint means."""
    ours = part.arrays("model")
    base = part.arrays("baseline") if with_baseline else None
    result = {}
    for name, mask in subset_masks(part, subsets).items():
        entry = _summary(ours, mask)
        if base is not None:
            entry["baseline"] = _summary(base, mask)
        entry["per_joint"] = {
            metric: dict(zip(LSP14_JOINT_NAMES, ours[f"per_joint_{metric}"][mask].mean(axis=0).tolist(), strict=True))
            for metric in ("mpjpe", "pa_mpjpe")
        }
        result[name] = entry
    return result


def per_sequence(part: EvalPart, subsets: list[str]) -> list[dict]:
    ours = part.arrays("model")
    rows = []
    for name, mask in subset_masks(part, subsets).items():
        groups: dict[str, list[int]] = defaultdict(list)
        for index in np.flatnonzero(mask):
            if part.sequences[index]:
                groups[part.sequences[index]].append(int(index))
        for sequence, indices in sorted(groups.items()):
            row = {"subset": name, "sequence": sequence, "num_samples": len(indices)}
            row |= _averages(ours, indices)
            rows.append(row)
    return rows


def _fmt(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.3f}"


def write_csv(path: Path, rows: list[dict]) -> Path:
    fields = list(rows[0]) if rows else ["subset"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(v) if isinstance(v, float) or v is None else v for k, v in row.items()})
    return path


def write_reports(folder: Path, part: EvalPart, summary: dict, info: dict, with_baseline: bool) -> list[Path]:
    """Every result file of an evaluation; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    subsets = list(summary)
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps(info | {"subsets": summary}, indent=1))
    joint_rows = [
        {
            "subset": name,
            "joint": joint,
            "mpjpe": entry["per_joint"]["mpjpe"][joint],
            "pa_mpjpe": entry["per_joint"]["pa_mpjpe"][joint],
        }
        for name, entry in summary.items()
        for joint in LSP14_JOINT_NAMES
    ]
    ours = part.arrays("model")
    base = part.arrays("baseline") if with_baseline else None
    sample_rows = []
    for index, key in enumerate(part.keys):
        row = {
            "key": key,
            "dataset": part.datasets[index],
            "sequence": part.sequences[index],
            "subsets": " ".join(part.subsets[index]),
        }
        row |= {metric: float(ours[metric][index]) for metric in SUMMARY_METRICS}
        if base is not None:
            row |= {f"baseline_{metric}": float(base[metric][index]) for metric in SUMMARY_METRICS}
        sample_rows.append(row)
    files = [
        metrics,
        write_csv(folder / "per_joint.csv", joint_rows),
        write_csv(folder / "per_sequence.csv", per_sequence(part, subsets)),
        write_csv(folder / "per_sample.csv", sample_rows),
    ]
    files.append(per_joint_chart(folder / "per_joint.png", summary, part, with_baseline))
    return files


def per_joint_chart(path: Path, summary: dict, part: EvalPart, with_baseline: bool) -> Path:
    """Bars of per-joint MPJPE and PA-MPJPE per subset, the mean-pose baseline's as outlines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    base = part.arrays("baseline") if with_baseline else None
    masks = subset_masks(part, list(summary))
    figure = Figure(figsize=(11, 3.2 * len(summary)), layout="constrained")
    axes = figure.subplots(len(summary), 2, squeeze=False)
    x = np.arange(len(LSP14_JOINT_NAMES))
    for row, (name, entry) in enumerate(summary.items()):
        for column, metric in enumerate(("mpjpe", "pa_mpjpe")):
            ax = axes[row, column]
            values = [entry["per_joint"][metric][j] for j in LSP14_JOINT_NAMES]
            ax.bar(x, values, color="#3b75af", label="model")
            if base is not None:
                baseline = base[f"per_joint_{metric}"][masks[name]].mean(axis=0)
                ax.bar(x, baseline, fill=False, edgecolor="#d62728", linewidth=1.2, label="mean-pose baseline")
            label = metric.upper().replace("PA_", "PA-")
            ax.set_title(f"{name}: {label} per joint ({entry['num_samples']} samples, mean {entry[metric]:.1f} mm)")
            ax.set_xticks(x, LSP14_JOINT_NAMES, rotation=60, ha="right", fontsize=7)
            ax.set_ylabel("mm")
            ax.legend(fontsize=7)
    figure.savefig(path, dpi=110)
    return path


def mlflow_metrics(summary: dict) -> dict[str, float]:
    """``eval/<subset>/<metric>`` (and ``.../baseline_<metric>``) for MLflow."""
    values = {}
    for name, entry in summary.items():
        for metric in (*SUMMARY_METRICS, *(f"{m}_median" for m in MEDIAN_METRICS)):
            if entry.get(metric) is not None:
                values[f"eval/{name}/{metric}"] = entry[metric]
            baseline = entry.get("baseline", {}).get(metric)
            if baseline is not None:
                values[f"eval/{name}/baseline_{metric}"] = baseline
        values[f"eval/{name}/num_samples"] = float(entry["num_samples"])
    return values
