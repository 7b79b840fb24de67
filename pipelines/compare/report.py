"""The comparison report: ``comparison.md``, ``comparison.csv``, ``curves.png`` and ``bars.png``.

- Markdown: each run's MLflow status, the params that differ across runs (one column per run;
  all params when there is one run), then the final and best value of each metric per run, the
  best finished run's value in bold (ties are all bold; nothing is bold with fewer than two values
  of finished runs to compare). A run that is still RUNNING (or was killed before it could end
  its MLflow run), FAILED or KILLED is shown but never bold. A metric a run did not log shows as
  ``—``.
- CSV: one row per run, ``run_id, run_name, status, param:<name>..., final:<metric>...,
  best:<metric>...``; floats at full precision, empty for a metric the run did not log.
- ``curves.png``: one subplot per metric, every run's history against the step.
- ``bars.png``: one grouped bar chart of the final values, a group per metric and a bar per run.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.compare.runs import Comparison, RunData, lower_is_better

MISSING = "—"
KINDS = ("final", "best")
FINISHED = "FINISHED"
"""The one MLflow run status whose values can be best: the run ended normally."""
STATUS_NOTES = {
    FINISHED: "ended normally",
    "RUNNING": "not ended: still running, or killed before it could end its run; never best",
    "SCHEDULED": "not started; never best",
    "FAILED": "ended with an error; never best",
    "KILLED": "stopped before the end; never best",
}


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the files a report writes."""

    markdown: Path
    csv: Path
    curves: Path
    bars: Path

    def all(self) -> list[Path]:
        return [self.markdown, self.csv, self.curves, self.bars]


def format_value(value: float | None) -> str:
    """Six significant digits; ``nan`` for NaN and ``—`` for a metric that was not logged."""
    if value is None:
        return MISSING
    if math.isnan(value):
        return "nan"
    return f"{value:.6g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def differing_params(runs: Sequence[RunData]) -> tuple[list[str], int]:
    """(sorted names of params that differ or are missing somewhere, number identical in every run)."""
    names = sorted({name for run in runs for name in run.params})
    if len(runs) == 1:
        return names, 0
    differing = [name for name in names if len({run.params.get(name) for run in runs}) > 1]
    return differing, len(names) - len(differing)


def best_run_ids(runs: Sequence[RunData], metric: str, kind: str) -> set[str]:
    """Ids of the finished runs whose ``kind`` ("final"/"best") value of ``metric`` is best; empty with fewer than two
    values of finished runs."""
    values = {run.run_id: getattr(run, kind).get(metric, math.nan) for run in runs if run.status == FINISHED}
    finite = {run_id: value for run_id, value in values.items() if not math.isnan(value)}
    if len(finite) < 2:
        return set()
    target = min(finite.values()) if lower_is_better(metric) else max(finite.values())
    return {run_id for run_id, value in finite.items() if value == target}


def runs_section(runs: Sequence[RunData]) -> str:
    rows = [[run.label, run.status, STATUS_NOTES.get(run.status, "never best")] for run in runs]
    return "## Runs\n\n" + _table(["run", "status", "meaning"], rows)


def params_section(runs: Sequence[RunData]) -> str:
    names, identical = differing_params(runs)
    title = "## Params" if len(runs) == 1 else "## Params that differ"
    if not names:
        total = "No params were logged." if identical == 0 else f"All {identical} params are identical in every run."
        return f"{title}\n\n{total}"
    rows = [[name, *(run.params.get(name, MISSING) for run in runs)] for name in names]
    table = _table(["param", *(run.label for run in runs)], rows)
    note = f"\n\n{identical} param(s) identical in every run are not shown." if identical else ""
    return f"{title}\n\n{table}{note}"


def metrics_section(comparison: Comparison) -> str:
    runs = comparison.runs
    rows = []
    for metric in comparison.metrics:
        direction = "lower" if lower_is_better(metric) else "higher"
        for kind in KINDS:
            bold = best_run_ids(runs, metric, kind)
            cells = []
            for run in runs:
                text = format_value(getattr(run, kind).get(metric))
                cells.append(f"**{text}**" if run.run_id in bold else text)
            rows.append([metric, kind, direction, *cells])
    table = _table(["metric", "value", "better", *(run.label for run in runs)], rows)
    legend = "Final: the value at the last step. Best: the min or max over the history. Bold: the best finished run."
    return f"## Metrics\n\n{legend}\n\n{table}"


