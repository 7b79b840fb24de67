"""The ``pare`` command end to end, through the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.visualize.palette import PART_COLORS

ROOT = Path(__file__).resolve().parents[1]
# The console script installed next to this interpreter (the venv's bin/), else on PATH.
PARE = next((str(p) for p in [Path(sys.executable).parent / "pare"] if p.is_file()), None) or shutil.which("pare")


def run_pare(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    assert PARE, "the pare console script is not installed; run `make test`"
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    return subprocess.run([PARE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_config_show_prints_the_resolved_config():
    result = run_pare("config", "show", "configs/quickstart.yaml", "body_model.seed=3")
    assert result.returncode == 0, result.stderr
    assert "seed: 3" in result.stdout and "source: procedural" in result.stdout
    documented = run_pare("config", "show", "--docs")
    assert "# Which model file to load" in documented.stdout


def test_preprocess_readers_lists_every_reader_with_its_options():
    from preprocessing.readers import READERS

    result = run_pare("preprocess", "--readers")
    assert result.returncode == 0, result.stderr
    headers = [line.split(":")[0] for line in result.stdout.splitlines() if line and not line.startswith(" ")]
    assert headers == sorted(READERS)
    assert "options.mosh = '': Folder of the MoSh fits" in result.stdout
    assert "options.max_join_distance = 0.05" in result.stdout and "splits: train, test" in result.stdout
    assert (
        "3doh: 3DOH50K" in result.stdout and "splits: train, validation, test, all; dataset name: 3dpw" in result.stdout
    )


def test_user_errors_are_one_clear_line_without_traceback():
    result = run_pare("config", "show", "configs/quickstart.yaml", "body_model.gendr=male")
    assert result.returncode == 2
    assert "error: unknown config key 'body_model.gendr'" in result.stderr
    assert "Did you mean 'body_model.gender'" in result.stderr
    assert "Traceback" not in result.stderr


def test_body_model_synth_and_info(tmp_path):
    out = tmp_path / "bm"
    result = run_pare("body-model", "synth", "--out", str(out), "--seed", "1", "--format", "npz")
    assert result.returncode == 0, result.stderr
    assert "NOT SMPL" in result.stdout
    assert {p.name for p in out.iterdir()} >= {
        "SMPL_NEUTRAL.npz",
        "SMPL_MALE.npz",
        "SMPL_FEMALE.npz",
        "J_regressor_extra.npy",
        "J_regressor_h36m.npy",
        "smpl_mean_params.npz",
        "README.md",
        "procedural.json",
    }
    info = run_pare("body-model", "info", str(out), "--gender", "female")
    assert info.returncode == 0, info.stderr
    assert "procedural stand-in" in info.stdout and "vertices 6890, faces 13776" in info.stdout
    again = run_pare("body-model", "synth", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    negative = run_pare("body-model", "synth", "--out", str(tmp_path / "other"), "--seed", "-1")
    assert negative.returncode == 2 and "--seed must be >= 0" in negative.stderr
    missing = run_pare("body-model", "info", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def _panel_parts(panel: np.ndarray) -> set[int]:
    """Parts whose colour appears (shaded: a scaled palette colour) in a rendered panel."""
    pixels = panel.reshape(-1, 3).astype(np.float64)
    pixels = pixels[(pixels.sum(1) > 60) & (pixels.max(1) - pixels.min(1) > 12)]  # drop white, black, grey
    unit = pixels / np.linalg.norm(pixels, axis=1, keepdims=True)
    palette = PART_COLORS.astype(np.float64)
    palette /= np.linalg.norm(palette, axis=1, keepdims=True)
    similarity = unit @ palette.T
    nearest = similarity.argmax(1)[similarity.max(1) > 0.9995]
    counts = np.bincount(nearest, minlength=24)
    return set(np.flatnonzero(counts >= 30).tolist())


def test_quickstart_draws_a_person_with_coloured_parts(tmp_path):
    result = run_pare(
        "quickstart",
        str(ROOT / "configs" / "quickstart.yaml"),
        f"body_model.asset_dir={tmp_path / 'bm'}",
        f"quickstart.output_dir={tmp_path / 'out'}",
        "quickstart.panel_size=400",
        "quickstart.pipeline=false",  # the whole pipeline: tests/test_quickstart.py
    )
    assert result.returncode == 0, result.stderr
    png = tmp_path / "out" / "body_model_preview.png"
    assert str(png.resolve()) in result.stdout
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[1] == 4 * 400
    rest_panel = image[56 : 56 + 400, :400]
    assert _panel_parts(rest_panel) == set(range(24))  # every part is visible in the T-pose
    walking = image[56 + 30 : 56 + 400, 400:800]  # below the caption
    body = np.argwhere((walking < 235).any(axis=2))
    height = np.ptp(body[:, 0])
    width = np.ptp(body[:, 1])
    assert height > 300 and height > 1.8 * width  # a standing, person-shaped silhouette
