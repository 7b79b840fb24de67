"""Typed configuration: defaults, YAML and command-line overrides, and errors that name the key."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml

from pipelines.config.field_docs import commented_yaml, field_docs, markdown_reference, walk_fields
from pipelines.config.loader import BASE_KEY, ConfigError, file_layers, load_config, parse_overrides, read_yaml
from pipelines.config.schema import PareConfig

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_come_from_the_dataclasses():
    config = load_config()
    assert config == PareConfig()
    assert config.body_model.source == "procedural" and config.body_model.gender == "neutral"


def test_yaml_then_command_line_override_the_defaults(tmp_path):
    path = _write(tmp_path, "body_model:\n  seed: 4\n  gender: male\nquickstart:\n  pose: wave\n")
    config = load_config(path, ["body_model.seed=7", "quickstart.panel_size=256"])
    assert config.body_model.seed == 7  # the command line wins over the file
    assert config.body_model.gender == "male" and config.quickstart.pose == "wave"
    assert config.quickstart.panel_size == 256 and isinstance(config.quickstart.panel_size, int)
    assert config.body_model.asset_dir == "outputs/body_model"  # untouched default


SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))
"""The shipped configs and the base files in configs/base/ they name."""


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_shipped_config_loads(path):
    load_config(path)


def _leaves(data: dict, prefix: tuple = ()) -> dict[tuple, object]:
    """Key path -> value of every single value or list in nested mappings."""
    leaves = {}
    for key, value in data.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, (*prefix, key)))
        else:
            leaves[(*prefix, key)] = value
    return leaves


def test_no_top_level_block_is_copied_between_shipped_configs():
    """A block two files share belongs in a base file (configs/base/) that both name in _base_."""
    owners: dict[str, Path] = {}
    for path in SHIPPED:
        for key, value in read_yaml(path).items():
            if key != BASE_KEY:
                block = yaml.safe_dump({key: value}, sort_keys=True)
                assert block not in owners, f"'{key}' of {path} is copied from {owners[block]}; move it to a base"
                owners[block] = path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_no_shipped_config_repeats_a_value_of_its_bases(path):
    *bases, own = file_layers(path)
    inherited = {key: value for layer in bases for key, value in _leaves(layer.data).items()}
    repeated = [".".join(key) for key, value in _leaves(own.data).items() if inherited.get(key, object()) == value]
    assert not repeated, f"{path} sets {repeated} to what its bases already give; drop them"


def test_unknown_key_names_the_key_the_valid_keys_and_a_suggestion(tmp_path):
    path = _write(tmp_path, "body_model:\n  sed: 3\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "'body_model.sed'" in message and str(path) in message
    assert "asset_dir, gender, part_map, seed, source" in message
    assert "Did you mean 'body_model.seed'" in message


def test_unknown_section_and_unknown_override_key():
    with pytest.raises(
        ConfigError, match=r"'bodymodel'.*top level.*body_model, .*quickstart.*Did you mean 'body_model'"
    ):
        load_config(None, ["bodymodel.seed=1"])
    with pytest.raises(ConfigError, match=r"'quickstart.colour'.*on the command line"):
        load_config(None, ["quickstart.colour=red"])


def test_bad_choice_lists_the_valid_choices():
    with pytest.raises(ConfigError) as raised:
        load_config(None, ["body_model.gender=other"])
    message = str(raised.value)
    assert "'body_model.gender'" in message and "'other'" in message
    assert "one of: neutral, male, female" in message


def test_bad_type_says_what_is_expected(tmp_path):
    with pytest.raises(ConfigError, match=r"'body_model.seed'.*'many'.*an integer"):
        load_config(None, ["body_model.seed=many"])
    with pytest.raises(ConfigError, match=r"'body_model' is a section.*give it a mapping"):
        load_config(_write(tmp_path, "body_model: 3\n"))
    with pytest.raises(ConfigError, match=r"'body_model.seed' takes a single value \(an integer\)"):
        load_config(_write(tmp_path, "body_model:\n  seed:\n    a: 1\n"))


def test_validation_errors_name_the_full_key():
    with pytest.raises(ConfigError, match=r"body_model\.seed must be >= 0, got -2"):
        load_config(None, ["body_model.seed=-2"])
    with pytest.raises(ConfigError, match=r"quickstart\.panel_size must be between 128 and 4096"):
        load_config(None, ["quickstart.panel_size=10"])
    with pytest.raises(ConfigError, match=r"body_model\.asset_dir must name a folder"):
        load_config(None, ["body_model.asset_dir="])
    with pytest.raises(ConfigError, match=r"train\.worker_start_timeout_s must be > 0, got 0"):
        load_config(None, ["train.worker_start_timeout_s=0"])


def test_file_problems_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "body_model: [unclosed\n"))
    assert load_config(_write(tmp_path, "")) == PareConfig()


def test_override_syntax():
    assert parse_overrides(["a.b=1", "a.c=x", "d=[1, 2]", "e="]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2], "e": ""}
    for bad in ("body_model.seed", "=3", "a..b=1"):
        with pytest.raises(ConfigError, match="must look like section.key=value"):
            parse_overrides([bad])


def _all_config_classes(cls: type) -> list[type]:
    found = [cls]
    for field_type in typing.get_type_hints(cls).values():
        if dataclasses.is_dataclass(field_type):
            found += _all_config_classes(field_type)
    return found


@pytest.mark.parametrize("cls", _all_config_classes(PareConfig), ids=lambda c: c.__name__)
def test_every_config_class_and_field_is_documented(cls):
    assert cls.__doc__ and cls.__doc__.strip()
    docs = field_docs(cls)
    undocumented = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not undocumented, f"{cls.__name__} fields without a docstring: {undocumented}"


def test_commented_yaml_round_trips(tmp_path):
    config = load_config(None, ["body_model.seed=5"])
    text = commented_yaml(config)
    assert "# Seed of the procedural stand-in" in text
    assert load_config(_write(tmp_path, text)) == config
    assert len(list(walk_fields(config))) >= 9


def test_configuration_reference_in_docs_is_current():
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == markdown_reference(PareConfig()), "run: pare config docs > docs/configuration.md"


def _file(path: Path, text: str) -> Path:
    """Write a config file (and its folders) for the ``_base_`` tests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_bases_apply_in_order_each_after_its_own_bases_then_the_file(tmp_path):
    _file(tmp_path / "root.yaml", "body_model:\n  seed: 1\n  gender: male\nquickstart:\n  pose: wave\n")
    _file(tmp_path / "first.yaml", "_base_: root.yaml\nbody_model:\n  seed: 2\n")
    _file(tmp_path / "second.yaml", "body_model:\n  seed: 3\nquickstart:\n  panel_size: 300\n")
    top = _file(tmp_path / "top.yaml", "_base_: [first.yaml, second.yaml]\nquickstart:\n  panel_size: 256\n")
    config = load_config(top)
    assert config.body_model.seed == 3  # the second base wins over the first (and over the first's base)
    assert config.body_model.gender == "male" and config.quickstart.pose == "wave"  # from the base of a base
    assert config.quickstart.panel_size == 256  # the file's own key wins over its bases'
    reversed_order = _file(tmp_path / "reversed.yaml", "_base_: [second.yaml, first.yaml]\n")
    config = load_config(reversed_order)
    assert config.body_model.seed == 2 and config.quickstart.panel_size == 300
    assert load_config(_file(tmp_path / "one.yaml", "_base_: root.yaml\n")).body_model.seed == 1  # a plain string


