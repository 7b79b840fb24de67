"""Shared helpers of the synthetic data tests: small configs, generation, and independent checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pare_model.body_model.parts import face_parts
from pipelines.config.loader import load_config
from pipelines.synth import run_synth
from preprocessing.render import render_part_labels

SMALL = ("synth.image_size=160", "synth.pw3d_scale=0.15", "synth.h36m_scale=0.2", "synth.sequence_length=3")
"""Small pictures keep the tests fast; the geometry checks do not depend on the size."""


def small_config(asset_dir: Path, *overrides: str):
    """The project config with the test body model and small pictures."""
    return load_config(None, [f"body_model.asset_dir={asset_dir}", *SMALL, *overrides])


def generate(
    asset_dir: Path, out: Path, layout: str, num: int, seed: int = 0, occluders: float = 0.5, overrides=(), **kwargs
):
    """Run ``pare synth``'s function into ``out``; returns its :class:`SynthRun`."""
    return run_synth(small_config(asset_dir, *overrides), layout, out, num, seed, occluders=occluders, **kwargs)


def labels_from_screen(body_model, screen: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) part labels of a body at (V, 3) screen points, rendered independently of the generator."""
    faces = body_model.faces.numpy()
    return render_part_labels(screen, faces, face_parts(faces, body_model.part_map.numpy()), height, width)


def on_foreground(labels: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(K,) bool: whether each (K, 2) keypoint's pixel is labelled as body."""
    cols = np.clip(np.floor(xy[:, 0]).astype(int), 0, labels.shape[1] - 1)
    rows = np.clip(np.floor(xy[:, 1]).astype(int), 0, labels.shape[0] - 1)
    return labels[rows, cols] > 0


def check_dtype_like(ours: np.ndarray, real: np.ndarray, key: str) -> None:
    """Same dtype kind (strings of any length) and same trailing shape as the real array."""
    assert ours.dtype.kind == real.dtype.kind, f"{key}: dtype {ours.dtype} vs real {real.dtype}"
    if real.dtype.kind != "U":
        assert ours.dtype == real.dtype, f"{key}: dtype {ours.dtype} vs real {real.dtype}"
    assert ours.shape[1:] == real.shape[1:], f"{key}: shape {ours.shape} vs real {real.shape}"
