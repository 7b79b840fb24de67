"""mmhuman3d's HumanData npz files (``humandata``): the files mmhuman3d trains and tests PARE on.

One HumanData file (format: :mod:`.humandata_file`) over an image folder, such as
``eft_coco_all.npz``, ``eft_mpii.npz``, ``eft_lspet.npz``, ``h36m_train.npz`` /
``h36m_mosh_train.npz``, ``mpi_inf_3dhp_train.npz`` or SPIN's files converted
(``spin_coco_2014_train.npz``). Each row becomes one record or one reject, in file order:

- 2D keypoints and 3D joints: SPIN's 49 joints (24 ground-truth joints) taken by name from the
  190 ``human_data`` keypoints (``smpl_49``), except that files of mmhuman3d's own Human3.6M and
  MPI-INF-3DHP converters are read by Human3.6M's names, so that their head lands in slot 18 as in
  SPIN's files (:mod:`.humandata_file`); keypoints outside the mask, or with confidence 0, are
  unlabelled. The 3D joints are pelvis-relative (``joints_frame`` ``root_centred``): mmhuman3d's
  converters root-centre them, so they never place a fit;
- box: ``bbox_xywh`` -> centre ``(x + w / 2, y + h / 2)`` and side ``max(w, h)``, as mmhuman3d's
  ``HumanImageDataset``; the score column is not used;
- fit: ``smpl`` ``global_orient`` + ``body_pose`` (the root already in the camera frame: the
  converters turn 3DPW's and MoSh's roots) and ``betas``, where ``has_smpl`` (if any) is set;
  gender from ``meta['gender']`` ('m' / 'f' / 'n', SPIN's 0 / 1), else ``options.gender``;
- camera: none. The files hold no body translation, and mmhuman3d stores Human3.6M's and
  MPI-INF-3DHP's 3D joints root-centred, so nothing in them places a fit in its image: the job
  fits PARE's crop camera to the 2D keypoints, as for SPIN's npz files (``cam_param`` is not read).

``config`` (the file's, or ``options.config``) selects the dataset's rules, shared with its own
reader:

- ``h36m``: dataset ``h36m``; subject, action, camera and frame from the image name
  (``S1_Directions_1.54138969_000001.jpg``), the split's subjects and protocol 2's frontal
  camera for ``test`` (:func:`.h36m.split_frame`: other rows are rejected as ``bad_annotation``);
  the fits are MoSh's;
- ``pw3d`` (``3dpw`` in older files): dataset ``3dpw``; the sequence is the image's folder, the
  3DPW split is the source's (``extra["split"]``), and ``options.occlusion_only`` keeps the sequences
  with 3DPW-OCC's prefixes (the others are rejected as ``not_in_subset``);
- ``eft``: EFT's fits; any other config: no dataset rules.

The shards' dataset (when the source names none) is ``h36m`` or ``3dpw`` for those configs, so
that the evaluation subsets (3DPW-OCC, Human3.6M P2) apply, else the file's name without a
``_train`` / ``_test`` / ``_val`` / ``_valid`` ending, ``_`` as ``-`` (``eft_coco_all.npz`` ->
``eft-coco-all``). Rows with NaN or infinity in a value they use are rejected as
``nan_parameters``, an unknown gender code or an empty image path as ``bad_annotation``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.keypoints import NUM_OPENPOSE
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.h36m import split_frame
from preprocessing.readers.humandata_file import HumanDataFile, load_humandata, read_config
from preprocessing.readers.pw3d_sequences import in_occlusion_subset
from preprocessing.readers.spin_npz import gender_name, only_npz
from preprocessing.record import GENDERS, ImageRef, RecordRejected, SampleRecord

RULES: dict[str, str] = {"h36m": "h36m", "pw3d": "3dpw", "3dpw": "3dpw"}
"""``config`` -> the dataset whose rules apply, which is also the shards' dataset name."""
FIT_SOURCES: dict[str, str] = {"h36m": "mosh", "pw3d": "3dpw", "3dpw": "3dpw", "eft": "eft"}
"""``config`` -> where its fits come from (``humandata`` for the other configs)."""
SPLIT_ENDINGS = ("_train", "_test", "_valid", "_val")


@dataclass(frozen=True)
class HumanDataOptions:
    """Options of the ``humandata`` reader."""

    npz: str = ""
    """The HumanData file, relative to the root; empty: the only ``*.npz`` at the root."""
    images: str = ""
    """Folder the ``image_path`` entries are relative to, relative to the root (mmhuman3d: ``datasets/<name>``)."""
    config: str = ""
    """The source dataset's mmhuman3d config name (h36m, pw3d, eft ...); empty: the file's ``config``."""
    gender: str = "neutral"
    """Body model of fits whose file has no ``meta['gender']`` (or codes it as unknown)."""
    protocol: int = 2
    """Human3.6M test protocol (config h36m): 2 keeps the frontal camera 60457274 only, 1 all four."""
    occlusion_only: bool = False
    """3DPW (config pw3d): keep only the sequences with 3DPW-OCC's prefixes (of a test file: its ``3dpw-test-occ`` part)."""
    pixel_offset: float | None = None
    """Added to every coordinate to reach the project's pixel convention; None: 0.5 for real data, 0 for ``pare synth`` output."""

    def __post_init__(self):
        if self.gender not in GENDERS:
            raise ValueError(f"gender must be one of {GENDERS}, got {self.gender!r}")
        if self.protocol not in (1, 2):
            raise ValueError(f"protocol must be 1 or 2, got {self.protocol}")


