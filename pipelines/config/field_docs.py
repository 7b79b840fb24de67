"""Field documentation of the config dataclasses, read from their attribute docstrings.

A config field is documented by a string literal right below it (as in torchtitan):

    seed: int = 0
    \"\"\"Seed of the procedural stand-in.\"\"\"

These docstrings feed ``pare config show --docs`` and ``docs/configuration.md``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import typing
from collections.abc import Iterator
from typing import Any

import yaml

from pipelines.config.loader import expected_value, mapped_section


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Docstring of every documented field of a dataclass (missing ones are absent)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def walk_fields(config: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any, str, bool]]:
    """(dotted key, value, type, doc, is_section) for every field, depth first."""
    hints = typing.get_type_hints(type(config))
    docs = field_docs(type(config))
    for field in dataclasses.fields(config):
        key = f"{prefix}.{field.name}" if prefix else field.name
        value = getattr(config, field.name)
        is_section = dataclasses.is_dataclass(value)
        yield key, value, hints[field.name], docs.get(field.name, ""), is_section
        if is_section:
            yield from walk_fields(value, key)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def flow_yaml(value: Any, width: int = 80) -> str:
    """A value as YAML in flow style, so a commented listing keeps one key per entry; wrapped past ``width``."""
    value = _plain(value)
    return yaml.safe_dump(value, default_flow_style=True, width=width).strip().removesuffix("...").strip()


def commented_yaml(config: Any) -> str:
    """The config as YAML with each field's docstring as a comment above it."""
    lines = []
    for key, value, field_type, doc, is_section in walk_fields(config):
        depth = key.count(".")
        indent = "  " * depth
        for doc_line in doc.splitlines():
            lines.append(f"{indent}# {doc_line}".rstrip())
        name = key.rsplit(".", 1)[-1]
        if is_section:
            lines.append(f"{indent}{name}:")
        else:
            lines.append(f"{indent}# ({expected_value(field_type)})")
            lines.append(f"{indent}{name}: {flow_yaml(value)}")
    return "\n".join(lines) + "\n"


def markdown_reference(config: Any) -> str:
    """A Markdown table per section: key, default, accepted values and meaning."""
    out = [
        "# Configuration reference",
        "",
        "Generated from the config dataclasses in `pipelines/config/` by `pare config docs`;",
        "do not edit by hand. Set values in a YAML file (see `configs/`) or on the command line",
        "as `section.key=value`.",
        "",
        "## Config files and `_base_`",
        "",
        "A config file may build on others: a top-level `_base_: base/cpu_small.yaml` (one path, or a",
        "list of paths applied in order) names YAML files, relative to the folder of the file that names",
        "them, that are read first; a base may have bases of its own. The file's keys win over its",
        "bases' (mappings merge key by key; lists and single values replace), and command-line",
        "overrides win over every file. `_base_` is read only at the top level of a file; a cycle",
        "of bases, a file named as a base twice (in one list, or by two files) and more than 64 files",
        "in all are refused. `pare config show FILE --origin` follows each value with where it came",
        "from: `default`, the file or one of its bases, or `override`. The blocks the shipped configs",
        "share are in `configs/base/`.",
    ]
    for key, value, _, doc, is_section in walk_fields(config):
        if not is_section:
            continue
        out += [
            "",
            f"## `{key}`",
            "",
            " ".join(doc.split()),
            "",
            "| key | default | accepts | meaning |",
            "| --- | --- | --- | --- |",
        ]
        hints = typing.get_type_hints(type(value))
        docs = field_docs(type(value))
        for field in dataclasses.fields(value):
            if dataclasses.is_dataclass(getattr(value, field.name)):
                continue
            meaning = " ".join(docs.get(field.name, "").split()).replace("|", "\\|")
            default = flow_yaml(getattr(value, field.name)).replace("|", "\\|")
            out.append(f"| `{field.name}` | `{default}` | {expected_value(hints[field.name])} | {meaning} |")
        for field in dataclasses.fields(value):
            item_type = mapped_section(hints[field.name])
            if item_type is not None:
                out += _mapped_section_table(f"{key}.{field.name}", item_type)
    return "\n".join(out) + "\n"


def _mapped_section_table(key: str, item_type: type) -> list[str]:
    """Markdown table of the fields of each entry of a ``dict[str, dataclass]`` field."""
    doc = " ".join((item_type.__doc__ or "").split())
    out = ["", f"## `{key}.<name>`", "", doc, "", "| key | default | accepts | meaning |", "| --- | --- | --- | --- |"]
    example, hints, docs = item_type(), typing.get_type_hints(item_type), field_docs(item_type)
    for field in dataclasses.fields(item_type):
        meaning = " ".join(docs.get(field.name, "").split()).replace("|", "\\|")
        default = flow_yaml(getattr(example, field.name)).replace("|", "\\|")
        out.append(f"| `{field.name}` | `{default}` | {expected_value(hints[field.name])} | {meaning} |")
    return out
