"""Synthetic training and validation shards in one call: procedural body model -> `pare synth` -> `pare preprocess`.

For benchmarks and small end-to-end runs: a COCO-EFT-like training source and, optionally, a
3DPW-like source, preprocessed into ``<root>/shards/coco-eft/train`` and ``<root>/shards/3dpw/{test,
train,validation}``: the test split validates training and is where the occlusion analysis looks; all
three are evaluated, so that 3DPW-OCC is the paper's set (over the whole 3DPW). Everything is
rendered from the procedural body model (NOT SMPL).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

COCO_OPTIONS = {"images": "images/train2014", "eft": "eft_fits/COCO2014-All-ver01.json"}
PW3D_SPLITS = ("test", "train", "validation")


@dataclass(frozen=True)
class SyntheticShards:
    coco_source: Path
    train: Path
    validation: Path | None
    """The 3DPW test split's shards (None without 3DPW frames)."""
    body_model: Path
    evaluation: tuple[Path, ...] = ()
    """Every 3DPW split's shards: test, train, validation (the whole 3DPW, for 3DPW-OCC)."""


def make_synthetic_shards(
    root: str | Path,
    train_samples: int,
    validation_frames: int = 0,
    image_size: int = 320,
    pose_variation: float = 1.0,
    samples_per_shard: int = 100,
    show_progress: bool = False,
    asset_dir: str | Path | None = None,
    test_occluders: float = 0.0,
    train_occluders: float = 0.3,
    reuse: bool = False,
) -> SyntheticShards:
    """Generate and preprocess; ``asset_dir`` is the procedural body model's folder (default ``root/body_model``);
    ``train_occluders`` / ``test_occluders``: probability of occluders drawn into the source pictures; ``reuse``:
    keep the shards of an earlier call when their manifests are all there."""
    from pipelines.config.loader import load_config
    from pipelines.preprocess.job import run_preprocess
    from pipelines.synth import run_synth

    root = Path(root).resolve()  # workers of a joined cluster may run in another folder
    assets = Path(asset_dir) if asset_dir else root / "body_model"
    shards = root / "shards"
    made = SyntheticShards(
        coco_source=root / "coco",
        train=shards / "coco-eft" / "train",
        validation=shards / "3dpw" / "test" if validation_frames else None,
        body_model=assets,
        evaluation=tuple(shards / "3dpw" / split for split in PW3D_SPLITS) if validation_frames else (),
    )
    if reuse and all((folder / "manifest.json").is_file() for folder in (made.train, *made.evaluation)):
        print(f"Reusing the synthetic shards in {shards} (delete the folder to make new ones).")
        return made
    synth = load_config(
        None,
        [f"body_model.asset_dir={assets}", f"synth.image_size={image_size}", f"synth.pose_variation={pose_variation}"],
    )
    run_synth(synth, "coco_eft", root / "coco", train_samples, seed=0, occluders=train_occluders, force=True)
    overrides = [
        f"body_model.asset_dir={assets}",
        f"preprocess.output={shards}",
        f"preprocess.samples_per_shard={samples_per_shard}",
        "preprocess.sources.coco.reader=coco_eft",
        f"preprocess.sources.coco.root={root / 'coco'}",
        *(f"preprocess.sources.coco.options.{k}={v}" for k, v in COCO_OPTIONS.items()),
    ]
    if validation_frames:
        run_synth(synth, "3dpw", root / "3dpw", validation_frames, seed=1, occluders=test_occluders, force=True)
        for split in PW3D_SPLITS:  # one source per split: the test shards alone serve validation
            overrides += [
                f"preprocess.sources.pw3d_{split}.reader=3dpw",
                f"preprocess.sources.pw3d_{split}.root={root / '3dpw'}",
                f"preprocess.sources.pw3d_{split}.split={split}",
            ]
    run_preprocess(load_config(None, overrides), show_progress=show_progress)
    return made
