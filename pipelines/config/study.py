"""Configuration of a study (``pare study``): several training variants, trained and evaluated the same way."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StudyConfig:
    """Variants of one config trained on the same synthetic data, evaluated on the same test set, compared."""

    output_dir: str = "outputs/study"
    """Folder for the study's data, training runs, evaluations, occlusion analyses and comparison."""

    train_samples: int = 480
    """Synthetic COCO-EFT-like training images (one person each)."""

    test_frames: int = 180
    """Synthetic 3DPW frames, all three splits (sequences of 12 with real 3DPW names; the test split validates and is
    analysed, all three are evaluated, so that 3DPW-OCC is the paper's set)."""

    test_occluders: float = 1.0
    """Probability that a test frame gets synthetic occluders (1.0: an occluded test set)."""

    image_size: int = 320
    """Side of the synthetic source images in pixels."""

    variants: dict[str, list[str]] = field(default_factory=dict)
    """Variant name -> the ``key=value`` overrides that make it, e.g. ``{pare: [model.head=pare], hmr: [model.head=hmr]}``;
    the name becomes the training run's name."""

    compare_metrics: list[str] = field(default_factory=list)
    """Metrics of the comparison; empty: every val/* and eval/* metric and train/loss."""

    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds (``train.seed``): every variant is trained once per seed (run ``<variant>-seed<N>`` when
    there are several), and the study table gives each metric's mean and standard deviation over the seeds."""

    table_metrics: list[str] = field(default_factory=list)
    """Metrics of the study table (mean and standard deviation over seeds); empty: ``compare_metrics``."""

    def __post_init__(self) -> None:
        for name in ("train_samples", "test_frames", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.test_occluders <= 1.0:
            raise ValueError(f"test_occluders must be a probability in 0..1, got {self.test_occluders}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must list at least one seed, each once, got {self.seeds}")
        for name in self.variants:
            if not name or any(c in name for c in "/\\ ="):
                raise ValueError(
                    f"variant names become run names: {name!r} must be non-empty, without / \\ = or spaces"
                )
