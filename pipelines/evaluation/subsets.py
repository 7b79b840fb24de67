"""The paper's evaluation subsets, and the sequence each sample belongs to.

- ``3dpw``: the 3DPW test sequences (3DPW's own test split: the sample's ``extra["split"]``, else
  the official list of 24, :mod:`preprocessing.readers.pw3d_sequences`); samples of its training
  and validation sequences are ``3dpw-train`` and ``3dpw-validation``.
- ``3dpw-occ``: the paper's 3DPW-OCC, PARE's rule (``pare/utils/compute_error.py``): every sample of
  the whole 3DPW (train, validation and test sequences: the ``3dpw-all`` set) whose sequence prefix
  (the first two ``_``-separated words) is one of 3DPW-OCC's. It is reported only when the evaluated
  samples hold all three splits (``3dpw``, ``3dpw-train`` and ``3dpw-validation``): on the test
  split alone the same rule gives another, smaller set, reported as
- ``3dpw-test-occ``: the test sequences with those prefixes (4 of the 24).
- ``h36m-p1`` / ``h36m-p2``: Human3.6M's test subjects S9 and S11, protocol 1 every camera and protocol 2
  the frontal camera 60457274 alone (SPIN's and PARE's ``h36m-p1`` / ``h36m-p2`` sets; ``pare
  preprocess`` keeps only that camera in the test split unless ``protocol: 1``). A frontal-camera
  test frame is in both; Human3.6M samples of other subjects are ``h36m``.
- any other dataset (``3doh`` ...): all its samples, under the dataset's name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pare_model.errors import UserFacingError
from preprocessing.readers.h36m_cameras import FRONTAL_CAMERA, TEST_SUBJECTS
from preprocessing.readers.pw3d_sequences import SPLITS, in_occlusion_subset, official_split

WHOLE_3DPW = ("3dpw-train", "3dpw-validation", "3dpw")
"""The subsets that together are the whole 3DPW: ``3dpw-occ`` is reported only when all of them are present."""


def _h36m_parts(extra: dict) -> tuple[str, str, str]:
    """(subject, action, camera) of a Human3.6M sample from the raw reader's or the npz reader's extras."""
    if "subject" in extra:
        return str(extra["subject"]), str(extra.get("action", "")), str(extra.get("camera", ""))
    name = str(extra.get("imgname", ""))
    if name:
        from preprocessing.readers.h36m import parse_frame_name
        from preprocessing.record import RecordRejected

        try:
            subject, action, camera, _ = parse_frame_name(name)
            return subject, action, camera
        except RecordRejected:
            pass
    return "", "", ""


def sequence_of(dataset: str, extra: dict | str) -> str:
    """The sequence a sample belongs to (3DPW sequence, Human3.6M subject_action), or '' when it has none."""
    extra = json.loads(extra) if isinstance(extra, str) else extra
    if extra.get("sequence"):
        return str(extra["sequence"])
    if dataset == "h36m":
        subject, action, _ = _h36m_parts(extra)
        return f"{subject}_{action}".strip("_")
    return ""


def subsets_of(dataset: str, extra: dict | str) -> list[str]:
    """Every subset a sample belongs to."""
    extra = json.loads(extra) if isinstance(extra, str) else extra
    if dataset == "3dpw":
        return _pw3d_subsets(extra)
    if dataset == "h36m":
        subject, _, camera = _h36m_parts(extra)
        if subject and subject not in TEST_SUBJECTS:
            return ["h36m"]
        return ["h36m-p1", "h36m-p2"] if camera in ("", FRONTAL_CAMERA) else ["h36m-p1"]
    return [dataset]


def pw3d_split(extra: dict) -> str:
    """3DPW's split of a sample's sequence: ``extra["split"]``, else the official list's, else test (shards written
    before the readers recorded the split held one split, evaluated as the test set)."""
    split = str(extra.get("split", ""))
    return split if split in SPLITS else official_split(sequence_of("3dpw", extra)) or "test"


def _pw3d_subsets(extra: dict) -> list[str]:
    split = pw3d_split(extra)
    names = ["3dpw" if split == "test" else f"3dpw-{split}"]
    if in_occlusion_subset(sequence_of("3dpw", extra)):
        names += ["3dpw-occ", "3dpw-test-occ"] if split == "test" else ["3dpw-occ"]
    return names


def _complete(found: list[str]) -> list[str]:
    """``found`` without ``3dpw-occ`` unless the samples cover the whole 3DPW."""
    return found if set(WHOLE_3DPW) <= set(found) else [name for name in found if name != "3dpw-occ"]


def incomplete_note(found: Sequence[str]) -> str:
    """One console line when 3DPW-OCC samples are there but the whole 3DPW is not (else '')."""
    if "3dpw-occ" not in found or set(WHOLE_3DPW) <= set(found):
        return ""
    held = [name for name in WHOLE_3DPW if name in found]
    return (
        f"3dpw-occ not reported: it is the paper's set over the whole 3DPW, and these shards hold only {held}; "
        "build 3DPW with `split: all` (pare preprocess) for it. 3dpw-test-occ is its test-split part."
    )


def check_subsets(wanted: Sequence[str], found: Sequence[str]) -> list[str]:
    """The subsets to report: ``wanted`` (all of them present) or, when empty, every one found
    (``3dpw-occ`` only over the whole 3DPW)."""
    found = _complete(sorted(set(found)))
    if not wanted:
        return found
    missing = [name for name in wanted if name not in found]
    if missing:
        why = (
            " (3dpw-occ needs samples of all three 3DPW splits: preprocess 3DPW with split all)"
            if "3dpw-occ" in missing
            else ""
        )
        raise UserFacingError(
            f"evaluate.subsets asks for {missing}, but the shards hold only {found or 'no sample with ground truth'}"
            f"{why}; name some of those, or leave evaluate.subsets empty for all"
        )
    return list(wanted)
