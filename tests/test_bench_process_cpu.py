"""bench/process_cpu.py: the processes a command starts, their CPU time grouped by kind, and its exit status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY = "import sys, time\nstart = time.process_time()\nwhile time.process_time() - start < 1.0: pass\nsys.exit(3)"


def test_a_busy_child_is_counted_under_its_kind_and_its_status_passes_through():
    # the child's command line names mypy, so it counts as lint; it burns 1 s of CPU and exits 3
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "process_cpu.py"), "--", sys.executable, "-c", BUSY, "mypy"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert re.search(r"^wall \d+ s on \d+ cores, cores \d+ % busy; \d+ processes used \d+ s of CPU$", done.stdout, re.M)
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| lint (ruff, mypy) |")]
    processes, cpu = (cell.strip() for cell in row.split("|")[2:4])
    assert processes == "1" and int(cpu) >= 1, row


def test_busy_processes_load_the_cores_beside_the_command_and_are_not_counted():
    """--busy 1: a spinning process beside the command (a 2-s sleep), stopped after it, left out of the table."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "process_cpu.py"), "--busy", "1", "--", "sleep", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[0]
    assert re.search(r"\d+ processes used 0 s of CPU \(beside 1 busy processes\)$", line), line
    busy = int(re.search(r"cores (\d+) % busy", line)[1])
    assert busy >= 100 // (os.cpu_count() or 1) // 2, line  # the spinning process kept (about) one core busy
    assert "while True" not in done.stdout


def test_a_command_is_counted_by_its_program_not_by_a_path_among_its_arguments():
    """A command the tests start with a path in pytest's temporary folder is that command, not a pytest process."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "process_cpu.py"),
            "--",
            *(sys.executable, "-c", BUSY, "mypy", "/tmp/pytest-of-root/pytest-3/config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "| lint (ruff, mypy) | 1 |" in done.stdout, done.stdout
    assert "| pytest processes |" not in done.stdout, done.stdout


def test_ray_workers_are_grouped_by_the_actor_they_became():
    """The second table: Ray worker processes by title, a method name left out, other processes not counted."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("process_cpu", ROOT / "bench" / "process_cpu.py")
    process_cpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(process_cpu)
    seen = {
        "1:1": [20.0, "ray::RayTrainWorker.run_train_fn"],
        "2:1": [10.0, "ray::RayTrainWorker"],
        "3:1": [7.0, "ray::TrainController.run"],
        "4:1": [1.0, "python default_worker.py --node-ip-address"],
        "5:1": [50.0, "python -m pytest -n 2"],
    }
    lines = process_cpu.ray_workers_by_title(seen)
    assert lines[3:] == [
        "| ray::RayTrainWorker | 2 | 30 | 15.0 |",
        "| ray::TrainController | 1 | 7 | 7.0 |",
        "| (never given a title) | 1 | 1 | 1.0 |",
    ], lines
    assert process_cpu.ray_workers_by_title({"5:1": [50.0, "python -m pytest -n 2"]}) == []
