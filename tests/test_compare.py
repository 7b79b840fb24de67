"""``pare compare`` end to end on real MLflow stores: a sqlite file and a real ``mlflow server`` over HTTP."""

from __future__ import annotations

import csv
import io
import math
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.cli import main
from pipelines.compare.runs import COMPARE_TAG, Point, lower_is_better, summarize
from tests.mlflow_server import MlflowServer

NAN = math.nan
# name -> (params, {metric: [(step, value), ...]}); "hmr-head" never logs val/pve.
RUNS = {
    "baseline": (
        {"learning_rate": "0.001", "model.head": "pare", "seed": "0", "epochs": "3"},
        {
            "train/loss": [(0, 1.0), (1, 0.5), (2, 0.25)],
            "val/pa_mpjpe": [(0, 80.0), (2, 60.0)],
            "val/pve": [(0, 100.0), (2, 90.0)],
            "val/pck": [(0, 0.5), (2, 0.75)],
            "train/learning_rate": [(0, 0.001), (2, 0.001)],
        },
    ),
    "lr-high": (
        {"learning_rate": "0.01", "model.head": "pare", "seed": "0", "epochs": "3"},
        {
            "train/loss": [(0, 2.0), (1, 0.125), (2, 0.375)],
            "val/pa_mpjpe": [(0, 70.0), (1, 55.0), (2, 65.0)],
            "val/pve": [(0, 95.0), (2, 85.0)],
            "val/pck": [(0, 0.25), (2, 1.0)],
        },
    ),
    "hmr-head": (
        {"learning_rate": "0.001", "model.head": "hmr", "seed": "0", "epochs": "3"},
        {
            "train/loss": [(0, 0.75), (1, 0.5), (2, NAN)],
            "val/pa_mpjpe": [(0, 90.0), (1, NAN), (2, 58.0)],
            "val/pck": [(0, 0.5), (2, 0.625)],
        },
    ),
}
DEFAULT_METRICS = ["val/pa_mpjpe", "val/pck", "val/pve", "train/loss"]


def make_experiment(
    uri: str, name: str, runs: dict, artifacts: Path | None = None, statuses: dict[str, str | None] | None = None
) -> dict[str, str]:
    """An experiment holding ``runs`` (see RUNS), logged through the MLflow client; run name -> run id. Each run ends
    FINISHED, or with its status in ``statuses``: None leaves it RUNNING, as a process killed with SIGKILL does."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(name, artifact_location=artifacts.as_uri() if artifacts else None)
    ids = {}
    for run_name, (params, metrics) in runs.items():
        run = client.create_run(experiment_id, run_name=run_name)
        now = int(time.time() * 1000)
        points = [Metric(key, value, now + step, step) for key, history in metrics.items() for step, value in history]
        client.log_batch(run.info.run_id, metrics=points, params=[Param(k, v) for k, v in params.items()])
        status = (statuses or {}).get(run_name, "FINISHED")
        if status is not None:
            client.set_terminated(run.info.run_id, status=status)
        ids[run_name] = run.info.run_id
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """A sqlite store with experiment ``pare-exp`` (RUNS) and an empty experiment ``empty``."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ids = make_experiment(uri, "pare-exp", RUNS, root / "artifacts")
    MlflowClient(tracking_uri=uri).create_experiment("empty", artifact_location=(root / "artifacts").as_uri())
    return uri, ids


