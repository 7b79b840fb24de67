"""Human3.6M's subjects and cameras, and camera intrinsics from the common cameras pickle or the official ``metadata.xml``.

- The pickle (``cameras.pkl``, written by mmpose's and others' conversion scripts) is a dict
  keyed ``(subject, camera id)`` with ``f`` (2, 1), ``c`` (2, 1), ``k`` (3, 1), ``p`` (2, 1),
  ``w``, ``h`` (and ``R``, ``T``). It is read with the restricted unpickler.
- ``metadata.xml`` (from Human3.6M's "Visualisation and large scale prediction software")
  holds every calibration in one vector ``<w0>[...]</w0>``: first 6 extrinsic values per
  (camera, subject), camera-major over subjects S1..S11, then from position 264 nine intrinsic
  values per camera, ``f`` (2), ``c`` (2), ``k`` (3), ``p`` (2), in the camera order of
  ``<dbcameras><index2id>``. Intrinsics do not depend on the subject.

Only intrinsics are read: the readers use ``D3_Positions_mono``, which is already in each
camera's frame, so the extrinsics are never needed. Image sizes are Human3.6M's fixed ones.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import numpy as np

from pare_model.errors import PickleLoadError
from pare_model.safe_pickle import load_pickle
from preprocessing.readers.files import SourceError, SourceFiles

CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
"""Human3.6M's four cameras, in the order of ``metadata.xml`` and of the MoSh file names (``_cam0`` ...)."""
IMAGE_SIZES = {"54138969": (1002, 1000), "55011271": (1000, 1000), "58860488": (1000, 1000), "60457274": (1002, 1000)}
"""Camera id -> (height, width) of its videos."""
SUBJECTS = tuple(f"S{k}" for k in range(1, 12))
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
FRONTAL_CAMERA = "60457274"
"""Protocol 2 evaluates S9 and S11 through this camera only."""
CAMERAS_ADVICE = (
    "The Human3.6M camera pickles of SPIN and mmhuman3d hold only such arrays: get the file again from where it came "
    "from, or point the reader at Human3.6M's own metadata.xml."
)
INTRINSICS_START = 264  # 4 cameras x 11 subjects x 6 extrinsic values come first


@dataclass(frozen=True)
class H36mCamera:
    """One camera's intrinsics and lens distortion, in Human3.6M's pixel convention (centres at integers)."""

    focal: np.ndarray  # (2,)
    center: np.ndarray  # (2,)
    radial: np.ndarray  # (3,) k1, k2, k3
    tangential: np.ndarray  # (2,) p1, p2
    image_size: tuple[int, int]  # (height, width)

    def intrinsics(self, offset: float = 0.0) -> np.ndarray:
        """(3, 3) pinhole matrix, the principal point moved by ``offset`` (0.5 for the project's convention)."""
        (fx, fy), (cx, cy) = self.focal, self.center + offset
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def project(self, points: np.ndarray, offset: float = 0.0) -> np.ndarray:
        """(K, 3) camera-frame points -> (K, 2) pixels with Human3.6M's radial and tangential distortion."""
        xy = points[:, :2] / points[:, 2:3]
        r2 = (xy**2).sum(axis=1)
        radial = 1.0 + self.radial[0] * r2 + self.radial[1] * r2**2 + self.radial[2] * r2**3
        tangential = self.tangential[0] * xy[:, 1] + self.tangential[1] * xy[:, 0]
        distorted = xy * (radial + tangential)[:, None] + np.outer(r2, self.tangential[::-1])
        return self.focal * distorted + self.center + offset


def _vector(value, size: int, name: str, where: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.size != size or not np.isfinite(array).all():
        raise SourceError(f"{where}: {name!r} must hold {size} finite numbers, got {array.tolist()}")
    return array


def cameras_from_pickle(data, where: str) -> dict[tuple[str, str], H36mCamera]:
    """The cameras of a loaded cameras pickle (dict keyed (subject, camera id))."""
    if not isinstance(data, dict) or not all(isinstance(key, tuple) and len(key) == 2 for key in data):
        raise SourceError(f"{where} is not a Human3.6M cameras pickle: expected a dict keyed (subject, camera id)")
    cameras = {}
    for (subject, camera_id), value in data.items():
        name = f"{where} [{subject!r}, {camera_id!r}]"
        missing = [key for key in ("f", "c", "k", "p") if not isinstance(value, dict) or key not in value]
        if missing:
            raise SourceError(f"{name} has no {missing}")
        size = IMAGE_SIZES.get(str(camera_id), (0, 0))
        cameras[str(subject), str(camera_id)] = H36mCamera(
            focal=_vector(value["f"], 2, "f", name),
            center=_vector(value["c"], 2, "c", name),
            radial=_vector(value["k"], 3, "k", name),
            tangential=_vector(value["p"], 2, "p", name),
            image_size=(int(value.get("h", size[0])), int(value.get("w", size[1]))),
        )
    return cameras


def cameras_from_metadata(text: str, where: str) -> dict[tuple[str, str], H36mCamera]:
    """The cameras of every subject from the text of ``metadata.xml``."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise SourceError(f"{where} is not readable XML ({error}); use Human3.6M's metadata.xml") from None
    w0 = root.find("w0")
    if w0 is None or not (w0.text or "").strip():
        raise SourceError(f"{where} has no <w0> calibration vector; use Human3.6M's metadata.xml")
    try:
        values = np.array([float(v) for v in w0.text.strip().strip("[]").split()])
    except ValueError as error:
        raise SourceError(f"{where}: <w0> holds a value that is not a number ({error})") from None
    ids = [element.text.strip() for element in root.findall("dbcameras/index2id/*") if element.text]
    ids = ids or list(CAMERA_IDS)
    needed = INTRINSICS_START + 9 * len(ids)
    if len(values) < needed:
        raise SourceError(f"{where}: <w0> has {len(values)} values, expected {needed} for {len(ids)} cameras")
    cameras = {}
    for index, camera_id in enumerate(ids):
        block = values[INTRINSICS_START + 9 * index : INTRINSICS_START + 9 * (index + 1)]
        camera = H36mCamera(block[0:2], block[2:4], block[4:7], block[7:9], IMAGE_SIZES.get(camera_id, (0, 0)))
        cameras.update({(subject, camera_id): camera for subject in SUBJECTS})
    return cameras


def load_cameras(files: SourceFiles, relative: str) -> dict[tuple[str, str], H36mCamera]:
    """Cameras from ``relative`` under the source: ``*.xml`` is ``metadata.xml``, anything else the pickle."""
    url = files.url(relative)
    if relative.lower().endswith(".xml"):
        return cameras_from_metadata(files.read_bytes(relative).decode("utf-8", "replace"), url)
    try:
        data = load_pickle(files.local_path(relative), advice=CAMERAS_ADVICE)
    except PickleLoadError as error:
        raise SourceError(f"cannot read the Human3.6M cameras pickle {url}: {error}") from None
    return cameras_from_pickle(data, url)
