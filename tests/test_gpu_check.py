"""bench/gpu_check.py, the GPU check, in its tiny CPU mode: real Ray, real shards, real training and evaluation.

The full check needs one CUDA GPU (docs/benchmarks.md); here its tiny mode runs the same code paths on the
CPU, so that the script cannot rot, and asking for CUDA where there is none must fail, not fall back.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_quickstart import noise

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
NUMBER = re.compile(r"\d+(?:\.\d+)?")
EXPECTED_ROWS = [
    ("model step: resnet_small 64 px, batch 2", "fp32"),
    ("model step: resnet_small 64 px, batch 2", "bf16"),
    ("model step: resnet_small 64 px, batch 2", "channels_last + bf16"),
    ("training step on the device: resnet_small 64 px, batch 2", "StepRunner, bf16, channels-last, fused Adam"),
    ("pare train: synthetic shards, 1 worker", "train.use_gpu=false, bf16, 6 steps, batch 2, 1 loader process"),
    ("pare evaluate: synthetic 3DPW-like shards, 1 actor", "evaluate.use_gpu=false, batch 8"),
]


def run_check(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=cwd,
    )


def table_rows(stdout: str) -> list[list[str]]:
    """The result table's body rows, as cells (the per-step table printed before it is not part of it)."""
    table = stdout[stdout.index("| part |") :]
    lines = [
        line for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| part |", "| ---"))
    ]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


@pytest.mark.slow
def test_the_tiny_check_prints_every_row_with_figures_and_goals(tmp_path, ray_cluster):
    env = os.environ | {"RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    done = run_check(["--tiny"], tmp_path, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert noise(done.stdout) == [] and noise(done.stderr) == [], noise(done.stdout) + noise(done.stderr)
    assert "\tINFO " not in done.stderr, done.stderr[-3000:]  # Ray Data's "Dataset ... execution finished"
    rows = table_rows(done.stdout)
    assert [(part, setting) for part, setting, _, _ in rows] == EXPECTED_ROWS, done.stdout[-3000:]
    for part, setting, figures, goal in rows:
        numbers = [float(n) for n in NUMBER.findall(figures)]
        assert numbers and numbers[0] > 0, (part, setting, figures)
        assert goal, (part, setting)
    steps, bf16, channels_last_bf16, device_step, train, evaluate = rows
    assert re.search(r"^host work \d+ % of step time .*syncs n/a on CPU$", device_step[2]), device_step
    assert "0 syncs per non-logging step: not judged" in device_step[3]
    per_step = re.findall(r"^\| (\d+) \| [\d.]+ \| [\d.]+ \| \d+ % \| n/a \|$", done.stdout, re.MULTILINE)
    assert per_step == ["0", "1", "2"], done.stdout[-3000:]  # the per-step table of the 3 device steps
    assert "train " in steps[2] and "img/s" in steps[2] and "forward " in steps[2]
    for row in (bf16, channels_last_bf16):
        assert re.search(r"bf16 >= 2x fp32: \d+\.\d\dx, not judged \(tiny run\)", row[3]), row
    assert re.search(r"steps/s, .* samples/s, loader wait \d+\.\d % of step time", train[2]), train
    assert "loader wait < 5 % with 8 loader processes: not judged" in train[3]
    assert re.search(r"^\d+ samples in \d+\.\d s = \d+\.\d samples/s", evaluate[2]), evaluate
    assert "GPU check (tiny run" in done.stdout and "finished in " in done.stdout


def test_asking_for_cuda_without_it_fails_loudly_naming_the_fix(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so the check would run instead of failing")
    for args in ([], ["--tiny", "--device", "cuda"]):
        done = run_check(args, tmp_path)
        assert done.returncode == 2, (args, done.stdout[-2000:], done.stderr[-2000:])
        assert done.stderr.startswith("bench/gpu_check.py: error: --device cuda asks for CUDA"), done.stderr
        assert "torch.cuda.is_available() is False" in done.stderr
        assert "CUDA build of torch" in done.stderr and "--tiny" in done.stderr  # the fixes
        assert "| part |" not in done.stdout  # nothing measured on the CPU instead
