"""Load pickles of plain numeric data without running code from the file.

Body model files (SMPL ``.pkl``) and several dataset annotation files are pickles, and a
pickle can name any importable callable to run while loading. :func:`load_pickle` admits only
the few globals that plain numeric data needs:

- numpy arrays, dtypes and scalars (any numpy version's module path);
- scipy sparse matrices (CSC, CSR, COO), rebuilt from their arrays;
- chumpy arrays (``chumpy.ch.Ch``), as found in the real SMPL files, turned into numpy
  arrays. chumpy itself is never imported and need not be installed;
- ``set``/``frozenset``/``slice``/``object`` and the encoder protocol 2 uses for bytes.

Every other global raises :class:`~pare_model.errors.UnsafePickleError` before anything is
called. So does data that expands far beyond the file through shared references (a "billion
laughs" pickle), a container that holds itself, and nesting deeper than :data:`MAX_DEPTH`: the
pass that replaces the stand-ins walks each shared object once and counts its work against the
input's size (:class:`_BoundedWalk`). Files are read with ``encoding="latin1"`` so Python 2
pickles load.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from pare_model.errors import PickleLoadError, UnsafePickleError
from pare_model.input_limits import MAX_DEPTH, BoundedWalk


class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch``: keeps the pickled state, whose ``x`` is the value."""

    def __setstate__(self, state: dict) -> None:
        self.state = state


class _SparseMatrix:
    """Stand-in for a scipy sparse matrix: keeps the pickled state to rebuild it safely."""

    format = "csc"

    def __setstate__(self, state: dict) -> None:
        self.state = state


def _sparse_stand_in(fmt: str) -> type:
    return type(f"_Sparse_{fmt}", (_SparseMatrix,), {"format": fmt})


_SPARSE_STAND_INS = {fmt: _sparse_stand_in(fmt) for fmt in ("csc", "csr", "coo")}
_STAND_INS = (_ChumpyArray, *_SPARSE_STAND_INS.values())


def _safe_reconstructor(cls: type, base: type, state: Any) -> Any:
    """copyreg._reconstructor (protocols 0 and 1) restricted to the stand-in classes."""
    if cls not in _STAND_INS or base is not object:
        raise UnsafePickleError(f"refusing copyreg._reconstructor for {cls!r}")
    return object.__new__(cls)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """The ``_codecs.encode`` call protocol 2 uses for bytes, limited to text codecs."""
    if codecs.lookup(encoding).name not in ("iso8859-1", "utf-8", "ascii"):
        raise UnsafePickleError(f"refusing _codecs.encode with codec {encoding!r}")
    return codecs.encode(text, encoding)


def _numpy_global(name: str) -> Any:
    # numpy >= 2 moved numpy.core to numpy._core; numpy's stubs declare neither np._core nor _frombuffer.
    core = np._core  # type: ignore[attr-defined]
    table = {
        "_reconstruct": core.multiarray._reconstruct,
        "scalar": core.multiarray.scalar,
        "_frombuffer": core.numeric._frombuffer,
    }
    return table.get(name)


# ``object`` is the base class that protocols 0 and 1 name when rebuilding an instance.
_BUILTINS = {"set": set, "frozenset": frozenset, "slice": slice, "object": object}
_NUMPY_MODULES = {
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core.numeric",
    "numpy._core.numeric",
}
_SPARSE_MODULE_PREFIX = "scipy.sparse"
_SPARSE_NAMES = {"csc_matrix": "csc", "csr_matrix": "csr", "coo_matrix": "coo"}


def _resolve_global(module: str, name: str) -> Any:
    """The object a pickle may name, or None if it is not allowed."""
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    if module in _NUMPY_MODULES:
        return _numpy_global(name)
    if module.startswith(_SPARSE_MODULE_PREFIX) and name in _SPARSE_NAMES:
        return _SPARSE_STAND_INS[_SPARSE_NAMES[name]]
    if module == "chumpy.ch" and name == "Ch":
        return _ChumpyArray
    if module in ("builtins", "__builtin__") and name in _BUILTINS:
        return _BUILTINS[name]
    if module == "_codecs" and name == "encode":
        return _latin1_encode
    if module in ("copyreg", "copy_reg") and name == "_reconstructor":
        return _safe_reconstructor
    return None


