"""3DOH50K (``3doh``): Zhang et al., CVPR 2020, "Object-Occluded Human Shape and Pose Estimation from a Single
Color Image", the object-occluded test set of PARE's paper.

Release layout (the dataset's own visualisation script; posepile's 3DOH reader): ``trainset/`` and
``testset/`` (``options.folder`` names another, e.g. PARE's local ``test/``), each with
``annots.json`` and ``images/<id>.jpg`` (``trainset`` also ``masks/<id>.png``). ``annots.json`` maps
a five-digit image id (``"00000"``) to one person's annotation (PARE's 3DOH preprocessing lists
the keys and shapes): ``extri`` (4, 4) world to camera, ``intri`` (3, 3), ``img_path`` (relative to
the split folder, Windows separators: ``images\\00000.jpg``), ``bbox`` [[x1, y1], [x2, y2]],
``betas`` (1, 10), ``pose`` (1, 72) axis-angle with the root in the world frame, ``trans`` (1, 3),
``scale`` (1,), ``smpl_joints_2d`` (24, 2), ``smpl_joints_3d`` (24, 3), ``lsp_joints_2d`` (14, 2),
``lsp_joints_3d`` (14, 3), ``mask_path``.

Each entry becomes one record or one reject, in id order, as PARE's 3DOH preprocessing
(``oh3d_*_extract``, a preprocessing script of the PARE authors' tree) reads it:

- fit: ``pose`` with its root turned into the camera frame, ``R R_w`` (``R = extri[:3, :3]``), and
  ``betas``, on the neutral body (3DOH has no genders; PARE evaluates it with the neutral model);
- box: centre of ``bbox``, side ``box_scale`` (1.2) times its **height** (PARE: ``scale = 1.2 (y2 - y1) / 200``);
- keypoints: ``lsp_joints_2d`` on SPIN's 14 LSP ground-truth joints (slots 0-13; PARE's
  ``convert_kps(common -> spin)``), confidence 1 (3DOH annotates all 14);
- camera: ``intri`` (+ ``pixel_offset``); the body's translation is fitted to those keypoints by the
  job (``trans``, ``scale`` and the 3D joints are not read: PARE uses none of them);
- ``joints_3d``: none. PARE's 3DOH protocol (``EVAL_MESH_DATASETS``) measures against the H36M-regressor
  joints of the neutral ground-truth mesh, as for 3DPW: ``pare evaluate`` does the same (subset ``3doh``).

Rejects: NaN or infinity in a value it uses (``nan_parameters``), a missing key, a wrong shape, a
box without height or an ``img_path`` outside the split folder (``bad_annotation``). An
``annots.json`` that cannot be parsed or is not a mapping of ids is a broken file:
:class:`~preprocessing.readers.files.SourceError` names it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from preprocessing.keypoints import LSP14_TO_SPIN_GT, spin_indices
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.eft import read_json
from preprocessing.readers.files import SourceError
from preprocessing.record import ImageRef, PerspectiveCamera, RecordRejected, SampleRecord

LSP_TO_SPIN = spin_indices(LSP14_TO_SPIN_GT)
FOLDERS = {"train": "trainset", "test": "testset"}
"""The release's split folders."""
SHAPES: dict[str, tuple[int, ...]] = {
    "extri": (4, 4),
    "intri": (3, 3),
    "bbox": (2, 2),
    "betas": (1, 10),
    "pose": (1, 72),
    "lsp_joints_2d": (14, 2),
}
"""The keys a record uses, with their shapes in ``annots.json``."""


@dataclass(frozen=True)
class Oh3dOptions:
    """Options of the ``3doh`` reader."""

    folder: str = ""
    """The split's folder, relative to the root; empty: the release's ``trainset`` / ``testset``."""
    annotations: str = "annots.json"
    """The annotation file, relative to the split's folder."""
    box_scale: float = 1.2
    """Person box side / the height of the annotated ``bbox`` (PARE's 3DOH preprocessing: 1.2)."""
    pixel_offset: float | None = None
    """Added to every coordinate and the principal point; None: 0.5 for real data, 0 for ``pare synth`` output."""


