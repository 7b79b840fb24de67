"""How well an SMPL fit matches its 2D keypoints: reprojection error and keypoints on the silhouette."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocessing.record import RecordRejected
from preprocessing.samples.spec import QualityConfig


@dataclass(frozen=True)
class FitQuality:
    """Fit quality of one sample; ``nan`` where it cannot be measured."""

    reprojection_error: float
    """Mean distance, in pixels at network resolution, from projected fit joints to labelled keypoints."""
    keypoints_in_silhouette: float
    """Fraction of labelled keypoints inside the crop that fall on a rendered body pixel."""

    def to_json(self) -> dict:
        return {
            "reprojection_error": None if np.isnan(self.reprojection_error) else round(self.reprojection_error, 4),
            "keypoints_in_silhouette": None
            if np.isnan(self.keypoints_in_silhouette)
            else round(self.keypoints_in_silhouette, 4),
        }


def measure_fit(
    projected: np.ndarray, keypoints: np.ndarray, labels: np.ndarray, pixels_per_network_pixel: float
) -> FitQuality:
    """Fit quality from (49, 2) projected fit joints and (49, 3) keypoints, both in crop pixels.

    Args:
        projected: the fit's joints projected into the crop.
        keypoints: x, y, confidence in the crop.
        labels: (R, R) rendered part labels of the crop.
        pixels_per_network_pixel: crop pixels per pixel of the network-resolution box.
    """
    labelled = keypoints[:, 2] > 0
    if not labelled.any():
        return FitQuality(float("nan"), float("nan"))
    distance = np.linalg.norm(projected[labelled] - keypoints[labelled, :2], axis=1)
    error = float(distance.mean() / pixels_per_network_pixel)
    size = labels.shape[0]
    cols = np.floor(keypoints[:, 0]).astype(np.int64)
    rows = np.floor(keypoints[:, 1]).astype(np.int64)
    inside = labelled & (cols >= 0) & (rows >= 0) & (cols < size) & (rows < size)
    if not inside.any():
        return FitQuality(error, float("nan"))
    on_body = labels[rows[inside], cols[inside]] > 0
    return FitQuality(error, float(on_body.mean()))


def check_fit(quality: FitQuality, config: QualityConfig) -> None:
    """Raise ``poor_fit`` when ``quality`` fails the configured thresholds.

    A reprojection error that is not a number fails the reprojection check: the fit's joints did not project
    (a camera inside or behind the body), and a comparison with NaN would let the fit through.
    """
    if config.max_reprojection_error > 0 and np.isnan(quality.reprojection_error):
        raise RecordRejected(
            "poor_fit",
            "the reprojection error is NaN: the fit's joints do not project onto the crop (a camera inside or "
            "behind the body) (preprocess.quality.max_reprojection_error)",
        )
    if config.max_reprojection_error > 0 and quality.reprojection_error > config.max_reprojection_error:
        raise RecordRejected(
            "poor_fit",
            f"reprojection error {quality.reprojection_error:.1f} px > {config.max_reprojection_error:g} "
            "(preprocess.quality.max_reprojection_error)",
        )
    if config.min_keypoints_in_silhouette > 0 and quality.keypoints_in_silhouette < config.min_keypoints_in_silhouette:
        raise RecordRejected(
            "poor_fit",
            f"{quality.keypoints_in_silhouette:.0%} of keypoints on the rendered body < "
            f"{config.min_keypoints_in_silhouette:.0%} (preprocess.quality.min_keypoints_in_silhouette)",
        )
