"""The root configuration: one section per component.

Typed dataclasses hold every default. YAML files in ``configs/`` and ``key=value`` overrides
only change them (see :mod:`pipelines.config.loader`). Each job reads only its own sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.config.body_model import BodyModelConfig
from pipelines.config.quickstart import QuickstartConfig


@dataclass
class PareConfig:
    """Everything a ``pare`` job can be configured with."""

    body_model: BodyModelConfig = field(default_factory=BodyModelConfig)
    """The body model and its asset files."""

    quickstart: QuickstartConfig = field(default_factory=QuickstartConfig)
    """The quickstart job (``pare quickstart``)."""
