"""Turning records into training samples: loose crops, part labels, fit quality, webdataset members."""

from preprocessing.samples.build import BuiltSample, SampleBuilder
from preprocessing.samples.spec import CropConfig, QualityConfig

__all__ = ["BuiltSample", "CropConfig", "QualityConfig", "SampleBuilder"]
