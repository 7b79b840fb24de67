"""Write a procedural body model as an asset folder in SMPL's file formats, byte-reproducibly.

Pickles use protocol 2 like the official files (``J_regressor`` as a scipy CSC matrix);
``.npz`` archives are written with fixed timestamps so that the same seed gives the same
bytes. Every model file carries the stand-in notice in its own keys, and the folder has a
README and a ``procedural.json`` manifest with the seed and each file's sha256.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse

from pare_model.body_model.assets import (
    EXTRA_REGRESSOR_FILE,
    H36M_REGRESSOR_FILE,
    MEAN_PARAMS_FILE,
    PROCEDURAL_MANIFEST,
)
from pare_model.body_model.procedural.generator import GENERATOR, GENERATOR_VERSION, NOTICE, ProceduralBodyModel

ModelFormat = Literal["pkl", "npz"]
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray], allow_pickle: bool = False) -> None:
    """Like ``np.savez_compressed`` but with fixed member timestamps (reproducible bytes).

    ``allow_pickle`` lets object arrays in (pickled, as ``np.savez`` does), for formats that
    store dicts that way (mmhuman3d's HumanData).
    """
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(array), allow_pickle=allow_pickle)


def _stand_in_keys(seed: int) -> dict[str, object]:
    return {
        "procedural_stand_in": True,
        "notice": NOTICE,
        "generator": f"{GENERATOR} v{GENERATOR_VERSION}",
        "seed": seed,
    }


def _write_model(path: Path, model: Mapping[str, np.ndarray], seed: int, fmt: ModelFormat) -> None:
    if fmt == "pkl":
        pickled: dict[str, object] = dict(model)  # arrays, a sparse J_regressor and the stand-in's metadata
        pickled["J_regressor"] = scipy.sparse.csc_matrix(model["J_regressor"])
        pickled.update(_stand_in_keys(seed))
        path.write_bytes(pickle.dumps(pickled, protocol=2))
    else:
        contents = {key: np.asarray(value) for key, value in model.items()}
        contents.update({key: np.asarray(value) for key, value in _stand_in_keys(seed).items()})
        write_npz(path, contents)


def _readme(seed: int, files: list[str]) -> str:
    listing = "\n".join(f"- `{name}`" for name in files)
    return f"""# Procedural body model (stand-in, NOT SMPL)

{NOTICE}

Generator: {GENERATOR} v{GENERATOR_VERSION}, seed {seed}. Regenerate with
`pare body-model synth --out <this folder> --seed {seed}`.

The files have exactly the layout of the SMPL model files and of SPIN/PARE's extras, so
every loader that reads those reads these:

{listing}

To use the real SMPL model instead, download it from https://smpl.is.tue.mpg.de (licence
required), put `SMPL_NEUTRAL.pkl` with `J_regressor_extra.npy`, `J_regressor_h36m.npy` and
`smpl_mean_params.npz` in a folder, and set `body_model.source=files
body_model.asset_dir=<that folder>`.
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_asset_folder(model: ProceduralBodyModel, folder: Path, fmt: ModelFormat = "pkl") -> list[Path]:
    """Write all files of ``model`` into ``folder`` (created if needed); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for gender, arrays in model.models.items():
        path = folder / f"SMPL_{gender.upper()}.{fmt}"
        _write_model(path, arrays, model.seed, fmt)
        written.append(path)
    for name, array in ((EXTRA_REGRESSOR_FILE, model.j_regressor_extra), (H36M_REGRESSOR_FILE, model.j_regressor_h36m)):
        np.save(folder / name, array, allow_pickle=False)
        written.append(folder / name)
    mean = dict(model.mean_params, notice=np.asarray(NOTICE))
    write_npz(folder / MEAN_PARAMS_FILE, mean)
    written.append(folder / MEAN_PARAMS_FILE)

    readme = folder / "README.md"
    readme.write_text(_readme(model.seed, [p.name for p in written]))
    manifest = {
        **_stand_in_keys(model.seed),
        "generator_version": GENERATOR_VERSION,
        "format": fmt,
        "identity_betas": [round(float(b), 6) for b in model.identity_betas],
        "files": {p.name: _sha256(p) for p in written},
    }
    (folder / PROCEDURAL_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return written + [readme, folder / PROCEDURAL_MANIFEST]
