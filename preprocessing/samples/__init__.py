"""Turning records into training samples: loose crops, part labels, fit quality, webdataset members.

The package exports the crop and quality settings (:mod:`preprocessing.samples.spec`, plain dataclasses) that the
configs name; the builder, which needs torch and the body model, is imported from
:mod:`preprocessing.samples.build` where it is used, so that reading a config does not load torch.
"""

from preprocessing.samples.spec import CropConfig, QualityConfig

__all__ = ["CropConfig", "QualityConfig"]
