"""Turning records into training samples: loose crops, part labels, fit quality, webdataset members.

The crop and quality settings (:mod:`preprocessing.samples.spec`, plain dataclasses) are imported at once; the
builder, which needs torch and the body model, when first named, so that reading a config does not load torch.
"""

from typing import TYPE_CHECKING, Any

from preprocessing.samples.spec import CropConfig, QualityConfig

if TYPE_CHECKING:
    from preprocessing.samples.build import BuiltSample, SampleBuilder

__all__ = ["BuiltSample", "CropConfig", "QualityConfig", "SampleBuilder"]


def __getattr__(name: str) -> Any:
    if name in ("BuiltSample", "SampleBuilder"):
        from preprocessing.samples import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
