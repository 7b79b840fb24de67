"""One registry helper for backbones, heads, readers and layouts: one error, and names that cannot drift."""

from __future__ import annotations

import re
import subprocess
import sys
import typing

import pytest

from pare_model.backbones import BACKBONES, UnknownBackboneError, build_backbone
from pare_model.checkpoint.container import CheckpointError
from pare_model.checkpoint.fit import check_names
from pare_model.errors import UserFacingError
from pare_model.heads import HEADS, UnknownHeadError, build_head
from pare_model.model_config import BackboneName, HeadName, ModelConfig
from pare_model.registry import Registry, UnknownNameError
from pipelines.config.field_docs import field_docs
from pipelines.config.preprocess import SourceConfig
from preprocessing.readers import READERS, SourceError, UnknownReaderError, build_reader, reader_class
from preprocessing.synth.layouts import UnknownLayoutError, get_layout

# ---------------------------------------------------------------- the helper


def _fruit() -> Registry[int]:
    fruit: Registry[int] = Registry("fruit")
    fruit.register("apple", 1)
    fruit.register("banana", 2)
    return fruit


def test_register_by_call_or_decorator_and_look_up():
    registry: Registry[object] = Registry("tool")

    @registry.register("hammer")
    def hammer() -> str:
        return "bang"

    assert registry.register("saw", len) is len
    assert registry.get("hammer") is hammer and hammer() == "bang"
    assert registry.names() == ("hammer", "saw") == tuple(registry)
    assert "saw" in registry and "drill" not in registry and 3 not in registry and len(registry) == 2


def test_unknown_name_names_kind_name_valid_names_and_the_close_one():
    with pytest.raises(UnknownNameError) as info:
        _fruit().get("bananna")
    assert str(info.value) == "unknown fruit 'bananna'; valid fruits: apple, banana; did you mean 'banana'?"
    assert isinstance(info.value, UserFacingError)
    with pytest.raises(UnknownNameError) as far:
        _fruit().get("kiwi")
    assert str(far.value) == "unknown fruit 'kiwi'; valid fruits: apple, banana"


def test_a_name_registered_twice_is_a_programming_error():
    fruit = _fruit()
    with pytest.raises(ValueError, match="'apple' is already registered"):
        fruit.register("apple", 3)
    with pytest.raises(ValueError, match="already registered"):
        fruit.register_lazy("banana", "json:dumps")
    with pytest.raises(ValueError, match="non-empty string"):
        fruit.register("", 3)
    assert fruit.get("apple") == 1


def test_lazy_entries_import_on_first_get_only():
    registry: Registry[object] = Registry("codec", plural="codecs")
    registry.register_lazy("json", "json:dumps")
    registry.register_lazy("missing", "no_such_module_for_pare:thing")
    assert registry.names() == ("json", "missing")
    registry.check("missing")  # listing and checking import nothing
    import json

    assert registry.get("json") is json.dumps
    with pytest.raises(ModuleNotFoundError):
        registry.get("missing")
    with pytest.raises(ValueError, match="'module:attribute'"):
        registry.register_lazy("bad", "json.dumps")


def test_the_registry_raises_its_own_error_class_in_one_line():
    class UnknownFruitError(UnknownNameError, KeyError):
        pass

    fruit: Registry[int] = Registry("fruit", UnknownFruitError)
    fruit.register("apple", 1)
    with pytest.raises(UnknownFruitError) as info:
        fruit.get("aple")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "unknown fruit 'aple'; valid fruits: apple; did you mean 'apple'?"  # not quoted


# ---------------------------------------------------------------- the four registries, through their entry points


def test_build_backbone_suggests_the_close_name():
    with pytest.raises(UnknownBackboneError) as info:
        build_backbone("resnet5O")
    assert str(info.value) == (
        "unknown backbone 'resnet5O'; valid backbones: debug, hrnet_w32, resnet50, resnet_small; "
        "did you mean 'resnet50'?"
    )
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserFacingError)


def test_build_head_suggests_the_close_name():
    with pytest.raises(UnknownHeadError) as info:
        build_head("paer")
    assert str(info.value) == "unknown head 'paer'; valid heads: hmr, pare; did you mean 'pare'?"
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserFacingError)


def test_build_reader_suggests_the_close_name(tmp_path):
    with pytest.raises(UnknownReaderError) as info:
        build_reader("coco_ef", str(tmp_path), "train")
    assert str(info.value) == (
        "unknown reader 'coco_ef'; valid readers: 3doh, 3dpw, coco_eft, h36m, h36m_npz, humandata, lspet, mpii, "
        "spin_npz; "
        "did you mean 'coco_eft'?"
    )
    assert isinstance(info.value, SourceError)
    with pytest.raises(SourceError, match="did you mean 'h36m_npz'"):
        reader_class("h36m_nzp")


def test_get_layout_suggests_the_close_name():
    with pytest.raises(UnknownLayoutError) as info:
        get_layout("3dwp")
    valid = "3doh, 3dpw, coco_eft, h36m, h36m_humandata, h36m_mmpose, h36m_raw, humandata, mpii, spin_npz"
    assert str(info.value) == f"unknown layout '3dwp'; valid layouts: {valid}; did you mean '3dpw'?"
    assert isinstance(info.value, KeyError) and isinstance(info.value, UserFacingError)


def test_checkpoint_check_names_uses_the_registry_message():
    with pytest.raises(CheckpointError, match=r"^x\.pt: unknown backbone 'hrnet_w23'; .*did you mean 'hrnet_w32'\?$"):
        check_names(ModelConfig(backbone="hrnet_w23"), "x.pt")  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match=r"^x\.pt: unknown head 'hmrr'; valid heads: hmr, pare; did you mean"):
        check_names(ModelConfig(head="hmrr"), "x.pt")  # type: ignore[arg-type]


# ---------------------------------------------------------------- names spelled out elsewhere agree with the registries


def test_config_literals_equal_the_registries():
    """The structured config needs static Literals (and no torch); they must list exactly the registered names."""
    assert typing.get_args(BackboneName) == BACKBONES.names()
    assert typing.get_args(HeadName) == HEADS.names()
    hints = typing.get_type_hints(ModelConfig)
    assert hints["backbone"] == BackboneName and hints["head"] == HeadName


def test_source_reader_doc_lists_every_reader():
    """``SourceConfig.reader`` is a plain string (empty by default); its documented names are the registry's."""
    documented = re.match(r"Reader name: ([a-z0-9_, ]+) \(", field_docs(SourceConfig)["reader"])
    assert documented, field_docs(SourceConfig)["reader"]
    assert sorted(documented.group(1).split(", ")) == sorted(READERS.names())


def test_listing_reader_and_layout_names_imports_no_reader_writer_or_torch():
    script = (
        "import sys\n"
        "from preprocessing.readers import READERS\n"
        "from preprocessing.synth.layouts import LAYOUTS\n"
        "assert READERS.names() and LAYOUTS.names()\n"
        "READERS.check('3dpw'); LAYOUTS.check('3dpw')\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    modules = set(
        subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout.split()
    )
    assert "torch" not in modules
    assert not modules & {"preprocessing.readers.pw3d", "preprocessing.synth.layouts.pw3d"}
