"""Configuration of training (``pare train``): the data mix, the loader and its augmentation, the
training loop on Ray Train, and MLflow tracking.

Defaults follow PARE (``docs/pare-reference.md``): Adam at 1e-4, batch 64, flip 0.5,
rotation N(0, 30) clipped at 60 degrees with p = 0.4, scale N(1, 0.25) clipped to 0.75..1.25,
colour gain U(0.6, 1.4), motion blur p = 0.5, 1..7 occluders scaled U(0.2, 1.0).

The augmentation sections (``AugmentConfig``, ``OcclusionConfig``) live beside the code that reads
them, in :mod:`preprocessing.augment.config`, and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from preprocessing.augment.config import AugmentConfig, OcclusionConfig  # re-exported: sections of LoaderConfig


@dataclass
class DatasetConfig:
    """One training dataset: one or more shard folders (each with a manifest.json) drawn as one."""

    shards: list[str] = field(default_factory=list)
    """Shard folders written by ``pare preprocess`` (local paths or URIs such as s3://bucket/shards/coco-eft/train).
    Samples are drawn from the folders in proportion to their sizes."""


@dataclass
class StageConfig:
    """One stage of the data schedule: from ``start_step`` on, batches mix the datasets by ``mix``."""

    start_step: int = 0
    """Optimizer step at which this stage begins (the stage with the largest start_step <= step applies)."""

    mix: dict[str, float] = field(default_factory=dict)
    """Dataset name (a key of data.datasets) -> ratio; ratios are normalised to sum to 1."""

    def __post_init__(self) -> None:
        if self.start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {self.start_step}")
        for name, ratio in self.mix.items():
            if not ratio > 0:
                raise ValueError(f"mix.{name} must be a ratio > 0, got {ratio}")


@dataclass
class DataConfig:
    """What the training loop reads: named datasets, the mixing schedule and the validation set."""

    datasets: dict[str, DatasetConfig] = field(default_factory=dict)
    """Training datasets by name, e.g. ``coco: {shards: [outputs/shards/coco-eft/train]}``."""

    stages: dict[str, StageConfig] = field(default_factory=dict)
    """Mixing schedule by stage name; empty: every dataset in equal parts for the whole run.
    PARE's stage 1 is COCO-EFT only; its stage 2 is h36m 0.5, EFT in-the-wild 0.3, mpi-inf-3dhp 0.2
    (configs/train_stage1.yaml, configs/train_stage2.yaml)."""

    validation: list[str] = field(default_factory=list)
    """Shard folders of the validation set (MPJPE, PA-MPJPE and PVE on samples with a fit); empty: no validation."""

    validation_max_samples: int = 0
    """Validate on at most this many samples (the first ones, in shard order); 0: all of them."""

    def __post_init__(self) -> None:
        if self.validation_max_samples < 0:
            raise ValueError(f"validation_max_samples must be >= 0, got {self.validation_max_samples}")


@dataclass
class LoaderConfig:
    """The streaming loader inside each training worker."""

    batch_size: int = 64
    """Samples per batch per training worker (PARE: 64 on one GPU)."""

    num_workers: int = 4
    """Loader processes per training worker (torch DataLoader); 0 decodes in the training process."""

    shuffle_buffer: int = 1000
    """Samples held for shuffling in each loader process (more: better mixing, more memory)."""

    label_size: int = 56
    """Side of the part-label map given to the loss (nearest neighbour). 56 is the head's map size; PARE
    upsampled the logits to 224, which ``label_size: 224`` reproduces at about 2.5x the loss cost on CPU."""

    prefetch_factor: int = 2
    """Batches each loader process prepares ahead."""

    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Geometric and photometric augmentation."""

    occlusion: OcclusionConfig = field(default_factory=OcclusionConfig)
    """Synthetic occlusion."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {self.shuffle_buffer}")
        if not 8 <= self.label_size <= 1024:
            raise ValueError(f"label_size must be in 8..1024, got {self.label_size}")
        if self.prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be >= 1, got {self.prefetch_factor}")


@dataclass
class TrainConfig:
    """The training loop on Ray Train: steps, optimizer, workers, checkpoints and failures."""

    run_name: str = "pare"
    """Name of the run: its folder under storage_path and its MLflow run name. Rerunning with the same name resumes."""

    storage_path: str = "outputs/train"
    """Where checkpoints go: a local folder (default), a shared filesystem or s3://bucket/prefix on clusters (S3
    credentials and AWS_ENDPOINT_URL from the environment of every node; a remote one needs tracking.tracking_uri)."""

    max_steps: int = 100_000
    """Optimizer steps in total (across stages)."""

    steps_per_epoch: int = 1000
    """Batches per worker per epoch (every worker sees the same number, so DDP never waits on a short rank)."""

    learning_rate: float = 1e-4
    """Adam learning rate (PARE: 1e-4; reproductions: 2e-4 stage 1, 5e-5 stage 2)."""

    lr_schedule: Literal["constant", "step", "cosine"] = "constant"
    """Learning rate over the run: 'constant' (PARE); 'step' multiplies it by lr_decay_factor at each of
    lr_decay_steps; 'cosine' anneals it from learning_rate to learning_rate * lr_decay_factor at max_steps.
    A function of the step alone, so a resumed run continues on the same curve."""

    lr_decay_steps: list[int] = field(default_factory=list)
    """With lr_schedule 'step': the steps at which the learning rate is multiplied by lr_decay_factor."""

    lr_decay_factor: float = 0.1
    """With 'step': the factor at each decay step; with 'cosine': the final learning rate's share."""

    lr_warmup_steps: int = 0
    """Ramp the learning rate up linearly over the first N steps (on top of lr_schedule); 0: no warm-up."""

    weight_decay: float = 0.0
    """Adam weight decay (PARE: 0)."""

    seed: int = 0
    """Seed of weights, data order and augmentation."""

    num_workers: int = 2
    """Ray Train workers (one process each, DDP)."""

    use_gpu: bool = False
    """One GPU per worker with NCCL; false: CPU workers with gloo."""

    cpus_per_worker: int = 1
    """CPUs reserved per worker (the loader processes share them)."""

    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """'auto': bf16 autocast where the worker's device runs bf16 natively (a CUDA GPU with bf16; a CPU with
    avx512_bf16 or AMX), fp32 elsewhere; each worker decides at start-up and says so once (MLflow tag
    ``pare.precision``). Or 'fp32', 'bf16' (emulated, so slow, on a CPU without those instructions; refused on a
    GPU without bf16), 'fp16' (GPUs only, with a gradient scaler). The body model and the camera projection
    always run in fp32."""

    channels_last: bool = True
    """Model and input in channels-last (NHWC) memory format, which bf16 convolutions need to be fast; false: NCHW."""

    compile: bool = False
    """Compile the network with torch.compile (on every worker, at start-up; see docs/benchmarks.md for whether
    it pays for its compile time)."""

    torch_threads: int = 0
    """Intra-op threads per worker; 0: cpus_per_worker."""

    validate_every: int = 1000
    """Validate every N steps (and at the end)."""

    checkpoint_every: int = 1000
    """Checkpoint every N steps (and at the end)."""

    keep_checkpoints: int = 3
    """Checkpoints kept: the best K by validation PA-MPJPE; Ray always keeps the latest too."""

    log_every: int = 20
    """Log step metrics to MLflow every N steps."""

    images_every: int = 500
    """Log pictures (mesh overlay, part labels, attention) every N steps; 0: never."""

    max_failures: int = 3
    """Worker failures (a lost node, a killed process) survived by restarting from the latest checkpoint."""

    worker_start_timeout_s: float = 600.0
    """How long Ray Train waits for all its workers to start, each time it starts them (Ray's own default, 60 s, is
    short for a busy laptop, where starting a worker that imports torch can take a minute, or for a cluster that
    adds nodes on demand). A ``RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S`` set in the environment wins."""

    nan_policy: Literal["stop", "skip"] = "stop"
    """On a non-finite loss: 'stop' ends the run with an error naming the step; 'skip' drops the batch and counts it."""

    max_nan_skips: int = 10
    """With nan_policy 'skip': stop anyway after this many skipped batches in a row."""

    grad_clip_norm: float = 0.0
    """Clip the gradients' global norm to this before each optimizer step; 0: no clipping. The norm before
    clipping is logged as ``train/grad_norm`` either way (a rising norm warns of divergence)."""

    init_checkpoint: str = ""
    """Model checkpoint (.pt from ``pare train`` or ``pare checkpoint import``) to start from, e.g. stage 1's for stage 2."""

    ray_address: str = ""
    """Ray cluster: empty starts a local one, ``auto`` joins the running one, or ``ray://host:10001``."""

    def __post_init__(self) -> None:
        for name in (
            "max_steps",
            "steps_per_epoch",
            "num_workers",
            "cpus_per_worker",
            "validate_every",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "max_nan_skips",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("images_every", "max_failures", "torch_threads", "lr_warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.worker_start_timeout_s <= 0:
            raise ValueError(f"worker_start_timeout_s must be > 0, got {self.worker_start_timeout_s}")
        if self.grad_clip_norm < 0:
            raise ValueError(f"grad_clip_norm must be >= 0 (0: off), got {self.grad_clip_norm}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.lr_decay_factor <= 1:
            raise ValueError(f"lr_decay_factor must be in (0, 1], got {self.lr_decay_factor}")
        if self.lr_schedule == "step" and not self.lr_decay_steps:
            raise ValueError("lr_schedule 'step' needs lr_decay_steps, e.g. train.lr_decay_steps=[3000]")
        if any(s < 1 for s in self.lr_decay_steps) or list(self.lr_decay_steps) != sorted(self.lr_decay_steps):
            raise ValueError(f"lr_decay_steps must be increasing steps >= 1, got {list(self.lr_decay_steps)}")
        if not self.run_name or any(c in self.run_name for c in "/\\ "):
            raise ValueError(f"run_name must be a non-empty name without slashes or spaces, got {self.run_name!r}")


@dataclass
class TrackingConfig:
    """MLflow tracking: where runs go and what is registered."""

    tracking_uri: str = ""
    """MLflow tracking URI (http://host:5000, sqlite:///path.db, ...); empty: the MLFLOW_TRACKING_URI environment
    variable if set, else sqlite under a local train.storage_path (``<storage_path>/mlflow.db``, artifacts in
    ``<storage_path>/mlartifacts``). A sqlite store keeps its artifacts in ``mlartifacts`` beside the database file."""

    experiment: str = "pare"
    """MLflow experiment name."""

    registered_model: str = "pare"
    """Name under which the final model is registered; empty: log it without registering."""

    system_metrics: bool = True
    """Log CPU, memory and GPU use from the rank-0 worker (MLflow system metrics)."""

    timeout_s: float = 10.0
    """Seconds an MLflow request may take before training gives up on it and carries on."""
