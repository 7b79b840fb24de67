"""``pare config show|docs``: print the resolved configuration or its reference."""

from __future__ import annotations

import argparse


def _split_config_args(values: list[str]) -> tuple[str | None, list[str]]:
    """The optional leading config file and the ``key=value`` overrides after it."""
    if values and "=" not in values[0]:
        return values[0], values[1:]
    return None, values


def _with_origins(path: str | None, overrides: list[str]) -> str:
    """The resolved config, each value followed by where it came from (a value may come from a ``_base_`` file)."""
    from pipelines.config.loader import config_layers, resolve_layers
    from pipelines.config.origins import origin_yaml, value_origins

    layers = config_layers(path, overrides)
    return origin_yaml(resolve_layers(layers), value_origins(layers))


def _show(args: argparse.Namespace) -> int:
    from pipelines.config.field_docs import commented_yaml
    from pipelines.config.loader import load_config, to_yaml

    path, overrides = _split_config_args(args.args)
    if args.origin:
        print(_with_origins(path, overrides), end="")
        return 0
    config = load_config(path, overrides)
    print(commented_yaml(config) if args.docs else to_yaml(config), end="")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from pipelines.config.field_docs import markdown_reference
    from pipelines.config.schema import PareConfig

    print(markdown_reference(PareConfig()), end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="show the resolved configuration")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print the config after merging FILE and overrides",
        description="Print the configuration: the typed defaults, then FILE (after the files its _base_ names), "
        "then key=value overrides.",
    )
    show.add_argument("args", nargs="*", metavar="[FILE] [key=value ...]", help="a YAML config file and/or overrides")
    view = show.add_mutually_exclusive_group()
    view.add_argument("--docs", action="store_true", help="add each field's documentation as comments")
    view.add_argument(
        "--origin",
        action="store_true",
        help="follow each value with where it came from: default, the config file or one of its _base_ files, "
        "or override",
    )
    show.set_defaults(handler=_show)
    docs = actions.add_parser("docs", help="print the Markdown reference of every config key")
    docs.set_defaults(handler=_docs)
