"""Load the configuration: typed defaults, then a YAML file, then ``key=value`` overrides.

A file may name base files in a top-level ``_base_`` (one path or a list, relative to the file's
folder); the bases are read first, in order, each with its own bases before it, so the shipped
configs share their common blocks instead of copying them. Every file and the overrides are one
:class:`ConfigLayer`, merged in order (mappings key by key, lists and single values replaced),
which is also what ``pare config show --origin`` reports each value's source from.

Every key is checked against the dataclasses before merging, so a misspelt key fails with
the list of valid keys (and a suggestion), a section given a scalar or a value given a
mapping fails naming the key, and OmegaConf's structured merge checks value types. Last,
the dataclasses are built section by section, so their own validation (``__post_init__``
raising ``ValueError`` with a message that starts with the field name) is reported with
the section's path.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pare_model.errors import UserFacingError
from pare_model.input_limits import check_loaded
from pipelines.config.schema import PareConfig

BASE_KEY = "_base_"
"""The top-level key of a config file that names the files it builds on."""
MAX_BASE_FILES = 64
"""Most files one config may be built from, its bases and theirs included (the shipped configs use 5)."""


class ConfigError(UserFacingError):
    """The configuration file or an override is wrong; the message names the key."""


@dataclasses.dataclass(frozen=True)
class ConfigLayer:
    """One source of values merged over the defaults: a config file's own keys, or the overrides."""

    label: str
    """Where the values came from, as ``pare config show --origin`` prints it: the file, or ``override``."""

    origin: str
    """Where the values came from, as error messages place it: ``in FILE`` or ``on the command line``."""

    data: dict
    """The values, nested like the config (a file's ``_base_`` removed)."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def expected_value(annotation: Any) -> str:
    """Human description of what a field of this type accepts."""
    if typing.get_origin(annotation) is Literal:
        return "one of: " + ", ".join(str(choice) for choice in typing.get_args(annotation))
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def mapped_section(annotation: Any) -> type | None:
    """The dataclass ``D`` of a ``dict[str, D]`` field (named sections such as ``preprocess.sources``), else None."""
    if typing.get_origin(annotation) is dict:
        value_type = typing.get_args(annotation)[1]
        if dataclasses.is_dataclass(value_type):
            return value_type
    return None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def check_keys(data: dict, cls: type, origin: str, prefix: str = "") -> None:
    """Raise ConfigError for keys that ``cls`` does not have, or of the wrong kind."""
    types = _field_types(cls)
    for key, value in data.items():
        path = _join(prefix, str(key))
        if key not in types:
            valid = sorted(types)
            hint = difflib.get_close_matches(str(key), valid, n=1)
            suggestion = f" Did you mean '{_join(prefix, hint[0])}'?" if hint else ""
            where = f"under '{prefix}'" if prefix else "at the top level"
            raise ConfigError(
                f"unknown config key '{path}' ({origin}). Valid keys {where}: {', '.join(valid)}.{suggestion}"
            )
        field_type = types[key]
        if dataclasses.is_dataclass(field_type):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"'{path}' is a section with keys {', '.join(sorted(_field_types(field_type)))} "
                    f"({origin}); give it a mapping, not {value!r}"
                )
            check_keys(value, field_type, origin, path)
        elif (item_type := mapped_section(field_type)) is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"'{path}' maps names to sections ({origin}); give it a mapping, not {value!r}")
            for name, item in value.items():
                if not isinstance(item, dict):
                    raise ConfigError(
                        f"'{path}.{name}' is a section with keys {', '.join(sorted(_field_types(item_type)))} "
                        f"({origin}); give it a mapping, not {item!r}"
                    )
                check_keys(item, item_type, origin, f"{path}.{name}")
        elif isinstance(value, dict) and typing.get_origin(field_type) is not dict:
            raise ConfigError(f"'{path}' takes a single value ({expected_value(field_type)}), not a mapping ({origin})")


def parse_overrides(overrides: Sequence[str]) -> dict:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values are parsed as YAML."""
    tree: dict = {}
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {override!r} must look like section.key=value, e.g. body_model.seed=3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as error:
            raise ConfigError(f"cannot parse the value of override {override!r}: {error}") from error
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r} conflicts with another override of '{part}'")
        node[parts[-1]] = value
    return tree


def read_yaml(path: str | Path) -> dict:
    """The mapping in a YAML config file; empty files give an empty mapping."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass a YAML file (the shipped configs are in configs/)")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; the shipped configs are in configs/")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply to read; real configs nest a few levels") from None
    # YAML aliases share one value among many places: a few hundred bytes can stand for 2**60 values
    check_loaded(data, f"config file {path}", "with its aliases expanded,")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, found {type(data).__name__}")
    return data


def base_names(value: Any, path: Path) -> list[str]:
    """The files a ``_base_`` value names: one path or a list of paths, nothing else."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) and name.strip() for name in names):
        raise ConfigError(
            f"_base_ in {path} must name a YAML file or a list of them (paths relative to its folder), not {value!r}"
        )
    return names