def test_mappings_merge_key_by_key_and_lists_replace(tmp_path):
    _file(tmp_path / "base.yaml", "data:\n  datasets:\n    a:\n      shards: [a1, a2]\n  validation: [v1, v2]\n")
    top = _file(
        tmp_path / "top.yaml", "_base_: base.yaml\ndata:\n  datasets:\n    b:\n      shards: [b1]\n  validation: [v3]\n"
    )
    data = load_config(top).data
    assert {name: spec.shards for name, spec in data.datasets.items()} == {"a": ["a1", "a2"], "b": ["b1"]}
    assert data.validation == ["v3"]


def test_bases_are_relative_to_the_file_that_names_them(tmp_path, monkeypatch):
    _file(tmp_path / "shared" / "inner" / "leaf.yaml", "body_model:\n  seed: 5\n  gender: female\n")
    _file(tmp_path / "shared" / "common.yaml", "_base_: inner/leaf.yaml\nbody_model:\n  seed: 6\n")
    _file(tmp_path / "runs" / "top.yaml", "_base_: ../shared/common.yaml\nquickstart:\n  pose: wave\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # neither the working folder nor the top file's folder: the naming file's
    config = load_config(tmp_path / "runs" / "top.yaml")
    assert (config.body_model.seed, config.body_model.gender, config.quickstart.pose) == (6, "female", "wave")
    monkeypatch.chdir(tmp_path)
    assert load_config("runs/top.yaml") == config


def test_command_line_overrides_win_over_the_file_and_its_bases(tmp_path):
    _file(tmp_path / "base.yaml", "body_model:\n  seed: 1\n  gender: male\n")
    top = _file(tmp_path / "top.yaml", "_base_: base.yaml\nbody_model:\n  seed: 2\n")
    config = load_config(top, ["body_model.seed=7", "body_model.gender=female"])
    assert (config.body_model.seed, config.body_model.gender) == (7, "female")


def test_a_cycle_of_bases_is_refused_naming_the_chain(tmp_path):
    _file(tmp_path / "a.yaml", "_base_: b.yaml\n")
    _file(tmp_path / "b.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "a.yaml")
    message = str(raised.value)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert f"{a} -> {b} -> {a}" in message and "\n" not in message
    assert f"remove 'a.yaml' from _base_ in {b}" in message
    with pytest.raises(ConfigError, match=r"self\.yaml -> .*self\.yaml"):
        load_config(_file(tmp_path / "self.yaml", "_base_: ./self.yaml\n"))


def test_a_base_named_twice_is_refused_naming_both_places(tmp_path):
    """A file read twice would be applied twice, and files that each name the next one twice would be read 2**N
    times: a base named twice in one list, or by two files (a diamond), is refused."""
    _file(tmp_path / "common.yaml", "body_model:\n  seed: 1\n")
    left = _file(tmp_path / "left.yaml", "_base_: common.yaml\nbody_model:\n  gender: male\n")
    right = _file(tmp_path / "right.yaml", "_base_: common.yaml\nquickstart:\n  pose: wave\n")
    with pytest.raises(ConfigError) as raised:
        load_config(_file(tmp_path / "top.yaml", "_base_: [left.yaml, right.yaml]\n"))
    message = str(raised.value)
    assert f"_base_ 'common.yaml' in {right}" in message and f"already named by {left}" in message
    twice = _file(tmp_path / "twice.yaml", "_base_: [common.yaml, ./common.yaml]\n")
    with pytest.raises(ConfigError, match="already named earlier in the same _base_ list") as raised:
        load_config(twice)
    assert f"_base_ './common.yaml' in {twice}" in str(raised.value) and "\n" not in str(raised.value)


def test_a_missing_base_names_the_file_that_names_it_and_the_path_tried(tmp_path):
    top = _file(tmp_path / "conf" / "top.yaml", "_base_: base/missing.yaml\n")
    with pytest.raises(ConfigError) as raised:
        load_config(top)
    message = str(raised.value)
    assert f"in {top}" in message and f"{tmp_path / 'conf' / 'base' / 'missing.yaml'} does not exist" in message
    assert "relative to the folder of the file that names them" in message
    (tmp_path / "conf" / "folder").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(_file(tmp_path / "conf" / "dir.yaml", "_base_: folder\n"))


@pytest.mark.parametrize("value", ["3", "", "''", "{a: b.yaml}", "[a.yaml, 3]", "[a.yaml, '']"])
def test_a_base_that_is_not_file_names_is_refused(tmp_path, value):
    _file(tmp_path / "a.yaml", "")
    top = _file(tmp_path / "top.yaml", f"_base_: {value}\n")
    with pytest.raises(ConfigError, match=rf"_base_ in {re.escape(str(top))} must name a YAML file or a list of them"):
        load_config(top)


def test_base_is_read_only_at_the_top_level(tmp_path):
    _file(tmp_path / "a.yaml", "body_model:\n  seed: 1\n")
    with pytest.raises(ConfigError, match=r"'body_model\._base_' \(in .*top\.yaml\).*only at the top level"):
        load_config(_file(tmp_path / "top.yaml", "body_model:\n  _base_: a.yaml\n"))
    with pytest.raises(ConfigError, match=r"'data\.stages\.s\.mix\._base_'"):  # not taken for a dataset name
        load_config(_file(tmp_path / "mix.yaml", "data:\n  stages:\n    s:\n      mix: {_base_: 1.0}\n"))
    nested_in_base = _file(tmp_path / "nested.yaml", "quickstart:\n  _base_: a.yaml\n")
    with pytest.raises(ConfigError, match=rf"'quickstart\._base_' \(in {re.escape(str(nested_in_base))}\)"):
        load_config(_file(tmp_path / "child.yaml", "_base_: nested.yaml\n"))
    with pytest.raises(ConfigError, match=r"'_base_' \(on the command line\).*only at the top level"):
        load_config(None, ["_base_=a.yaml"])


def test_an_error_in_a_base_names_the_base(tmp_path):
    base = _file(tmp_path / "base.yaml", "body_model:\n  sed: 3\n")
    with pytest.raises(ConfigError, match=rf"'body_model\.sed' \(in {re.escape(str(base))}\)"):
        load_config(_file(tmp_path / "top.yaml", "_base_: base.yaml\n"))


def _origins_by_key(listing: str) -> dict[str, str]:
    """Dotted key -> origin comment of ``pare config show --origin`` output (sections tracked by indentation)."""
    origins, sections = {}, []
    for line in listing.splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        key = line.strip().split(":", 1)[0]
        sections = sections[:depth]
        if line.endswith(":"):
            sections.append(key)
        else:
            origins[".".join([*sections, key])] = line.rsplit("  # ", 1)[1]
    return origins


def test_config_show_origin_says_where_each_value_came_from(tmp_path, capsys):
    from pipelines.cli import main

    base = _file(
        tmp_path / "base" / "small.yaml", "body_model:\n  seed: 1\n  gender: male\nquickstart:\n  pose: wave\n"
    )
    top = _file(
        tmp_path / "top.yaml",
        "_base_: base/small.yaml\nbody_model:\n  seed: 2\ndata:\n  stages:\n    s:\n      mix: {a: 1.0}\n",
    )
    assert main(["config", "show", "--origin", str(top), "quickstart.panel_size=256"]) == 0
    listing = capsys.readouterr().out
    origins = _origins_by_key(listing)
    assert origins["body_model.seed"] == str(top) and origins["data.stages.s.mix.a"] == str(top)
    assert origins["body_model.gender"] == str(base) and origins["quickstart.pose"] == str(base)
    assert origins["quickstart.panel_size"] == "override"
    assert origins["body_model.part_map"] == "default" and origins["data.stages.s.start_step"] == "default"
    assert set(origins.values()) == {str(top), str(base), "override", "default"}  # every value has one
    assert load_config(_write(tmp_path, listing)) == load_config(top, ["quickstart.panel_size=256"])
    assert main(["config", "show", "--origin", "--docs", str(top)]) == 2  # one view at a time
    assert "not allowed with argument" in capsys.readouterr().err
