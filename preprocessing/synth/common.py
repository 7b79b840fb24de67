"""What every layout writer shares: options, per-sample randomness, files, the notice, preview tiles.

Each sample draws from its own generator seeded by ``(seed, layout, index)``, so sample ``i``
is the same whatever ``--num`` is, and writing is reproducible byte for byte.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

GENERATOR = "pare-pipeline synthetic data generator"
GENERATOR_VERSION = 1
NOTICE_FILE = "SYNTHETIC.md"
MANIFEST_FILE = "synthetic.json"


@dataclass(frozen=True)
class SynthOptions:
    """How the pictures look; the defaults of ``pipelines.config.synth.SynthConfig``."""

    image_size: int = 320
    """Longer side in pixels of the in-the-wild layouts' images (coco_eft, mpii, spin_npz, humandata)."""
    occluder_probability: float = 0.3
    """Chance that a picture gets occluding objects over its person."""
    jpeg_quality: int = 90
    """JPEG quality of the written images."""
    sequence_length: int = 12
    """Frames per 3DPW sequence."""
    pw3d_scale: float = 0.25
    """3DPW image size relative to the real 1080 x 1920 portrait frames."""
    h36m_scale: float = 1.0
    """Human3.6M image size relative to the real 1000 x 1000 / 1000 x 1002 frames."""
    batch_size: int = 32
    """Samples posed per body model forward pass."""
    pose_variation: float = 1.0
    """Factor on the variation of the poses around their base postures."""
    preview_count: int = 0
    """How many samples to keep for the preview contact sheet (0: none)."""


@dataclass(frozen=True)
class PreviewTile:
    """One sample for the preview: its image, part labels and 2D keypoints.

    Attributes:
        image: (H, W, 3) uint8; labels: (H, W) uint8; keypoints: (K, 2) image pixels;
        visible: (K,) int visibility 0 outside, 1 hidden, 2 visible; caption: short text.
    """

    image: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    caption: str


@dataclass
class LayoutResult:
    """What a layout wrote."""

    layout: str
    num_samples: int
    annotation_files: list[Path] = field(default_factory=list)
    num_images: int = 0
    previews: list[PreviewTile] = field(default_factory=list)

    def keep_preview(self, tile_factory, limit: int) -> None:
        """Add a preview tile built by ``tile_factory()`` while fewer than ``limit`` are kept."""
        if len(self.previews) < limit:
            self.previews.append(tile_factory())


def sample_rng(seed: int, layout: str, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of ``layout``: independent of every other sample."""
    return np.random.default_rng([seed, zlib.crc32(layout.encode()), index])


def chunks(num: int, size: int) -> Iterator[range]:
    """Consecutive ranges of at most ``size`` indices covering ``range(num)``."""
    for start in range(0, num, size):
        yield range(start, min(start + size, num))


def write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Write an (H, W, 3) uint8 RGB image as a baseline JPEG (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=quality)


def write_json(path: Path, data: object, indent: int | None = None) -> None:
    """Write JSON with a fixed key order and a trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent) + "\n")


def progress(iterable: Iterable, total: int, layout: str) -> Iterable:
    """A tqdm progress bar over the samples of a layout (on stderr)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=f"synth {layout}", unit="sample", leave=False)


def write_notice(out: Path, result: LayoutResult, seed: int, options: SynthOptions, body_model: str) -> None:
    """Write ``SYNTHETIC.md`` and ``synthetic.json``: these are rendered data, not a real dataset."""
    manifest = {
        "synthetic": True,
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "layout": result.layout,
        "seed": seed,
        "num_samples": result.num_samples,
        "num_images": result.num_images,
        "body_model": body_model,
        "options": {k: v for k, v in asdict(options).items() if k != "preview_count"},
        "annotation_files": sorted(str(p.relative_to(out)) for p in result.annotation_files),
    }
    write_json(out / MANIFEST_FILE, manifest, indent=2)
    files = "\n".join(f"- `{name}`" for name in manifest["annotation_files"])
    (out / NOTICE_FILE).write_text(
        f"""# Synthetic data (NOT a real dataset)

Every image and annotation in this folder was rendered by the {GENERATOR} v{GENERATOR_VERSION}
from the {body_model}. No real person, photograph or motion capture is in it. The files
follow the layout of the real `{result.layout}` data so that the same readers load them, and
the ground truth is exact: it is what was rendered.

- layout: `{result.layout}`
- samples: {result.num_samples} (images: {result.num_images})
- seed: {seed}; same seed and options, same bytes

Annotation files:

{files}

Regenerate with `pare synth --layout {result.layout} --num {result.num_samples} --seed {seed} --out <folder>`.
See `docs/synthetic-data.md` in the project for the conventions.
"""
    )
