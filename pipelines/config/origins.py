"""Where each value of a resolved config came from: ``pare config show --origin``.

With ``_base_`` files a value may come from a file the user did not name, so the listing says for
every value which layer set it last: ``default`` (the dataclasses), a config file (the one given or
one of its bases), or ``override`` (the command line).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from omegaconf import OmegaConf

from pipelines.config.field_docs import flow_yaml
from pipelines.config.loader import ConfigLayer
from pipelines.config.schema import PareConfig

DEFAULT = "default"
"""The origin of a value no layer set."""

ONE_LINE = 1 << 20
"""Wider than any value, so each value stays on its key's line with its origin after it."""

COMMENT_COLUMN = 56
"""Origin comments line up at this column; longer lines get theirs two spaces after the value."""

KeyPath = tuple[str, ...]


def _leaf_paths(data: Any, prefix: KeyPath = ()) -> Iterator[KeyPath]:
    """The key path of every single value or list in nested mappings (an empty mapping sets nothing)."""
    if not isinstance(data, dict):
        yield prefix
        return
    for key, value in data.items():
        yield from _leaf_paths(value, (*prefix, str(key)))


def value_origins(layers: Sequence[ConfigLayer]) -> dict[KeyPath, str]:
    """For every key path some layer sets, the label of the last layer that sets it (the one that wins)."""
    return {path: layer.label for layer in layers for path in _leaf_paths(layer.data)}


def _rows(node: dict, prefix: KeyPath, origins: dict[KeyPath, str]) -> Iterator[tuple[str, str | None]]:
    """(YAML line, origin) for every key, depth first; sections have no origin of their own."""
    indent = "  " * len(prefix)
    for key, value in node.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and value:
            yield f"{indent}{flow_yaml(key, ONE_LINE)}:", None
            yield from _rows(value, path, origins)
        else:
            yield f"{indent}{flow_yaml(key, ONE_LINE)}: {flow_yaml(value, ONE_LINE)}", origins.get(path, DEFAULT)


def origin_yaml(config: PareConfig, origins: dict[KeyPath, str]) -> str:
    """The config as YAML with each value followed by a comment naming its origin (it still loads as a config)."""
    plain = OmegaConf.to_container(OmegaConf.structured(config))
    lines = []
    for text, origin in _rows(plain, (), origins):
        if origin is not None:
            text = f"{text.ljust(COMMENT_COLUMN - 2)}  # {origin}"
        lines.append(text)
    return "\n".join(lines) + "\n"
