"""What produces the body to be measured: the model, the mean-pose baseline, or each sample's own fit.

A predictor maps a batch (``image``: (B, S, S, 3) uint8 RGB crops, plus the sample's fields) to
joint rotations (B, 24, 3, 3) and shape (B, 10). :class:`EvalContext` holds the body model, the
predictor and the device, and is built once per Ray actor from a picklable :class:`ContextSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pare_model.body_model import BodyModel, load_body_model_assets
from pare_model.geometry import axis_angle_to_matrix, rot6d_to_matrix
from pare_model.image_input import to_model_input
from pare_model.model_config import ModelConfig

Prediction = tuple[torch.Tensor, torch.Tensor]
Predictor = Callable[[torch.Tensor, dict], Prediction]


@dataclass(frozen=True)
class ContextSpec:
    """Everything an evaluation worker needs to set itself up (plain, picklable values)."""

    asset_dir: str
    predictor: str = "model"
    checkpoint: str = ""
    device: str = "cpu"
    threads: int = 1


def _load_model(spec: ContextSpec) -> torch.nn.Module:
    """The model of ``spec.checkpoint``: a local file, or a remote one (``s3://...``) copied to a temporary folder."""
    from pare_model.checkpoint import load_model
    from pipelines.io.storage import local_file

    if not spec.checkpoint:
        raise ValueError("the model predictor needs a checkpoint")
    with local_file(spec.checkpoint) as path:
        return load_model(path, spec.asset_dir)


class EvalContext:
    """The body model, the predictor and the input size of one evaluation worker."""

    def __init__(self, spec: ContextSpec) -> None:
        torch.set_num_threads(max(1, spec.threads))
        self.device = torch.device(spec.device)
        # a GPU actor's other CPUs decode in loader processes, so that the GPU does not wait for the JPEGs
        self.loader_workers = max(1, spec.threads - 1) if self.device.type == "cuda" else 0
        self.model = None
        if spec.predictor == "model":
            self.model = _load_model(spec).to(self.device).eval()
            self.body_model = self.model.body_model
            self.image_size = self.model.image_size
            mean_pose = self.model.head.init_pose.reshape(1, 24, 6)
            mean_shape = self.model.head.init_shape.reshape(1, -1)
        else:
            assets = load_body_model_assets(spec.asset_dir)
            self.body_model = BodyModel.from_assets(assets).to(self.device).eval()
            self.image_size = ModelConfig().image_size
            mean_pose = torch.as_tensor(assets.mean_params["pose"], dtype=torch.float32).reshape(1, 24, 6)
            mean_shape = torch.as_tensor(assets.mean_params["shape"], dtype=torch.float32).reshape(1, -1)
        self.mean_rotations = rot6d_to_matrix(mean_pose).to(self.device)  # (1, 24, 3, 3)
        self.mean_shape = mean_shape.to(self.device)
        self.mean_mesh: tuple[torch.Tensor, torch.Tensor] | None = None  # (1, V, 3), (1, 14, 3); made on first use
        self.predictor: Predictor = {
            "model": self.predict_model,
            "mean_pose": self.predict_mean_pose,
            "ground_truth": self.predict_ground_truth,
        }[spec.predictor]

    @torch.no_grad()
    def predict_model(self, images: torch.Tensor, batch: dict) -> Prediction:
        output = self.model(to_model_input(images, self.device))
        return output["pred_pose"].float(), output["pred_shape"].float()

    def predict_mean_pose(self, images: torch.Tensor, batch: dict) -> Prediction:
        count = len(images)
        return self.mean_rotations.expand(count, -1, -1, -1), self.mean_shape.expand(count, -1)

    def predict_ground_truth(self, images: torch.Tensor, batch: dict) -> Prediction:
        rotations = axis_angle_to_matrix(batch["pose"].reshape(-1, 24, 3).float()).to(self.device)
        return rotations, batch["betas"].float().to(self.device)
