"""Configuration of the preprocessing job (``pare preprocess``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from preprocessing.samples.spec import CropConfig, QualityConfig


@dataclass
class SourceConfig:
    """One dataset split to preprocess: which reader, where its files are, and the reader's options."""

    reader: str = ""
    """Reader name: coco_eft, mpii, lspet, h36m, h36m_npz, 3dpw, 3doh, spin_npz, humandata (``pare preprocess --readers`` lists them and their options)."""

    root: str = ""
    """Folder or fsspec URI (s3://bucket/coco, gs://...) holding the source's files."""

    split: str = "train"
    """Split to read: train, validation or test (3doh: train or test); the 3dpw reader also takes ``all``, its three
    splits into one folder (``3dpw/all``: the set 3DPW-OCC is measured on)."""

    dataset: str = ""
    """Dataset name used for the output folder and the sample keys; empty: the reader's default."""

    options: dict[str, Any] = field(default_factory=dict)
    """Reader options (annotation file names, EFT fits, ...); an unknown option fails listing the valid ones."""

    enabled: bool = True
    """Set to false to keep a source in a config file but skip it."""


@dataclass
class PreprocessConfig:
    """The preprocessing job: sources in, WebDataset shards out, on a local or remote Ray cluster."""

    output: str = "outputs/shards"
    """Folder or pyarrow/fsspec URI (s3://bucket/shards) receiving one folder per dataset/split."""

    sources: dict[str, SourceConfig] = field(default_factory=dict)
    """The sources, by a name of your choice (``preprocess.sources.<name>.root=...`` on the command line)."""

    samples_per_shard: int = 1000
    """Planned records per tar shard and per unit of work (a Ray task builds and writes one shard); records
    rejected while building leave their shard that much smaller. Smaller shards keep more workers busy on small
    sources and redo less work after a crash."""

    chunk_size: int = 128
    """Records per body-model batch inside a shard's task (the last batch of a shard holds the rest). Larger
    batches spread the per-batch cost; smaller ones hold fewer built samples in memory at a time."""

    num_workers: int = 0
    """Parallel sample builders (Ray actors, one CPU each); 0: one per CPU of the cluster, and at most one per
    ``records_per_worker`` records still to build."""

    records_per_worker: int = 1000
    """With ``num_workers`` 0, the fewest records to build that justify one more builder. Starting one (a Ray
    actor that imports torch and OpenCV and loads the body models) takes 3 to 7 s of a core, the time a builder
    takes for about 1000 records, so a small job runs on fewer builders than there are CPUs."""

    ray_address: str = ""
    """Ray cluster to use: empty starts a local one (``ray.init()``), ``auto`` joins the running one, or ``ray://host:10001``."""

    min_keypoints: int = 1
    """Records with fewer labelled 2D keypoints and no 3D joints are rejected as no_visible_keypoints."""

    images_outside_root: bool = False
    """Read images that an annotation file places outside its source's root (``../``, absolute paths). Off: such
    records are rejected as image_outside_root, so an annotation file cannot make the job read other files."""

    keep_work: bool = False
    """Keep the per-shard summaries (``_work/``) after the manifest is written (for debugging)."""

    overwrite: bool = False
    """Allow replacing shards made with a different config or source; otherwise such a rerun stops with an error."""

    crop: CropConfig = field(default_factory=CropConfig)
    """The stored loose crop."""

    quality: QualityConfig = field(default_factory=QualityConfig)
    """The SMPL-fit quality filter."""

    def __post_init__(self) -> None:
        if self.samples_per_shard < 1:
            raise ValueError(f"samples_per_shard must be >= 1, got {self.samples_per_shard}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.records_per_worker < 1:
            raise ValueError(f"records_per_worker must be >= 1, got {self.records_per_worker}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
