"""``pare synth`` end to end: the console script, the preview, notices, refusals and determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pare_model.errors import UserFacingError
from preprocessing.synth.layouts import LAYOUTS, UnknownLayoutError, get_layout
from tests.synth_helpers import SMALL, generate
from tests.test_cli import run_pare

TINY = ("synth.image_size=96", "synth.pw3d_scale=0.1", "synth.h36m_scale=0.1", "synth.sequence_length=1")


def test_cli_writes_a_layout_with_notice_and_preview(procedural_dir, tmp_path):
    out = tmp_path / "coco"
    result = run_pare(
        "synth",
        "--layout",
        "coco_eft",
        "--out",
        str(out),
        "--num",
        "4",
        "--seed",
        "9",
        "--preview",
        "--occluders",
        "0.5",
        f"body_model.asset_dir={procedural_dir}",
        *SMALL,
    )
    assert result.returncode == 0, result.stderr
    assert "Wrote 4 SYNTHETIC coco_eft samples" in result.stdout and "samples/s" in result.stdout
    assert (out / "annotations" / "person_keypoints_train2014.json").is_file()
    manifest = json.loads((out / "synthetic.json").read_text())
    assert manifest["synthetic"] is True and manifest["seed"] == 9 and manifest["num_samples"] == 4
    assert manifest["layout"] == "coco_eft" and "NOT SMPL" in manifest["body_model"]
    assert manifest["options"]["occluder_probability"] == 0.5
    notice = (out / "SYNTHETIC.md").read_text()
    assert "NOT a real dataset" in notice and "procedural body model" in notice and "seed: 9" in notice
    preview = np.asarray(Image.open(out / "preview.png").convert("RGB"))
    assert preview.shape[1] > 1500 and preview.shape[0] > 200  # 4 samples x (image, close-up) in one row
    assert len(np.unique(preview.reshape(-1, 3), axis=0)) > 500  # pictures, not an empty sheet


def test_cli_names_the_valid_layouts_on_a_bad_one(tmp_path):
    result = run_pare("synth", "--layout", "coco", "--out", str(tmp_path / "x"), "--num", "2")
    assert result.returncode == 2
    assert "unknown layout 'coco'" in result.stderr and "coco_eft" in result.stderr and "3dpw" in result.stderr
    assert "did you mean 'coco_eft'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_registry_lists_every_layout_once():
    assert LAYOUTS.names() == (
        "coco_eft",
        "3dpw",
        "3doh",
        "h36m",
        "h36m_mmpose",
        "h36m_humandata",
        "h36m_raw",
        "mpii",
        "spin_npz",
        "humandata",
    )
    valid = "3doh, 3dpw, coco_eft, h36m, h36m_humandata, h36m_mmpose, h36m_raw, humandata, mpii, spin_npz"
    with pytest.raises(UnknownLayoutError, match=f"valid layouts: {valid}"):
        get_layout("h36")
    assert issubclass(UnknownLayoutError, UserFacingError)


def test_help_lists_the_registered_layouts():
    result = run_pare("synth", "--help")
    assert result.returncode == 0, result.stderr
    assert f"one of: {', '.join(LAYOUTS.names())}" in " ".join(result.stdout.split())


def test_refuses_non_empty_output_unless_forced_and_never_foreign_files(procedural_dir, tmp_path):
    out = tmp_path / "out"
    generate(procedural_dir, out, "spin_npz", 1, overrides=TINY)
    with pytest.raises(UserFacingError, match="--force"):
        generate(procedural_dir, out, "spin_npz", 1, overrides=TINY)
    generate(procedural_dir, out, "mpii", 1, overrides=TINY, force=True)
    assert not (out / "synth_train.npz").exists() and (out / "mpii_human_pose_v1_u12_1.mat").is_file()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(UserFacingError, match="did not write"):
        generate(procedural_dir, foreign, "mpii", 1, overrides=TINY, force=True)
    assert (foreign / "thesis.tex").read_text() == "keep me"
    with pytest.raises(UserFacingError, match="--num"):
        generate(procedural_dir, tmp_path / "zero", "mpii", 0, overrides=TINY)
    with pytest.raises(UserFacingError, match="--occluders"):
        generate(procedural_dir, tmp_path / "p", "mpii", 1, occluders=1.5, overrides=TINY)


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("layout", LAYOUTS.names())
def test_same_seed_same_bytes(layout, procedural_dir, tmp_path):
    num = 4 if layout == "3dpw" else 2
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        generate(procedural_dir, tmp_path / name, layout, num, seed=seed, occluders=0.5, overrides=TINY)
    first, again, other = (_files(tmp_path / name) for name in "abc")
    assert first == again
    annotations = [p for p in first if p.suffix in (".json", ".pkl", ".npz", ".mat") and p.name != "synthetic.json"]
    assert annotations and all(first[p] != other[p] for p in annotations)