def compare(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["compare", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def report(store, tmp_path_factory) -> tuple[Path, str]:
    """The default comparison of every run in ``pare-exp``: the output folder and what was printed."""
    uri, _ = store
    out = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)  # the default when --tracking-uri is not given
        printed = io.StringIO()
        with redirect_stdout(printed):
            assert main(["compare", "--experiment", "pare-exp", "--out", str(out)]) == 0
    return out, printed.getvalue()


def table(markdown: str, section: str) -> list[list[str]]:
    """The rows (header first, separator dropped) of the first table after the heading ``section``."""
    lines = markdown.split(f"## {section}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return [rows[0], *rows[2:]]


def label(ids: dict[str, str], name: str) -> str:
    return f"{name} ({ids[name][:8]})"


def test_lower_is_better_rule():
    assert all(map(lower_is_better, ["val/pa_mpjpe", "val/pve", "train/loss", "train/nan_skips", "eval/error"]))
    assert lower_is_better("train/skipped_samples") and lower_is_better("train/loader_wait_fraction")
    assert not any(map(lower_is_better, ["val/pck", "val/samples", "train/samples_per_s", "train/learning_rate"]))


def test_final_is_the_last_step_and_best_ignores_nan():
    history = [Point(0, 3.0, 10), Point(2, 5.0, 11), Point(2, 4.0, 12), Point(1, NAN, 13)]
    assert summarize(history, "val/mpjpe") == (4.0, 3.0)  # step 2 logged twice: the later write is final
    assert summarize(history, "val/pck") == (4.0, 5.0)
    final, best = summarize([Point(0, NAN)], "train/loss")
    assert math.isnan(final) and math.isnan(best)


def test_params_table_shows_only_the_params_that_differ(store, report):
    _, ids = store
    markdown = (report[0] / "comparison.md").read_text()
    assert markdown in report[1], "the Markdown is printed to stdout"
    for path in ("comparison.md", "comparison.csv", "curves.png", "bars.png"):
        assert str(report[0] / path) in report[1]
    rows = table(markdown, "Params that differ")
    assert rows[0] == ["param", *(label(ids, name) for name in RUNS)]
    assert rows[1:] == [["learning_rate", "0.001", "0.01", "0.001"], ["model.head", "pare", "pare", "hmr"]]
    assert "2 param(s) identical in every run are not shown" in markdown


def test_final_and_best_values_with_the_best_run_in_bold(store, report):
    _, ids = store
    rows = table((report[0] / "comparison.md").read_text(), "Metrics")
    assert rows[0] == ["metric", "value", "better", *(label(ids, name) for name in RUNS)]
    cells = {(row[0], row[1]): row[2:] for row in rows[1:]}
    assert [row[0] for row in rows[1::2]] == DEFAULT_METRICS, "val/* and train/loss only, not train/learning_rate"
    assert cells["train/loss", "final"] == ["lower", "**0.25**", "0.375", "nan"]
    assert cells["train/loss", "best"] == ["lower", "0.25", "**0.125**", "0.5"]
    assert cells["val/pa_mpjpe", "final"] == ["lower", "60", "65", "**58**"]
    assert cells["val/pa_mpjpe", "best"] == ["lower", "60", "**55**", "58"]
    assert cells["val/pve", "final"] == ["lower", "90", "**85**", "—"]
    assert cells["val/pve", "best"] == ["lower", "90", "**85**", "—"]
    assert cells["val/pck", "final"] == ["higher", "0.75", "**1**", "0.625"]
    assert cells["val/pck", "best"] == ["higher", "0.75", "**1**", "0.625"]


def test_csv_has_one_row_per_run(store, report):
    _, ids = store
    with (report[0] / "comparison.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected_columns = ["run_id", "run_name", "status", "param:learning_rate", "param:model.head"]
    expected_columns += [f"{kind}:{m}" for kind in ("final", "best") for m in DEFAULT_METRICS]
    assert list(rows[0]) == expected_columns
    assert [row["run_name"] for row in rows] == list(RUNS)
    assert [row["run_id"] for row in rows] == [ids[name] for name in RUNS]
    assert {row["status"] for row in rows} == {"FINISHED"}
    by_name = {row["run_name"]: row for row in rows}
    assert float(by_name["lr-high"]["best:train/loss"]) == 0.125
    assert float(by_name["lr-high"]["final:train/loss"]) == 0.375
    assert math.isnan(float(by_name["hmr-head"]["final:train/loss"]))
    assert by_name["hmr-head"]["final:val/pve"] == "" and by_name["hmr-head"]["param:model.head"] == "hmr"


@pytest.mark.parametrize("name", ["curves.png", "bars.png"])
def test_plots_are_images_with_content(report, name):
    with Image.open(report[0] / name) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels.std() > 0
    colored = (pixels.max(axis=2) - pixels.min(axis=2)) > 60  # the runs' lines or bars, not only axes and text
    assert colored.sum() > 500


def test_runs_are_selected_by_name_and_by_id(store, tmp_path, capsys):
    uri, ids = store
    code, out, err = compare(
        capsys,
        "--experiment",
        "pare-exp",
        "--tracking-uri",
        uri,
        "--out",
        str(tmp_path),
        "--runs",
        "hmr-head",
        ids["baseline"],
        "--metrics",
        "train/learning_rate",
        "val/pa_mpjpe",
    )
    assert code == 0, err
    rows = table(out, "Params that differ")
    assert rows == [["param", label(ids, "hmr-head"), label(ids, "baseline")], ["model.head", "hmr", "pare"]]
    metrics = table(out, "Metrics")
    assert [row[:2] for row in metrics[1:]] == [
        [m, k] for m in ("train/learning_rate", "val/pa_mpjpe") for k in ("final", "best")
    ]
    assert metrics[1][3:] == ["—", "0.001"], "a metric logged by one run only: nothing to bold"


def test_a_single_run_shows_all_its_params(store, tmp_path, capsys):
    uri, ids = store
    code, out, err = compare(
        capsys, "--experiment", "pare-exp", "--tracking-uri", uri, "--out", str(tmp_path), "--runs", "lr-high"
    )
    assert code == 0, err
    rows = table(out, "Params")
    assert [row[0] for row in rows[1:]] == ["epochs", "learning_rate", "model.head", "seed"]
    assert "**" not in out


def test_default_output_folder(store, tmp_path, capsys, monkeypatch):
    uri, _ = store
    monkeypatch.chdir(tmp_path)
    code, _, err = compare(capsys, "--experiment", "pare-exp", "--tracking-uri", uri, "--metrics", "val/pve")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "outputs" / "compare" / "pare-exp").iterdir()) == [
        "bars.png",
        "comparison.csv",
        "comparison.md",
        "curves.png",
    ]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--experiment", "nope"], ["no experiment named 'nope'", "pare-exp", "empty"]),
        (["--experiment", "empty"], ["experiment 'empty' has no runs"]),
        (["--experiment", "pare-exp", "--runs", "ghost"], ["no run 'ghost'", "baseline (", "lr-high (", "hmr-head ("]),
        (
            ["--experiment", "pare-exp", "--metrics", "val/mpjpe"],
            ["unknown metric(s) val/mpjpe", "val/pa_mpjpe, val/pck"],
        ),
    ],
)
def test_user_errors_name_the_fix(store, tmp_path, capsys, args, expected):
    code, _, err = compare(capsys, *args, "--tracking-uri", store[0], "--out", str(tmp_path))
    assert code == 2
    assert err.startswith("pare compare: error: ") and err.count("\n") == 1
    for text in expected:
        assert text in err
    assert not any(tmp_path.iterdir()), "nothing is written on error"


