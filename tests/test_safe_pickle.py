"""The restricted unpickler: plain data loads, chumpy arrays load without chumpy, code is refused."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from pare_model.errors import PickleLoadError, UnsafePickleError
from pare_model.safe_pickle import load_pickle, loads_pickle
from tests.conftest import ROOT, require_real_fixture


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


def billion_laughs(depth: int = 60) -> bytes:
    """A list holding the same list twice, nested ``depth`` deep: ~450 bytes that expand to 2**depth lists."""
    value: list = []
    for _ in range(depth):
        value = [value, value]
    return pickle.dumps(value, protocol=2)


_MEMORY_PROBE = """
import json, resource, sys, tracemalloc
from pare_model.errors import PickleLoadError
from pare_model.safe_pickle import loads_pickle

# without the bound this grows by gigabytes: cap the address space so a regression fails, not the machine
size = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), resource.RLIM_INFINITY))
data = open(sys.argv[1], "rb").read()
tracemalloc.start()
try:
    loads_pickle(data, "SMPL_NEUTRAL.pkl")
    error = None
except (PickleLoadError, MemoryError, RecursionError) as raised:
    error = [type(raised).__name__, str(raised)]
print(json.dumps({"error": error, "peak": tracemalloc.get_traced_memory()[1]}))
"""


def test_a_billion_laughs_pickle_is_refused_within_a_small_memory_bound(tmp_path):
    data = billion_laughs()
    assert len(data) < 500
    path = tmp_path / "laughs.pkl"
    path.write_bytes(data)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["error"] is not None and result["error"][0] == "UnsafePickleError", result
    message = result["error"][1]
    assert "SMPL_NEUTRAL.pkl" in message and "shared references" in message and "\n" not in message
    assert result["peak"] < 100 * 2**20


@pytest.mark.parametrize(
    "build, words",
    [
        pytest.param(lambda: (lambda a: (a.append(a), a)[1])([]), "holds itself", id="list-holding-itself"),
        pytest.param(lambda: (lambda d: (d.update(me=d), d)[1])({}), "holds itself", id="dict-holding-itself"),
        pytest.param(None, "nested deeper", id="10000-deep"),
    ],
)
def test_self_referencing_and_deeply_nested_pickles_give_one_line_errors(build, words):
    with pytest.raises(UnsafePickleError) as raised:
        # 10,000 empty lists, each appended to the one below: too deep for pickle.dumps to write
        data = pickle.dumps(build(), protocol=2) if build else b"\x80\x02" + b"]" * 10_000 + b"a" * 9_999 + b"."
        loads_pickle(data, "seq.pkl")
    assert words in str(raised.value) and "seq.pkl" in str(raised.value) and "\n" not in str(raised.value)


def test_shared_references_in_plain_data_still_load():
    row = [1.0, 2.0, 3.0]
    array = np.arange(4.0)
    data = {"a": [row, row, row], "b": (array, array), "c": {"again": row}}
    loaded = loads_pickle(pickle.dumps(data, protocol=2))
    assert loaded["a"] == [row] * 3 and loaded["c"]["again"] == row
    assert np.array_equal(loaded["b"][1], array)
    laughs = loads_pickle(billion_laughs(depth=8))  # 2**9 - 1 lists from a small file: within the bound
    assert len(laughs) == 2 and laughs[0] == laughs[1]


def _pare(*args: str) -> subprocess.CompletedProcess:
    """``pare ARGS`` in a subprocess whose heap is capped at 2 GiB, so a regression fails without starving the machine."""

    def cap_heap() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, resource.RLIM_INFINITY))

    env = os.environ | {"PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pipelines.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, preexec_fn=cap_heap)


def test_hostile_pickles_are_one_line_cli_errors(procedural_dir, tmp_path):
    """`pare body-model info` and `pare preprocess` (3DPW reader) refuse them: exit 2, one line, no Ray, no traceback."""
    itself: list = []
    itself.append(itself)
    for name, data, words in (
        ("laughs", billion_laughs(), "shared references"),
        ("itself", pickle.dumps(itself, protocol=2), "holds itself"),
    ):
        body = tmp_path / f"body-{name}"
        shutil.copytree(procedural_dir, body)
        (body / "SMPL_NEUTRAL.pkl").write_bytes(data)
        info = _pare("body-model", "info", str(body))
        assert info.returncode == 2, info.stderr[-2000:]
        assert info.stderr.count("\n") == 1 and "Traceback" not in info.stderr
        assert str(body / "SMPL_NEUTRAL.pkl") in info.stderr and words in info.stderr
    sequences = tmp_path / "3dpw/sequenceFiles/test"
    sequences.mkdir(parents=True)
    (sequences / "downtown_walking_00.pkl").write_bytes(billion_laughs())
    preprocess = _pare(
        "preprocess",
        "--quiet",
        f"body_model.asset_dir={procedural_dir}",
        f"preprocess.output={tmp_path / 'out'}",
        "preprocess.sources.p.reader=3dpw",
        f"preprocess.sources.p.root={tmp_path / '3dpw'}",
        "preprocess.sources.p.split=test",
    )
    assert preprocess.returncode == 2, preprocess.stderr[-2000:]
    assert preprocess.stderr.count("\n") == 1 and "Traceback" not in preprocess.stderr
    assert "downtown_walking_00.pkl" in preprocess.stderr and "shared references" in preprocess.stderr
    assert "Ray instance" not in preprocess.stdout + preprocess.stderr
