"""The root configuration: one section per component.

Typed dataclasses hold every default. YAML files in ``configs/`` and ``key=value`` overrides
only change them (see :mod:`pipelines.config.loader`). Each job reads only its own sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pare_model.loss_config import LossConfig
from pare_model.model_config import ModelConfig
from pipelines.config.body_model import BodyModelConfig
from pipelines.config.evaluate import EvaluateConfig
from pipelines.config.predict import PredictConfig
from pipelines.config.preprocess import PreprocessConfig
from pipelines.config.quickstart import QuickstartConfig
from pipelines.config.study import StudyConfig
from pipelines.config.synth import SynthConfig
from pipelines.config.train import DataConfig, LoaderConfig, TrackingConfig, TrainConfig


@dataclass
class PareConfig:
    """Everything a ``pare`` job can be configured with."""

    body_model: BodyModelConfig = field(default_factory=BodyModelConfig)
    """The body model and its asset files."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """The network: backbone, head and their sizes."""

    loss: LossConfig = field(default_factory=LossConfig)
    """Training loss weights and the part-segmentation schedule."""

    predict: PredictConfig = field(default_factory=PredictConfig)
    """Inference on images (``pare predict``)."""

    quickstart: QuickstartConfig = field(default_factory=QuickstartConfig)
    """The quickstart job (``pare quickstart``)."""

    synth: SynthConfig = field(default_factory=SynthConfig)
    """The synthetic data generator (``pare synth``)."""

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    """The preprocessing job (``pare preprocess``): readers, crops, part labels, shards."""

    data: DataConfig = field(default_factory=DataConfig)
    """Training data: datasets, their mixing schedule and the validation set (``pare train``)."""

    loader: LoaderConfig = field(default_factory=LoaderConfig)
    """The streaming training loader: batches, augmentation, synthetic occlusion."""

    train: TrainConfig = field(default_factory=TrainConfig)
    """The training loop on Ray Train: steps, optimizer, workers, checkpoints, failures."""

    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """MLflow tracking for training and evaluation."""

    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    """Evaluation (``pare evaluate``), occlusion sensitivity (``pare occlusion-analysis``) and attention pictures."""

    study: StudyConfig = field(default_factory=StudyConfig)
    """A study (``pare study``): training variants on the same data, evaluated and compared."""
