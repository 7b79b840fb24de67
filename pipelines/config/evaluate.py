"""Configuration of evaluation (``pare evaluate``), the occlusion sensitivity analysis
(``pare occlusion-analysis``) and attention pictures (``pare attention``).

The protocol follows PARE (``docs/pare-reference.md``): H36M-regressor joints,
14 LSP joints centred on the H36M pelvis, MPJPE, PA-MPJPE and PVE in mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class OcclusionAnalysisConfig:
    """The paper's occlusion sensitivity analysis: a square grey patch slid over each input image."""

    patch_size: int = 40
    """Side of the occluding patch in pixels of a 224 x 224 input (scaled with model.image_size)."""

    stride: int = 40
    """Step between patch positions in pixels of a 224 input; 40/40 gives the paper's 6 x 6 grid."""

    num_images: int = 8
    """Images analysed (the first ones with a fit in shard order); 0: every image of the shards."""

    figures: int = 4
    """Per-image Figure-1 pictures written (the dataset averages are always drawn)."""

    output_dir: str = "outputs/occlusion"
    """Folder for the figures, ``occlusion.npz`` and ``part_sensitivity.csv``."""

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.stride < 1:
            raise ValueError(f"patch_size and stride must be >= 1, got {self.patch_size} and {self.stride}")
        if self.num_images < 0 or self.figures < 0:
            raise ValueError(f"num_images and figures must be >= 0, got {self.num_images} and {self.figures}")


@dataclass
class EvaluateConfig:
    """What is evaluated, on which shards, with how many Ray actors, and where results go."""

    checkpoint: str = ""
    """Model checkpoint (.pt from ``pare train`` / ``pare checkpoint import``, or a released PARE .ckpt)."""

    run_id: str = ""
    """MLflow run of a ``pare train`` run: its best model is evaluated and the results are logged to it
    (instead of ``checkpoint``)."""

    shards: list[str] = field(default_factory=list)
    """Shard folders of the test sets (``pare preprocess`` output, local or s3://), e.g.
    ``[outputs/shards/3dpw/test]``; a parent folder expands to every dataset/split under it."""

    subsets: list[str] = field(default_factory=list)
    """Subsets reported: ``3dpw`` (test split), ``3dpw-occ`` (the paper's, over the whole 3DPW: needs shards of all
    three splits), ``3dpw-test-occ``, ``3dpw-train``, ``3dpw-validation``, ``3doh``, ``h36m-p1`` (every camera), ``h36m-p2`` (the frontal camera) or a dataset name;
    empty: every subset the shards hold."""

    predictor: Literal["model", "mean_pose", "ground_truth"] = "model"
    """What predicts: the model; the mean pose and shape for every image (the baseline); or each sample's own
    fit (every error must be 0: a check of the protocol and the shards)."""

    baseline: bool = True
    """Also measure the mean-pose baseline on the same samples."""

    batch_size: int = 32
    """Images per forward pass."""

    num_actors: int = 2
    """Ray actors evaluating shards in parallel (each loads the model once); at most one per
    ``samples_per_actor`` samples to evaluate."""

    samples_per_actor: int = 500
    """The fewest samples to evaluate that justify one more actor of ``pare evaluate``. Starting one (a Ray actor
    that imports torch and loads the model) takes 4 to 8 s of a core, about the time the small CPU model takes
    for 500 samples, so a small evaluation runs on fewer actors."""

    cpus_per_actor: int = 1
    """CPUs reserved per actor (its torch threads)."""

    use_gpu: bool = False
    """One GPU per actor."""

    max_samples: int = 0
    """Evaluate at most this many samples per shard folder (the first ones); 0: all."""

    allow_damaged_shards: bool = False
    """Evaluate even when shards differ from their manifest (size or sha256), reporting the samples lost
    (``samples_lost`` in metrics.json); false: fail before evaluating, naming the shards."""

    output_dir: str = "outputs/evaluate"
    """Folder for metrics.json, the CSV breakdowns and the per-joint chart."""

    log_to: Literal["training_run", "new_run", "none"] = "training_run"
    """MLflow: into the training run the checkpoint came from (metrics ``eval/<subset>/<metric>``), or a new
    evaluation run linked to it (tag ``pare.evaluated_run``), or nowhere. Without a known training run a new run is
    made."""

    ray_address: str = ""
    """Ray cluster: empty starts a local one, ``auto`` joins the running one, or ``ray://host:10001``."""

    occlusion: OcclusionAnalysisConfig = field(default_factory=OcclusionAnalysisConfig)
    """``pare occlusion-analysis``: patch, grid and figures."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "num_actors", "samples_per_actor", "cpus_per_actor"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_samples < 0:
            raise ValueError(f"max_samples must be >= 0, got {self.max_samples}")