class Oh3dReader(Reader):
    """3DOH50K's annots.json (SMPL fits, cameras, LSP keypoints, boxes) and its images."""

    name = "3doh"
    default_dataset = "3doh"
    splits = ("train", "test")
    Options = Oh3dOptions

    def folder(self) -> str:
        return self.options.folder.strip("/") or FOLDERS[self.split]

    def annotation_files(self) -> list[str]:
        return [f"{self.folder()}/{self.options.annotations}"]

    def load(self) -> dict:
        relative = self.annotation_files()[0]
        entries = read_json(self.files, relative, "3DOH annotation file")
        if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
            raise SourceError(
                f"3DOH annotation file {self.files.url(relative)} is not a mapping of image ids to annotations "
                "(3DOH50K's annots.json); is it the right file?"
            )
        return entries

    def records(self) -> Iterator[Item]:
        offset = pixel_offset(self.files, self.options.pixel_offset)
        source = self.annotation_files()[0]
        for image_id, entry in sorted(self.load().items()):
            try:
                yield self.record(str(image_id), entry, offset)
            except RecordRejected as error:
                yield self.rejected(error.reason, error.detail, str(image_id), source)

    def image_path(self, image_id: str, entry: dict) -> str:
        """The image's path relative to the root; ``img_path`` must stay inside the split folder."""
        relative = str(entry.get("img_path") or f"images/{image_id}.jpg").replace("\\", "/")
        normal = posixpath.normpath(relative)
        if posixpath.isabs(normal) or normal.startswith(".."):
            raise RecordRejected("bad_annotation", f"img_path {relative!r} is not inside the split folder")
        return f"{self.folder()}/{normal}"

    def record(self, image_id: str, entry: dict, offset: float) -> SampleRecord:
        """One entry as a record, or :class:`RecordRejected`."""
        values = _arrays(entry)
        bad = [key for key, value in values.items() if not np.isfinite(value).all()]
        if bad:
            raise RecordRejected("nan_parameters", f"{', '.join(bad)} has NaN or infinity")
        (x1, y1), (x2, y2) = values["bbox"]
        if not y2 > y1:
            raise RecordRejected("bad_annotation", f"bbox {values['bbox'].tolist()} has no height")
        pose = values["pose"][0].copy()
        rotation = values["extri"][:3, :3]
        pose[:3] = (Rotation.from_matrix(rotation) * Rotation.from_rotvec(pose[:3])).as_rotvec()
        keypoints = np.zeros((49, 3))
        keypoints[LSP_TO_SPIN] = np.concatenate([values["lsp_joints_2d"] + offset, np.ones((14, 1))], axis=1)
        intrinsics = values["intri"].copy()
        intrinsics[:2, 2] += offset
        return SampleRecord(
            dataset=self.dataset,
            split=self.split,
            sample_id=image_id,
            image=ImageRef(self.files.url(self.image_path(image_id, entry))),
            center=np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0]) + offset,
            box_size=float(self.options.box_scale * (y2 - y1)),
            keypoints_2d=keypoints,
            pose=pose,
            betas=values["betas"][0].copy(),
            camera=PerspectiveCamera(intrinsics),
            source=self.annotation_files()[0],
            fit_source="3doh",
            extra={"image_id": image_id},
        )


def _arrays(entry: dict) -> dict[str, np.ndarray]:
    """The used values of an entry as float arrays of :data:`SHAPES`, or :class:`RecordRejected`."""
    values = {}
    for key, shape in SHAPES.items():
        if key not in entry:
            raise RecordRejected("bad_annotation", f"no {key!r} (3DOH50K's annots.json has it for every image)")
        try:
            value = np.asarray(entry[key], np.float64)
        except (TypeError, ValueError):
            raise RecordRejected("bad_annotation", f"{key!r} is not numeric") from None
        if value.shape != shape:
            raise RecordRejected("bad_annotation", f"{key!r} has shape {value.shape}, expected {shape}")
        values[key] = value
    return values