def markdown(comparison: Comparison) -> str:
    title = f"# {len(comparison.runs)} run(s) of experiment `{comparison.experiment}`"
    sections = [title, runs_section(comparison.runs), params_section(comparison.runs), metrics_section(comparison)]
    return "\n\n".join(sections) + "\n"


def _csv_value(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def write_csv(comparison: Comparison, path: Path) -> None:
    params, _ = differing_params(comparison.runs)
    metric_columns = [(kind, metric) for kind in KINDS for metric in comparison.metrics]
    header = ["run_id", "run_name", "status", *(f"param:{p}" for p in params)]
    header += [f"{kind}:{metric}" for kind, metric in metric_columns]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for run in comparison.runs:
            row = [run.run_id, run.run_name, run.status, *(run.params.get(p, "") for p in params)]
            row += [_csv_value(getattr(run, kind).get(metric)) for kind, metric in metric_columns]
            writer.writerow(row)


def _figure(width: float, height: float):
    """A figure on the Agg canvas, outside pyplot's global state (nothing to close, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", dpi=100)


def plot_curves(comparison: Comparison, path: Path) -> None:
    columns = min(3, len(comparison.metrics))
    rows = math.ceil(len(comparison.metrics) / columns)
    figure = _figure(5.0 * columns, 3.4 * rows + 0.6)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    handles = {}
    for ax, metric in zip(axes, comparison.metrics, strict=False):
        for run in comparison.runs:
            history = run.history.get(metric, [])
            if history:
                marker = "o" if len(history) <= 30 else None
                steps, values = [p.step for p in history], [p.value for p in history]
                (handles[run.label],) = ax.plot(steps, values, marker=marker, markersize=3, label=run.label)
        better = "lower" if lower_is_better(metric) else "higher"
        ax.set(title=f"{metric} ({better} is better)", xlabel="step")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in axes[len(comparison.metrics) :]:
        ax.set_axis_off()
    figure.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(4, len(handles) or 1))
    figure.savefig(path)


def plot_bars(comparison: Comparison, path: Path) -> None:
    metrics, runs = comparison.metrics, comparison.runs
    figure = _figure(max(6.0, 1.2 * len(metrics) * max(1, len(runs)) / 2 + 2), 4.8)
    ax = figure.subplots()
    width = 0.8 / len(runs)
    for index, run in enumerate(runs):
        positions = [m + (index - (len(runs) - 1) / 2) * width for m in range(len(metrics))]
        values = [run.final.get(metric, math.nan) for metric in metrics]
        heights = [v if math.isfinite(v) else math.nan for v in values]  # no bar for NaN, inf or not logged
        bars = ax.bar(positions, heights, width, label=run.label)
        ax.bar_label(bars, labels=[format_value(v) if math.isfinite(v) else "" for v in values], fontsize=7)
    ax.set_xticks(range(len(metrics)), metrics, rotation=20, ha="right")
    ax.set(title=f"Final values, experiment {comparison.experiment}", ylabel="final value")
    if _wide_positive_range([run.final.get(m, math.nan) for run in runs for m in metrics]):
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    figure.savefig(path)


def _wide_positive_range(values: Sequence[float]) -> bool:
    """Whether the bars need a log scale: all positive and spanning more than three decades."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 1e3


def write_report(comparison: Comparison, out: Path) -> tuple[str, ReportFiles]:
    """Write the four files into ``out`` (created); the Markdown text and the paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / "comparison.md", out / "comparison.csv", out / "curves.png", out / "bars.png")
    text = markdown(comparison)
    files.markdown.write_text(text)
    write_csv(comparison, files.csv)
    plot_curves(comparison, files.curves)
    plot_bars(comparison, files.bars)
    return text, files