def dataset_name(config: str, npz: str) -> str:
    """The shards' dataset for a file: the rules' dataset (``h36m``, ``3dpw``), else the file's name."""
    if config in RULES:
        return RULES[config]
    stem = posixpath.basename(npz).rsplit(".", 1)[0]
    for ending in SPLIT_ENDINGS:
        stem = stem.removesuffix(ending)
    return stem.replace("_", "-")


class HumanDataReader(Reader):
    """mmhuman3d HumanData npz files (eft_coco_all.npz ...) over an image folder; dataset named by config or file.

    ``default_dataset`` only stands until :meth:`check` or :meth:`records` reads the file's
    ``config`` (see :func:`dataset_name`).
    """

    name = "humandata"
    default_dataset = "humandata"
    Options = HumanDataOptions

    def __init__(self, root: str, split: str, options=None, dataset: str | None = None):
        super().__init__(root, split, options, dataset)
        self._named = bool(dataset)
        self._found_npz: str | None = None
        self._config: str | None = self.options.config or None

    def npz_path(self) -> str:
        if self.options.npz:
            return self.options.npz
        if self._found_npz is None:  # listed once, not per record
            self._found_npz = only_npz(self.files)
        return self._found_npz

    def annotation_files(self) -> list[str]:
        return [self.npz_path()]

    def config(self) -> str:
        """The config whose rules apply: ``options.config``, else the file's (read once)."""
        if self._config is None:
            self._config = read_config(self.files, self.npz_path())
        return self._config

    def check(self) -> None:
        super().check()
        self._name_dataset()

    def _name_dataset(self) -> None:
        """Name the shards' dataset after the config or the file, unless the source named it."""
        if not self._named:
            self.dataset = dataset_name(self.config(), self.npz_path())

    def records(self) -> Iterator[Item]:
        data = load_humandata(self.files, self.npz_path(), self.options.config)
        self._config = self.options.config or data.config
        self._name_dataset()
        offset = pixel_offset(self.files, self.options.pixel_offset)
        source = self.npz_path()
        for index in range(len(data)):
            try:
                yield self.record(data, index, offset)
            except RecordRejected as error:
                yield self.rejected(error.reason, error.detail, self.sample_id(data.image_path(index), index), source)

    def sample_id(self, image_path: str, index: int) -> str:
        return f"{index:07d}_{posixpath.basename(image_path).rsplit('.', 1)[0]}"

    def rules(self, image_path: str) -> dict[str, str | int]:
        """The dataset's rules for one image: its provenance, or :class:`RecordRejected` when outside the split."""
        rules = RULES.get(self.config())
        if rules == "h36m":
            subject, action, camera, frame = split_frame(image_path, self.split, self.options.protocol)
            return {"subject": subject, "action": action, "camera": camera, "frame": frame}
        if rules == "3dpw":
            sequence = posixpath.basename(posixpath.dirname(image_path))
            if self.options.occlusion_only and not in_occlusion_subset(sequence):
                raise RecordRejected(
                    "not_in_subset", f"sequence {sequence!r} is not in 3DPW-OCC (options.occlusion_only)"
                )
            return {"sequence": sequence, "split": self.split}
        return {}

    def record(self, data: HumanDataFile, index: int, offset: float) -> SampleRecord:
        """Row ``index`` as a record, or :class:`RecordRejected`."""
        path = data.image_path(index)
        if not path.strip():
            raise RecordRejected("bad_annotation", f"row {index}: empty image_path")
        extra: dict[str, str | int | float] = {"image_path": path, "index": index, **self.rules(path)}
        box = np.asarray(data.boxes[index, :4], np.float64)
        keypoints = data.columns_2d.take(data.keypoints_2d[index])
        joints_3d = None
        if data.keypoints_3d is not None and data.columns_3d is not None:
            joints_3d = data.columns_3d.take(data.keypoints_3d[index])[NUM_OPENPOSE:]
        fit = data.fit(index)
        used = {"bbox_xywh": box, "keypoints2d": keypoints, "keypoints3d": joints_3d}
        used |= {"smpl": np.concatenate(fit)} if fit is not None else {}
        bad = [key for key, value in used.items() if value is not None and not np.isfinite(value).all()]
        if bad:
            raise RecordRejected("nan_parameters", f"row {index} ({path}): {', '.join(bad)} has NaN or infinity")
        gender = self.gender(data, index) if fit is not None else "neutral"
        labelled = keypoints[:, 2] > 0
        keypoints[~labelled] = 0.0
        keypoints[labelled, :2] += offset
        return SampleRecord(
            dataset=self.dataset,
            split=self.split,
            sample_id=self.sample_id(path, index),
            image=ImageRef(self.files.url(f"{self.options.images}/{path}" if self.options.images else path)),
            center=box[:2] + box[2:] / 2.0 + offset,
            box_size=float(max(box[2], box[3])),
            keypoints_2d=keypoints,
            joints_3d=joints_3d,
            pose=fit[0] if fit is not None else None,
            betas=fit[1] if fit is not None else None,
            gender=gender,
            source=self.npz_path(),
            person_index=0,
            fit_source=FIT_SOURCES.get(self.config(), "humandata") if fit is not None else "",
            extra=extra,
        )

    def gender(self, data: HumanDataFile, index: int) -> str:
        """The body model of row ``index``'s fit; :class:`RecordRejected` for an unknown gender code."""
        if data.genders is None:
            return self.options.gender
        gender = gender_name(data.genders[index], self.options.gender)
        if gender is None:
            raise RecordRejected("bad_annotation", f"row {index}: unknown gender {data.genders[index]!r}")
        return gender