DEFAULT_ADVICE = "Check where the file came from."
"""What a refusal tells the user to do when the caller says nothing about the kind of file it loads."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str, advice: str = DEFAULT_ADVICE):
        super().__init__(file, encoding="latin1")
        self._source = source
        self._advice = advice

    def find_class(self, module: str, name: str) -> Any:
        found = _resolve_global(module, name)
        if found is not None:
            return found
        if module.startswith("chumpy"):
            raise UnsafePickleError(
                f"{self._source} holds a chumpy expression ({module}.{name}), not a plain chumpy "
                "array; it cannot be evaluated without chumpy. Re-save the arrays as .npz "
                "(e.g. with the chumpy-fixed package: np.savez(out, **{k: np.asarray(v) ...}))."
            )
        raise UnsafePickleError(
            f"refusing to load {self._source}: it asks to call {module}.{name}, and a pickle "
            "that names code can run it while loading. Only numpy arrays, scipy sparse "
            f"matrices and chumpy arrays are allowed. {self._advice}"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to load {self._source}: it uses persistent ids")


def _rebuild_sparse(fmt: str, state: Any, source: str) -> scipy.sparse.spmatrix:
    state = state if isinstance(state, dict) else {}
    shape = tuple(state.get("_shape", state.get("shape", ())))
    try:
        if fmt == "coo":
            # scipy >= 1.13 stores a ``coords`` tuple; older versions ``row`` and ``col``.
            coords = state["coords"] if "coords" in state else (state["row"], state["col"])
            arrays: tuple[Any, ...] = (np.asarray(state["data"]), tuple(np.asarray(c) for c in coords))
            return scipy.sparse.coo_matrix(arrays, shape=shape)
        arrays = (np.asarray(state["data"]), np.asarray(state["indices"]), np.asarray(state["indptr"]))
        matrix_class = scipy.sparse.csc_matrix if fmt == "csc" else scipy.sparse.csr_matrix
        return matrix_class(arrays, shape=shape)
    except (KeyError, ValueError, TypeError) as error:
        raise PickleLoadError(f"{source}: malformed sparse matrix in pickle ({error})") from error


def _rebuild_chumpy(state: Any, source: str) -> np.ndarray:
    if not isinstance(state, dict) or "x" not in state:
        raise PickleLoadError(f"{source}: a chumpy array in the pickle has no value ('x')")
    return np.asarray(state["x"])


OBJECTS_PER_BYTE = 4
"""Objects the loaded data may hold per byte of input, counting a shared object each time it is reached.

Plain data spends at least a byte of pickle on each object it holds, so it stays under 1; a
"billion laughs" pickle (a list holding another list twice, nested 60 deep: 450 bytes) expands
to 2**61 objects through shared references, and is refused after a few thousand.
"""
OBJECTS_SLACK = 10_000


class _BoundedWalk(BoundedWalk):
    """The pass that turns stand-ins into arrays, with its work bounded by the input's size.

    :class:`~pare_model.input_limits.BoundedWalk` over the stand-ins and object arrays too: reaching a
    shared container again shares the result, as the input shares it, and counts its objects again, so
    data that expands far beyond its file is refused before a consumer walks it as a tree. A container
    that holds itself, or nesting deeper than :data:`MAX_DEPTH`, is refused too: plain numeric data has
    neither.
    """

    containers = (dict, list, tuple, set, frozenset, np.ndarray, *_STAND_INS)

    def __init__(self, source: str, num_bytes: int):
        super().__init__(OBJECTS_PER_BYTE * num_bytes + OBJECTS_SLACK)
        self.source, self.num_bytes = source, num_bytes

    def refuse(self, problem: str, kind: str = "") -> Exception:
        if problem == "too many":
            return UnsafePickleError(
                f"refusing to load {self.source}: its {self.num_bytes:,} bytes expand to more than "
                f"{self.limit:,} objects through shared references (a 'billion laughs' pickle); "
                "plain numeric data never does. Check where the file came from."
            )
        if problem == "itself":
            return UnsafePickleError(
                f"refusing to load {self.source}: a {kind} in it holds itself; plain numeric data never does"
            )
        return UnsafePickleError(
            f"refusing to load {self.source}: its containers are nested deeper than {MAX_DEPTH} levels; "
            "plain numeric data never is"
        )

    def is_container(self, value: Any) -> bool:
        return isinstance(value, self.containers) and not (isinstance(value, np.ndarray) and value.dtype != object)

    def rebuild(self, value: Any, depth: int) -> Any:
        if isinstance(value, _ChumpyArray):
            return _rebuild_chumpy(self.visit(getattr(value, "state", None), depth), self.source)
        if isinstance(value, _SparseMatrix):
            return _rebuild_sparse(value.format, self.visit(getattr(value, "state", None), depth), self.source)
        if isinstance(value, dict):
            self.counted(len(value))  # the keys
            return {key: self.visit(item, depth) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.visit(item, depth) for item in value)
        if isinstance(value, np.ndarray):  # an object array: its items may be containers too
            result = np.empty(value.size, dtype=object)
            for index, item in enumerate(value.flat):
                result[index] = self.visit(item, depth)
            return result.reshape(value.shape)
        return super().rebuild(value, depth)  # a set


def loads_pickle(data: bytes, source: str = "pickle data", advice: str = DEFAULT_ADVICE) -> Any:
    """Unpickle ``data`` with the restricted rules of this module; ``advice`` ends the message of a refused global
    (what to do about this kind of file: where a genuine one comes from)."""
    try:
        loaded = _RestrictedUnpickler(io.BytesIO(data), source, advice).load()
    except PickleLoadError:
        raise
    except Exception as error:  # corrupt or truncated input raises many kinds of errors
        raise PickleLoadError(f"{source} is not a readable pickle ({type(error).__name__}: {error})") from error
    return _BoundedWalk(source, len(data)).visit(loaded)


def load_pickle(path: str | Path, advice: str = DEFAULT_ADVICE) -> Any:
    """Read a pickle file of plain numeric data (SMPL models, 3DPW sequences, camera files); see
    :func:`loads_pickle` for ``advice``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PickleLoadError(f"cannot read {path}: {error.strerror or error}") from error
    return loads_pickle(data, source=str(path), advice=advice)
