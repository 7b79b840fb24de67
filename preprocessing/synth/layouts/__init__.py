"""Layout writers: each writes N synthetic samples in the file layout of one real dataset.

A writer is ``write(out, num, seed, models, options) -> LayoutResult``; see each module's
docstring for the files and conventions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pare_model.errors import UserFacingError
from preprocessing.bodies import BodyModels
from preprocessing.synth.common import LayoutResult, SynthOptions
from preprocessing.synth.layouts import coco_eft, h36m, mpii, pw3d, spin_npz

LayoutWriter = Callable[[Path, int, int, BodyModels, SynthOptions], LayoutResult]

LAYOUTS: dict[str, LayoutWriter] = {
    "coco_eft": coco_eft.write,
    "3dpw": pw3d.write,
    "h36m": h36m.write,
    "mpii": mpii.write,
    "spin_npz": spin_npz.write,
}


class UnknownLayoutError(UserFacingError, KeyError):
    """A layout name that is not in :data:`LAYOUTS`."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def get_layout(name: str) -> LayoutWriter:
    """The writer of layout ``name``; the error lists the valid names."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise UnknownLayoutError(f"unknown layout {name!r}; valid layouts: {', '.join(sorted(LAYOUTS))}") from None
