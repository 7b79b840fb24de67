"""What the console of a ``pare`` command must not show by default: Ray's internals, library logging, Python warnings."""

from __future__ import annotations

import re

NOISE = (
    "(RayTrainWorker",
    "(TrainController",
    "(PlacementGroupCleaner",
    "(MapWorker",
    "(raylet",
    "core_worker.cc",
    "TrainingReport(",
    "Warning",
    "WARNING",
    " INFO ",
    "Traceback",
    "Downloading artifacts",  # MLflow's bar while it logs the model
    "Successfully registered model",  # mlflow.register_model's own lines on stderr
    "Created version '",
)
"""Markers of Ray's actors and core, library logging and Python warnings in a line."""

LOG_LINE = re.compile(
    r"\[\d{4}-\d\d-\d\d [\d:,.]+ [DIWEF] \d+ \d+\] "  # Ray's C++ core: [2026-12-02 18:43:17,455 I 32740 32740]
    r"|\d{4}-\d\d-\d\d [\d:,.]+\s+(DEBUG|INFO|WARNING|ERROR)\s"  # Python logging: 2026-12-02 18:43:27,720\tINFO
)


def noise(text: str) -> list[str]:
    """The lines of ``text`` that the console must not show."""
    return [line for line in text.splitlines() if any(marker in line for marker in NOISE) or LOG_LINE.search(line)]