def test_missing_tracking_uri_says_how_to_set_one(capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = compare(capsys, "--experiment", "pare-exp")
    assert code == 2
    assert "--tracking-uri" in err and "MLFLOW_TRACKING_URI" in err and "mlflow.db" in err


def check_logged_report(uri: str, experiment: str, compared: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    found = client.search_runs([experiment_id], filter_string=f"attributes.run_name = 'compare-{experiment}'")
    assert len(found) == 1
    run = found[0]
    assert run.data.tags[COMPARE_TAG] == ",".join(compared) and run.info.status == "FINISHED"
    names = sorted(item.path for item in client.list_artifacts(run.info.run_id))
    assert names == ["bars.png", "comparison.csv", "comparison.md", "curves.png"]


def test_log_artifacts_makes_a_compare_run(store, tmp_path, capsys):
    uri = store[0]
    ids = make_experiment(uri, "logged", {k: RUNS[k] for k in ("baseline", "lr-high")}, tmp_path / "artifacts")
    code, out, err = compare(
        capsys, "--experiment", "logged", "--tracking-uri", uri, "--out", str(tmp_path / "a"), "--log-artifacts"
    )
    assert code == 0, err
    assert "Logged the report as run compare-logged" in out
    check_logged_report(uri, "logged", [ids["baseline"], ids["lr-high"]])
    code, out, err = compare(capsys, "--experiment", "logged", "--tracking-uri", uri, "--out", str(tmp_path / "b"))
    assert code == 0, err
    assert "# 2 run(s)" in out, "an earlier comparison run is not compared again"


def test_evaluation_runs_are_left_out_unless_named(store, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    uri = store[0]
    ids = make_experiment(uri, "with-eval", {k: RUNS[k] for k in ("baseline", "lr-high")}, tmp_path / "artifacts")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("with-eval").experiment_id
    evaluation = client.create_run(experiment, run_name="evaluate-best", tags={"pare.kind": "evaluate"})
    code, out, err = compare(capsys, "--experiment", "with-eval", "--tracking-uri", uri, "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "# 2 run(s)" in out and "evaluate-best" not in out
    code, out, err = compare(
        capsys,
        "--experiment",
        "with-eval",
        "--tracking-uri",
        uri,
        "--out",
        str(tmp_path / "b"),
        "--runs",
        ids["baseline"],
        evaluation.info.run_id,
        "--metrics",
        "train/loss",
    )
    assert code == 0, err
    assert "evaluate-best" in out


def test_a_run_that_did_not_finish_is_never_best_and_shows_its_status(tmp_path, capsys):
    """A run SIGKILLed mid-training stays RUNNING in MLflow with the lowest loss so far; it used to be printed in
    bold as the best run."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = {
        "finished": ({"lr": "0.001"}, {"train/loss": [(0, 2.0), (5, 1.0)]}),
        "diverged": ({"lr": "inf"}, {"train/loss": [(0, 2.0), (5, NAN)]}),
        "killed": ({"lr": "0.01"}, {"train/loss": [(0, 2.0), (3, 0.5)]}),
        "slower": ({"lr": "0.0001"}, {"train/loss": [(0, 2.0), (5, 1.5)]}),
    }
    ids = make_experiment(uri, "pare", runs, tmp_path / "artifacts", {"diverged": "FAILED", "killed": None})
    code, out, err = compare(capsys, "--experiment", "pare", "--tracking-uri", uri, "--out", str(tmp_path / "r"))
    assert code == 0, err
    statuses = {row[0]: row[1] for row in table(out, "Runs")[1:]}
    assert statuses == {label(ids, "finished"): "FINISHED", label(ids, "diverged"): "FAILED"} | {
        label(ids, "killed"): "RUNNING",
        label(ids, "slower"): "FINISHED",
    }
    cells = {(row[0], row[1]): row[3:] for row in table(out, "Metrics")[1:]}
    assert cells["train/loss", "final"] == ["**1**", "nan", "0.5", "1.5"]
    assert cells["train/loss", "best"] == ["**1**", "2", "0.5", "1.5"]


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_store_is_only_read(store, tmp_path, capsys):
    path = Path(store[0].removeprefix("sqlite:///"))
    before, files = _digest(path), sorted(path.parent.iterdir())
    code, _, err = compare(capsys, "--experiment", "pare-exp", "--tracking-uri", store[0], "--out", str(tmp_path))
    assert code == 0, err
    assert _digest(path) == before and sorted(path.parent.iterdir()) == files


def test_a_database_that_is_not_an_mlflow_store_is_left_as_it_is(tmp_path, capsys):
    """MLflow used to add its 66 tables to it, then say that the experiment does not exist."""
    import sqlite3

    path = tmp_path / "mine.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")
    db.close()
    before = _digest(path)
    code, _, err = compare(
        capsys, "--experiment", "pare", "--tracking-uri", f"sqlite:///{path}", "--out", str(tmp_path / "o")
    )
    assert code == 2 and err.count("\n") == 1, err
    assert "is an SQLite database but not an MLflow store" in err and "experiments" in err
    assert _digest(path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine.db"]


@pytest.mark.slow
def test_against_a_real_mlflow_server(tmp_path, capsys):
    server = MlflowServer(tmp_path / "server").start()
    try:
        ids = make_experiment(server.uri, "remote", RUNS)
        code, out, err = compare(
            capsys,
            "--experiment",
            "remote",
            "--tracking-uri",
            server.uri,
            "--out",
            str(tmp_path / "out"),
            "--runs",
            "lr-high",
            ids["hmr-head"],
            "--log-artifacts",
        )
        assert code == 0, err
        cells = {(row[0], row[1]): row[3:] for row in table(out, "Metrics")[1:]}
        assert cells["val/pa_mpjpe", "best"] == ["**55**", "58"]
        assert cells["val/pve", "final"] == ["85", "—"]
        check_logged_report(server.uri, "remote", [ids["lr-high"], ids["hmr-head"]])
    finally:
        server.stop()