def _check_base(base: Path, name: str, referrer: Path, chain: Sequence[Path], read: dict[Path, Path]) -> None:
    """Refuse a base that is missing, already on the chain of files that led to it (a cycle), or already read.

    ``read`` maps each file read so far to the file that named it: a file named twice (in one ``_base_``
    list, or by two files) would be read and applied twice, and files that each name the next one twice
    would be read 2**N times.
    """
    on_chain = [link.resolve() for link in chain]
    if base.resolve() in on_chain:
        cycle = " -> ".join(str(link) for link in [*chain, base])
        raise ConfigError(
            f"config files name each other as _base_ in a cycle: {cycle}; remove {name!r} from _base_ in {referrer}"
        )
    if base.resolve() in read:
        first = read[base.resolve()]
        where = "earlier in the same _base_ list" if first == referrer else f"by {first}"
        raise ConfigError(
            f"_base_ {name!r} in {referrer}: {base} is already named {where}; a config is built on each file "
            f"once: remove it from one of the _base_ lists"
        )
    if not base.is_file():
        problem = "is a folder" if base.is_dir() else "does not exist"
        raise ConfigError(
            f"_base_ {name!r} in {referrer}: {base} {problem}; "
            "_base_ paths are relative to the folder of the file that names them"
        )


def file_layers(
    path: str | Path, chain: Sequence[Path] = (), read: dict[Path, Path] | None = None
) -> list[ConfigLayer]:
    """The layers of a config file: each of its bases' layers in ``_base_`` order, then its own keys.

    ``chain`` is the files that named this one as a base, so a cycle is refused instead of recursing
    forever; ``read`` is every file read for this config so far, so no file is read twice: a base named
    twice, or shared by two bases (a diamond), is refused (:func:`_check_base`).
    """
    path = Path(path)
    read = {path.resolve(): path} if read is None else read
    data = read_yaml(path)
    chain = [*chain, path]
    layers: list[ConfigLayer] = []
    if BASE_KEY in data:
        for name in base_names(data.pop(BASE_KEY), path):
            base = path.parent / name
            _check_base(base, name, path, chain, read)
            read[base.resolve()] = path
            if len(read) > MAX_BASE_FILES:
                raise ConfigError(f"{chain[0]} is built from more than {MAX_BASE_FILES} files through _base_")
            layers += file_layers(base, chain, read)
    return [*layers, ConfigLayer(str(path), f"in {path}", data)]


def config_layers(path: str | Path | None = None, overrides: Sequence[str] = ()) -> list[ConfigLayer]:
    """Everything merged over the defaults, in order: ``path`` with its bases, then the overrides."""
    layers = file_layers(path) if path is not None else []
    if overrides:
        layers.append(ConfigLayer("override", "on the command line", parse_overrides(overrides)))
    return layers


def _refuse_misplaced_base(data: Any, origin: str, prefix: str = "") -> None:
    """``_base_`` is read only at the top of a file; anywhere else it would pass for a key (a dataset name, say)."""
    if isinstance(data, list):
        data = dict(enumerate(data))
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        path = _join(prefix, str(key))
        if key == BASE_KEY:
            raise ConfigError(
                f"'{path}' ({origin}): _base_ is read only at the top level of a config file; move it there"
            )
        _refuse_misplaced_base(value, origin, path)


def _merge(config: DictConfig, data: dict, origin: str) -> DictConfig:
    _refuse_misplaced_base(data, origin)
    check_keys(data, PareConfig, origin)
    try:
        return OmegaConf.merge(config, OmegaConf.create(data))
    except OmegaConfBaseException as error:
        key = error.full_key or "?"
        section_type = error.object_type
        expected = ""
        if (
            section_type is not None
            and dataclasses.is_dataclass(section_type)
            and error.key in _field_types(section_type)
        ):
            expected = f"; expected {expected_value(_field_types(section_type)[error.key])}"
        raise ConfigError(f"bad value for '{key}' ({origin}): {getattr(error, 'value', None)!r}{expected}") from error


def _instantiate(node: DictConfig, cls: type, prefix: str) -> Any:
    kwargs = {}
    for name, field_type in _field_types(cls).items():
        value = node[name]
        if dataclasses.is_dataclass(field_type):
            kwargs[name] = _instantiate(value, field_type, _join(prefix, name))
        elif (item_type := mapped_section(field_type)) is not None:
            path = _join(prefix, name)
            kwargs[name] = {key: _instantiate(value[key], item_type, f"{path}.{key}") for key in value}
        else:
            kwargs[name] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise ConfigError(f"invalid config value: {_join(prefix, str(error))}") from error


def resolve_layers(layers: Sequence[ConfigLayer]) -> PareConfig:
    """The defaults with ``layers`` merged over them in order, validated.

    Each layer is checked and merged on its own, so an error names the file that holds the bad key.
    """
    config = OmegaConf.structured(PareConfig)
    for layer in layers:
        config = _merge(config, layer.data, layer.origin)
    return _instantiate(config, PareConfig, "")


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> PareConfig:
    """Defaults, then ``path`` (YAML, after its ``_base_`` files) if given, then ``key=value`` overrides; validated."""
    return resolve_layers(config_layers(path, overrides))


def load_config_text(text: str, origin: str = "from YAML text") -> PareConfig:
    """A config from the YAML text of :func:`to_yaml` (e.g. handed from the driver to workers), validated."""
    data = yaml.safe_load(text) or {}
    return _instantiate(_merge(OmegaConf.structured(PareConfig), data, origin), PareConfig, "")


def to_yaml(config: Any) -> str:
    """A resolved config as YAML."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))
