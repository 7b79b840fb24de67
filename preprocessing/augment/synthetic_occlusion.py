"""Synthetic occlusion: object cut-outs pasted over training images with alpha blending.

PARE pastes 1..7 Pascal VOC objects per image, each scaled by ``U(0.2, 1.0) x min(H, W) / 256``
at a uniformly random centre. The cut-outs come from an occluder bank made by
``pare occluders build`` (:mod:`pipelines.occluder_bank`); without one, procedural occluders
(random textured polygons and blobs with soft edges) stand in, so training never needs a
dataset download.

Bank file: an ``.npz`` with one (h, w, 4) uint8 RGBA array per cut-out, named
``occluder_00000``, ``occluder_00001``, ..., and ``info`` (a JSON string: source, count, rules).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from pare_model.errors import UserFacingError
from pare_model.input_limits import check_npz
from preprocessing.augment.config import OcclusionConfig
from preprocessing.synth.textures import random_polygon, random_texture

BANK_PREFIX = "occluder_"
PROCEDURAL_POOL = 64
"""Procedural cut-outs made once per loader process and reused with random scales and places."""


class OccluderBankError(UserFacingError, ValueError):
    """The occluder bank file is missing or not a bank; the message says how to make one."""


def save_bank(path: str | Path, cutouts: list[np.ndarray], info: dict) -> Path:
    """Write cut-outs ((h, w, 4) uint8 RGBA) as a bank file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{BANK_PREFIX}{i:05d}": np.ascontiguousarray(c, dtype=np.uint8) for i, c in enumerate(cutouts)}
    partial = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(partial, info=np.array(json.dumps(info | {"count": len(cutouts)})), **arrays)
    partial.replace(path)
    return path


def load_bank(path: str | Path) -> list[np.ndarray]:
    """All cut-outs of a bank file, as (h, w, 4) uint8 RGBA arrays."""
    path = Path(path)
    if not path.is_file():
        raise OccluderBankError(
            f"occluder bank {path} does not exist; make it with `pare occluders build --voc VOCdevkit/VOC2012 "
            f"--out {path}` or set loader.occlusion.bank='' for procedural occluders"
        )
    try:
        check_npz(path)  # what its cut-outs declare, against its size and the limits, before np.load allocates them
        with np.load(path, allow_pickle=False) as data:
            names = sorted(k for k in data.files if k.startswith(BANK_PREFIX))
            cutouts = [data[k] for k in names]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise OccluderBankError(f"{path} is not a readable occluder bank (.npz): {error}") from error
    bad = [n for n, c in zip(names, cutouts, strict=True) if c.ndim != 3 or c.shape[2] != 4 or c.dtype != np.uint8]
    if not cutouts or bad:
        raise OccluderBankError(
            f"{path} holds no RGBA cut-outs{' (bad: ' + ', '.join(bad[:5]) + ')' if bad else ''}; "
            "rebuild it with `pare occluders build`"
        )
    return cutouts


def procedural_occluder(rng: np.random.Generator, size: int) -> np.ndarray:
    """One (size, size, 4) RGBA cut-out: a textured polygon or blob with a soft edge."""
    mask = np.zeros((size, size), np.uint8)
    center = np.array([size / 2.0, size / 2.0])
    if rng.random() < 0.5:
        polygon = random_polygon(rng, center, radius=size * rng.uniform(0.3, 0.48))
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255)
    else:  # a blob: a few overlapping ellipses
        for _ in range(int(rng.integers(2, 6))):
            c = center + rng.uniform(-0.2, 0.2, 2) * size
            axes = (int(size * rng.uniform(0.1, 0.3)), int(size * rng.uniform(0.1, 0.3)))
            cv2.ellipse(mask, (int(c[0]), int(c[1])), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(size / 96.0, 0.8))
    rgb = random_texture(rng, size, size)
    return np.dstack([rgb, alpha]).astype(np.uint8)


def procedural_bank(seed: int, count: int = PROCEDURAL_POOL, size: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [procedural_occluder(rng, size) for _ in range(count)]


def paste(image: np.ndarray, cutout: np.ndarray, center: np.ndarray, scale: float) -> None:
    """Alpha-blend ``cutout`` resized by ``scale`` onto ``image`` (in place) centred at ``center`` (x, y)."""
    height, width = cutout.shape[:2]
    new_w, new_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    x0, y0 = int(round(center[0] - new_w / 2.0)), int(round(center[1] - new_h / 2.0))
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + new_w, image.shape[1]), min(y0 + new_h, image.shape[0])
    if ix1 <= ix0 or iy1 <= iy0:
        return
    # Bilinear is enough for occluders and, unlike area averaging, costs the same at every scale.
    resized = cv2.resize(cutout, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    piece = resized[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    region = image[iy0:iy1, ix0:ix1]
    alpha = cv2.cvtColor(np.ascontiguousarray(piece[..., 3]), cv2.COLOR_GRAY2RGB)
    # region = piece x alpha + region x (1 - alpha), in OpenCV's saturating uint8 arithmetic (half the
    # time of the same in NumPy on occluder-sized regions).
    foreground = cv2.multiply(np.ascontiguousarray(piece[..., :3]), alpha, scale=1 / 255)
    background = cv2.multiply(region, 255 - alpha, scale=1 / 255)
    cv2.add(foreground, background, dst=region)


class Occluder:
    """Pastes occluders on images by :class:`OcclusionConfig`; one per loader process."""

    def __init__(self, config: OcclusionConfig, seed: int = 0) -> None:
        self.config = config
        if config.bank:
            self.cutouts = load_bank(config.bank)
            self.kind = "voc"
        else:
            self.cutouts = procedural_bank(seed, size=config.procedural_size)
            self.kind = "procedural"

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> int:
        """Occlude ``image`` (H, W, 3) uint8 in place; returns how many occluders were pasted."""
        config = self.config
        if not config.enabled or rng.random() >= config.probability:
            return 0
        height, width = image.shape[:2]
        base = min(height, width) / 256.0
        count = int(rng.integers(config.min_count, config.max_count + 1))
        for _ in range(count):
            cutout = self.cutouts[int(rng.integers(len(self.cutouts)))]
            scale = float(rng.uniform(config.min_scale, config.max_scale)) * base
            paste(image, cutout, rng.uniform([0, 0], [width, height]), scale)
        return count
