"""Layout writers: each writes N synthetic samples in the file layout of one real dataset.

A writer is ``write(out, num, seed, models, options) -> LayoutResult``; see each module's
docstring for the files and conventions. The writers are registered by module path, so that
``pare synth --help`` lists the names without importing them (and torch).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pare_model.registry import Registry, UnknownNameError

if TYPE_CHECKING:
    from preprocessing.bodies import BodyModels
    from preprocessing.synth.common import LayoutResult, SynthOptions

LayoutWriter = Callable[[Path, int, int, "BodyModels", "SynthOptions"], "LayoutResult"]


class UnknownLayoutError(UnknownNameError, KeyError):
    """A layout name that is not in :data:`LAYOUTS`."""


LAYOUTS: Registry[LayoutWriter] = Registry("layout", UnknownLayoutError)
LAYOUTS.register_lazy("coco_eft", "preprocessing.synth.layouts.coco_eft:write")
LAYOUTS.register_lazy("3dpw", "preprocessing.synth.layouts.pw3d:write")
LAYOUTS.register_lazy("3doh", "preprocessing.synth.layouts.oh3d:write")
LAYOUTS.register_lazy("h36m", "preprocessing.synth.layouts.h36m:write")
LAYOUTS.register_lazy("h36m_mmpose", "preprocessing.synth.layouts.h36m:write_mmpose")
LAYOUTS.register_lazy("h36m_humandata", "preprocessing.synth.layouts.h36m_humandata:write")
LAYOUTS.register_lazy("h36m_raw", "preprocessing.synth.layouts.h36m_raw:write")
LAYOUTS.register_lazy("mpii", "preprocessing.synth.layouts.mpii:write")
LAYOUTS.register_lazy("spin_npz", "preprocessing.synth.layouts.spin_npz:write")
LAYOUTS.register_lazy("humandata", "preprocessing.synth.layouts.humandata:write")


def get_layout(name: str) -> LayoutWriter:
    """The writer of layout ``name``; :class:`UnknownLayoutError` lists the valid names."""
    return LAYOUTS.get(name)
