"""bench/process_cpu.py: the processes a command starts, their CPU time grouped by kind, and its exit status."""

from __future__ import annotations

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
