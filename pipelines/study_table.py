"""The study table: each variant's metrics as mean and standard deviation over its training seeds.

One run says little at this scale: two seeds of the same config can differ by more than two
configs do. The table therefore gives, per variant and metric, the mean and the sample standard
deviation over the seeds, and the verdict on the first metric says whether the best variant is
ahead of the next by more than the larger of their two standard deviations.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Cell:
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def text(self) -> str:
        if not self.values:
            return "-"
        return f"{self.mean:.1f} ± {self.std:.1f}" if len(self.values) > 1 else f"{self.mean:.1f}"


@dataclass(frozen=True)
class SeedTable:
    metrics: list[str]
    cells: dict[str, dict[str, Cell]]  # variant -> metric -> cell
    seeds: dict[str, int]  # variant -> number of seeds

    def verdict(self) -> str:
        """Whether the best variant on the first metric (lower is better) is ahead by more than the larger std."""
        metric = self.metrics[0]
        ranked = sorted((cells[metric].mean, name) for name, cells in self.cells.items() if cells[metric].values)
        if len(ranked) < 2:
            return f"{metric}: fewer than two variants measured it"
        (best_mean, best), (next_mean, runner_up) = ranked[:2]
        margin = next_mean - best_mean
        spread = max(self.cells[best][metric].std, self.cells[runner_up][metric].std)
        clear = margin > spread
        return (
            f"{metric}: {best} {best_mean:.1f} vs {runner_up} {next_mean:.1f}, a margin of {margin:.1f} "
            f"{'>' if clear else '<='} the larger standard deviation {spread:.1f}: "
            f"{'a clear difference' if clear else 'within the seed-to-seed spread'}"
        )


def seed_table(tracking_uri: str, runs: dict[str, list[str]], metrics: list[str]) -> SeedTable:
    """The table of ``metrics`` (each run's last logged value) over the runs of each variant."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    logged = {run_id: client.get_run(run_id).data.metrics for ids in runs.values() for run_id in ids}
    cells = {
        variant: {metric: Cell(tuple(logged[i][metric] for i in ids if metric in logged[i])) for metric in metrics}
        for variant, ids in runs.items()
    }
    return SeedTable(metrics, cells, {variant: len(ids) for variant, ids in runs.items()})


def write_table(table: SeedTable, folder: Path) -> tuple[str, list[Path]]:
    """``study_table.md`` (mean ± std) and ``study_table.csv`` (mean, std, n per cell); returns the Markdown."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "| variant | seeds | " + " | ".join(table.metrics) + " |"
    lines = [header, "|" + " --- |" * (len(table.metrics) + 2)]
    for variant, cells in table.cells.items():
        lines.append(
            f"| {variant} | {table.seeds[variant]} | " + " | ".join(cells[m].text() for m in table.metrics) + " |"
        )
    markdown = "\n".join([*lines, "", table.verdict(), ""])
    (folder / "study_table.md").write_text(markdown)
    with open(folder / "study_table.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "metric", "mean", "std", "n", "values"])
        for variant, cells in table.cells.items():
            for metric in table.metrics:
                cell = cells[metric]
                writer.writerow(
                    [
                        variant,
                        metric,
                        f"{cell.mean:.4f}",
                        f"{cell.std:.4f}",
                        len(cell.values),
                        " ".join(f"{v:.4f}" for v in cell.values),
                    ]
                )
    return markdown, [folder / "study_table.md", folder / "study_table.csv"]
