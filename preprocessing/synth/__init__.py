"""Synthetic datasets in the real datasets' file layouts, rendered from the body model with exact ground truth.

- :mod:`.poses`: random body poses within joint limits and random shapes;
- :mod:`.textures`, :mod:`.occluder_shapes`: procedural backgrounds and occluding objects;
- :mod:`.scene`: one picture (bodies, lighting, background, occluders) and keypoint visibility;
- :mod:`.h36m_capture`: the Human3.6M capture that the four ``h36m*`` layouts write;
- :mod:`.layouts`: one writer per layout (``coco_eft``, ``3dpw``, ``h36m``, ``h36m_mmpose``, ``h36m_humandata``,
  ``h36m_raw``, ``mpii``, ``spin_npz``, ``humandata``).

:func:`synthesize` is the entry point; ``pare synth`` calls it.

Importing this package does not import torch (``BodyModels`` loads on first use), so that
``pare synth --help`` can list :data:`~preprocessing.synth.layouts.LAYOUTS` cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from preprocessing.synth.common import LayoutResult, PreviewTile, SynthOptions, write_notice

if TYPE_CHECKING:
    from preprocessing.bodies import BodyModels

__all__ = ["BodyModels", "LayoutResult", "PreviewTile", "SynthOptions", "synthesize"]


def __getattr__(name: str) -> Any:
    """``BodyModels`` on first use: it imports the body model, hence torch."""
    if name == "BodyModels":
        from preprocessing.bodies import BodyModels

        return BodyModels
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def synthesize(
    layout: str, out: str | Path, num: int, seed: int, models: BodyModels, options: SynthOptions | None = None
) -> LayoutResult:
    """Write ``num`` samples of ``layout`` into ``out`` (created if missing) with the notice files.

    Args:
        layout: a name in :data:`preprocessing.synth.layouts.LAYOUTS`.
        out: output folder; existing files with the same names are overwritten.
        num: number of samples (for ``3dpw``: frames).
        seed: same seed, same options and same body model give the same bytes.
        models: the body models to render.
        options: how the pictures look (defaults if None).
    """
    from preprocessing.synth.layouts import get_layout

    write = get_layout(layout)
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    options = options or SynthOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = write(out, num, seed, models, options)
    kind = (
        "procedural body model (a stand-in, NOT SMPL)" if models.procedural else "user-supplied SMPL-format body model"
    )
    write_notice(out, result, seed, options, kind)
    return result
