"""The study table: mean and standard deviation over seeds, read from a real MLflow store."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from pipelines.study_table import seed_table, write_table


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("study", artifact_location=str(tmp_path / "artifacts"))
    values = {"pare": [(70.0, 30.0), (72.0, 20.0), (74.0, 25.0)], "hmr": [(80.0, 40.0), (83.0, 50.0), (86.0, 45.0)]}
    runs = {}
    for variant, seeds in values.items():
        for seed, (pa, orient) in enumerate(seeds):
            run = client.create_run(experiment, run_name=f"{variant}-seed{seed}")
            client.log_metric(run.info.run_id, "eval/3dpw-occ/pa_mpjpe", pa + 5.0, step=1)  # an earlier value
            client.log_metric(run.info.run_id, "eval/3dpw-occ/pa_mpjpe", pa, step=2)
            client.log_metric(run.info.run_id, "eval/3dpw/orient_error_median", orient, step=2)
            client.set_terminated(run.info.run_id)
            runs.setdefault(variant, []).append(run.info.run_id)
    return uri, runs


def test_mean_and_sample_std_over_seeds_and_the_verdict(store, tmp_path):
    uri, runs = store
    table = seed_table(uri, runs, ["eval/3dpw-occ/pa_mpjpe", "eval/3dpw/orient_error_median"])
    pare = table.cells["pare"]["eval/3dpw-occ/pa_mpjpe"]
    assert pare.mean == pytest.approx(72.0) and pare.std == pytest.approx(np.std([70, 72, 74], ddof=1))
    assert table.cells["hmr"]["eval/3dpw/orient_error_median"].mean == pytest.approx(45.0)
    verdict = table.verdict()
    assert verdict.startswith("eval/3dpw-occ/pa_mpjpe: pare 72.0 vs hmr 83.0") and "a clear difference" in verdict
    markdown, files = write_table(table, tmp_path / "out")
    assert "| pare | 3 | 72.0 ± 2.0 | 25.0 ± 5.0 |" in markdown
    assert all(f.is_file() for f in files)
    rows = (tmp_path / "out" / "study_table.csv").read_text().splitlines()
    assert rows[0] == "variant,metric,mean,std,n,values" and len(rows) == 5


def test_a_margin_inside_the_spread_is_called_so(store):
    uri, runs = store
    table = seed_table(
        uri, {"pare": runs["pare"], "hmr": runs["hmr"][:1] + runs["pare"][:1]}, ["eval/3dpw-occ/pa_mpjpe"]
    )
    assert "within the seed-to-seed spread" in table.verdict()  # 72.0 vs 75.0 with stds 2.0 and 7.1
