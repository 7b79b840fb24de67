"""The restricted unpickler: plain data loads, chumpy arrays load without chumpy, code is refused."""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from pare_model.errors import PickleLoadError, UnsafePickleError
from pare_model.safe_pickle import load_pickle, loads_pickle
from tests.conftest import require_real_fixture


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_and_sparse_data_round_trips(protocol):
    data = {
        "v": np.arange(12, dtype=np.float64).reshape(4, 3),
        "f": np.array([[0, 1, 2]], dtype=np.uint32),
        "csc": scipy.sparse.csc_matrix(np.eye(3)),
        "csr": scipy.sparse.csr_matrix(np.eye(2) * 2),
        "coo": scipy.sparse.coo_matrix(np.eye(2) * 3),
        "scalar": np.float32(1.5),
        "nested": [{"s": {1, 2}}, ("text", b"bytes")],
    }
    loaded = loads_pickle(pickle.dumps(data, protocol=protocol))
    assert np.array_equal(loaded["v"], data["v"]) and loaded["f"].dtype == np.uint32
    for key in ("csc", "csr", "coo"):
        assert scipy.sparse.issparse(loaded[key])
        assert np.array_equal(loaded[key].toarray(), data[key].toarray())
    assert loaded["scalar"] == np.float32(1.5)
    assert loaded["nested"] == [{"s": {1, 2}}, ("text", b"bytes")]


def _fake_chumpy_module():
    """A module named chumpy.ch whose Ch pickles like chumpy's leaf arrays do."""

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

    package = types.ModuleType("chumpy")
    module = types.ModuleType("chumpy.ch")
    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    module.Ch = Ch
    package.ch = module
    return package, module


def _chumpy_pickle(payload_factory, protocol=2) -> bytes:
    package, module = _fake_chumpy_module()
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = package, module
    try:
        return pickle.dumps(payload_factory(module.Ch), protocol=protocol)
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value


def test_chumpy_arrays_load_without_chumpy_installed():
    assert importlib.util.find_spec("chumpy") is None, "this test needs chumpy to be absent"
    shapedirs = np.random.default_rng(0).normal(size=(6890, 3, 10))
    data = _chumpy_pickle(lambda Ch: {"shapedirs": Ch(shapedirs), "J": Ch(np.ones((24, 3))), "bs_type": "lrotmin"})
    assert b"chumpy.ch" in data
    loaded = loads_pickle(data, "SMPL_NEUTRAL.pkl")
    assert isinstance(loaded["shapedirs"], np.ndarray)
    assert np.array_equal(loaded["shapedirs"], shapedirs)
    assert loaded["J"].shape == (24, 3) and loaded["bs_type"] == "lrotmin"
    assert "chumpy" not in sys.modules


def test_python2_style_module_names_are_understood():
    data = pickle.dumps({"s": {1, 2}}, protocol=0).replace(b"cbuiltins\n", b"c__builtin__\n")
    assert b"__builtin__" in data
    assert loads_pickle(data) == {"s": {1, 2}}
    chumpy_v0 = _chumpy_pickle(lambda Ch: Ch(np.arange(3.0)), protocol=0).replace(b"ccopyreg\n", b"ccopy_reg\n")
    assert b"copy_reg" in chumpy_v0
    assert np.array_equal(loads_pickle(chumpy_v0), np.arange(3.0))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_before_running_anything(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError) as raised:
        load_pickle(path)
    message = str(raised.value)
    assert str(path) in message and "system" in message and "refusing" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: (eval, ("1+1",)), id="eval"),
        pytest.param(lambda: (getattr, ("text", "upper")), id="getattr"),
        pytest.param(lambda: (np.load, ("x.npy",)), id="numpy-function"),
    ],
)
def test_other_callables_are_refused(payload):
    class Reducer:
        def __reduce__(self):
            return payload()

    with pytest.raises(UnsafePickleError):
        loads_pickle(pickle.dumps(Reducer(), protocol=2))


def test_chumpy_expressions_are_refused_with_advice():
    data = pickle.dumps(0, protocol=2).replace(b"\x80\x02K\x00.", b"\x80\x02cchumpy.ch_ops\nadd\nq\x00.")
    with pytest.raises(UnsafePickleError, match="chumpy expression"):
        loads_pickle(data)


def test_truncated_and_missing_files_give_clear_errors(tmp_path):
    path = tmp_path / "broken.pkl"
    path.write_bytes(pickle.dumps({"a": np.zeros(100)}, protocol=2)[:50])
    with pytest.raises(PickleLoadError, match="broken.pkl"):
        load_pickle(path)
    with pytest.raises(PickleLoadError, match="cannot read"):
        load_pickle(tmp_path / "missing.pkl")


def test_real_human36m_camera_pickle_loads():
    cameras = load_pickle(require_real_fixture("mmpose/h36m/cameras.pkl"))
    assert len(cameras) == 44
    camera = cameras[("S1", "54138969")]
    assert camera["R"].shape == (3, 3) and camera["T"].shape == (3, 1)
    assert np.allclose(camera["R"] @ camera["R"].T, np.eye(3), atol=1e-6)
