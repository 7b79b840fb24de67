"""LSP Extended (``lspet``): ``joints.mat`` over ``im%05d.png`` images, joined with EFT's LSPet fits.

The ``hr-lspet`` release holds ``joints.mat`` with ``joints`` (14, 3, N): x, y and a flag per
joint, 1 where the joint is annotated (``(N, 14, 3)`` is read too). The 14 joints are LSP's,
which are SPIN's first 14 ground-truth joints (right ankle ... head top). One person per image,
``im00001.png`` for row 0. The box is SPIN's (``datasets/preprocess/hr_lspet.py``): the tight box
of the annotated joints, its side ``box_scale`` (1.2) times the longer side.

``options.eft`` joins EFT's ``LSPet_train_ver10.json`` the way the ``mpii`` reader joins EFT's
MPII file (by image name, then keypoints; :func:`~.eft.join_by_keypoints`): a joined person takes
the fit, its camera, box and OpenPose keypoints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.keypoints import NUM_OPENPOSE
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.eft import EftFit, attach_fit, check_camera_option, fits_by_image, join_by_keypoints
from preprocessing.readers.files import SourceError
from preprocessing.record import ImageRef, SampleRecord

log = logging.getLogger(__name__)
NUM_LSP = 14


@dataclass(frozen=True)
class LspetOptions:
    """Options of the ``lspet`` reader."""

    annotations: str = "joints.mat"
    """``joints.mat`` relative to the root."""
    images: str = ""
    """Image folder relative to the root (empty: the root)."""
    image_name: str = "im{:05d}.png"
    """Name of image ``k`` (1-based), as a format string."""
    min_keypoints: int = 6
    """Fewest annotated joints a person needs."""
    box_scale: float = 1.2
    """Person box side / the longer side of the annotated joints' tight box (SPIN: 1.2)."""
    eft: str = ""
    """EFT's LSPet fit file (e.g. ``eft_fits/LSPet_train_ver10.json``), relative to the root; empty: 2D joints only."""
    require_fit: bool = False
    """With ``eft`` set, reject people that no fit joins (``no_fit``) instead of keeping them 2D-only."""
    max_join_distance: float = 0.05
    """Largest mean joint distance, as a fraction of the box side, at which a fit joins a person."""
    eft_camera: str = "spin"
    """Convention of EFT's ``parm_cam``: ``spin`` or ``eft_visualizer`` (see :mod:`preprocessing.readers.eft`)."""
    pixel_offset: float | None = None
    """Added to every coordinate; None: 0.5 for real data, 0 for ``pare synth`` output."""


def read_joints(path: str, where: str) -> np.ndarray:
    """(N, 14, 3) joints of ``joints.mat`` (stored (14, 3, N) in hr-lspet)."""
    import scipy.io

    try:
        joints = np.asarray(scipy.io.loadmat(path)["joints"], dtype=np.float64)
    except (KeyError, ValueError, OSError, NotImplementedError) as error:
        raise SourceError(f"{where} is not LSP's joints.mat (a 'joints' array): {error}") from None
    if joints.ndim == 3 and joints.shape[:2] == (NUM_LSP, 3):
        return joints.transpose(2, 0, 1)
    if joints.ndim == 3 and joints.shape[1:] == (NUM_LSP, 3):
        return joints
    raise SourceError(f"{where}: 'joints' has shape {joints.shape}, expected (14, 3, N) or (N, 14, 3)")


class LspetReader(Reader):
    """LSP Extended 2D joints (``joints.mat``) with optional EFT fits joined by image and keypoints."""

    name = "lspet"
    default_dataset = "lspet"
    splits = ("train",)
    Options = LspetOptions

    def annotation_files(self) -> list[str]:
        return [self.options.annotations] + ([self.options.eft] if self.options.eft else [])

    def check(self) -> None:
        check_camera_option(self.options.eft_camera)
        super().check()

    def records(self) -> Iterator[Item]:
        options, source = self.options, self.options.annotations
        offset = pixel_offset(self.files, options.pixel_offset)
        joints = read_joints(self.files.local_path(source), self.files.url(source))
        fits = fits_by_image(self.files, options.eft, offset, options.eft_camera) if options.eft else {}
        joined_fits = 0
        for index, person in enumerate(joints):
            name = options.image_name.format(index + 1)
            sample_id = name.rsplit(".", 1)[0]
            labelled = (person[:, 2] > 0) & np.isfinite(person[:, :2]).all(axis=1)
            if labelled.sum() < options.min_keypoints:
                detail = f"{int(labelled.sum())} annotated joints, need {options.min_keypoints} (options.min_keypoints)"
                yield self.rejected("no_visible_keypoints", detail, sample_id, source)
                continue
            keypoints = np.zeros((49, 3))
            keypoints[NUM_OPENPOSE : NUM_OPENPOSE + NUM_LSP, :2] = np.where(
                labelled[:, None], person[:, :2] + offset, 0
            )
            keypoints[NUM_OPENPOSE : NUM_OPENPOSE + NUM_LSP, 2] = labelled
            low, high = person[labelled, :2].min(axis=0), person[labelled, :2].max(axis=0)
            box_size = float(options.box_scale * (high - low).max())
            fit = None
            if name in fits:
                fit = join_by_keypoints([(keypoints, box_size)], fits[name], options.max_join_distance)[0]
                joined_fits += fit is not None
            if fit is None and options.eft and options.require_fit:
                yield self.rejected("no_fit", f"no EFT fit in {options.eft} matches this person", sample_id, source)
                continue
            yield self._record(sample_id, name, keypoints, (low + high) / 2 + offset, box_size, fit, index)
        unmatched = sum(len(image_fits) for image_fits in fits.values()) - joined_fits
        if unmatched:
            log.warning("%d EFT fits in %s matched no LSPet person", unmatched, options.eft)

    def _record(self, sample_id, name, keypoints, center, box_size, fit: EftFit | None, index) -> SampleRecord:
        folder = f"{self.options.images}/" if self.options.images else ""
        record = SampleRecord(
            dataset=self.dataset,
            split=self.split,
            sample_id=sample_id,
            image=ImageRef(self.files.url(folder + name)),
            center=center,
            box_size=box_size,
            keypoints_2d=keypoints,
            source=self.options.annotations,
            extra={"image": name, "index": index},
        )
        return record if fit is None else attach_fit(record, fit)
