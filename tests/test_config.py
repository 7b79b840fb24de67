"""Typed configuration: defaults, YAML and command-line overrides, and errors that name the key."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from pipelines.config.field_docs import commented_yaml, field_docs, markdown_reference, walk_fields
from pipelines.config.loader import ConfigError, load_config, parse_overrides
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


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    load_config(path)


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
