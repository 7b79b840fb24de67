"""The training batch: what the loader's ``DataLoader`` yields, as a ``TypedDict``.

One example per sample comes out of :class:`pipelines.data.samples.SampleTransform` (numpy arrays,
numpy scalars and strings); torch's default collation stacks them into a batch of B: arrays and
scalars become tensors with a leading B, strings become lists of B strings. The supervision
tensors are :class:`pare_model.contracts.LossTargets` (what the loss reads); this adds the images
and the bookkeeping. Validation batches (:class:`pipelines.data.stream.ValidationStream`) have
the same keys. ``tests/test_train_stream.py`` checks the keys against a batch of the real stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pare_model.contracts import LossTargets

if TYPE_CHECKING:
    from torch import Tensor


class TrainingBatch(LossTargets):
    """A collated batch: the loss's supervision plus the following."""

    image: Tensor  # (B, S, S, 3) uint8 RGB crops, S = model.image_size; to_model_input makes network input
    occluders: Tensor  # (B,) int64 synthetic occluders pasted into each crop (0 when occlusion is off)
    skipped: Tensor  # (B,) int64 samples and shards the loader process dropped before each example
    non_finite: Tensor  # (B,) int64 of those, samples whose ground truth held NaN or infinity
    key: list[str]  # B sample keys, as in the shards
    dataset: list[str]  # B dataset names (e.g. "coco-eft", "3dpw")
    extra: list[str]  # B JSON texts of the samples' dataset-specific extras ("{}" when none)


__all__ = ["TrainingBatch"]
