"""The paper's evaluation subsets, and the sequence each sample belongs to.

- ``3dpw``: every 3DPW sample of the shards (PARE reports the test split).
- ``3dpw-occ``: 3DPW test sequences whose names start with one of :data:`PW3D_OCC_PREFIXES`
  (``docs/pare-reference.md``).
- ``h36m-p2``: Human3.6M protocol 2, the frontal camera 60457274 (S9 and S11 are the test split
  of the shards; ``pare preprocess`` keeps only that camera for it).
- any other dataset: all its samples, under the dataset's name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pare_model.errors import UserFacingError
from preprocessing.readers.h36m_cameras import FRONTAL_CAMERA
from preprocessing.readers.pw3d import OCCLUSION_SEQUENCES

PW3D_OCC_PREFIXES: tuple[str, ...] = OCCLUSION_SEQUENCES
"""3DPW-OCC: the test sequences that start with these names (one list, kept by the 3DPW reader)."""

NAMED_SUBSETS = ("3dpw", "3dpw-occ", "h36m-p2")


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
        sequence = sequence_of(dataset, extra)
        return ["3dpw", "3dpw-occ"] if sequence.startswith(PW3D_OCC_PREFIXES) else ["3dpw"]
    if dataset == "h36m":
        camera = _h36m_parts(extra)[2]
        return ["h36m-p2"] if camera in ("", FRONTAL_CAMERA) else ["h36m"]
    return [dataset]


def check_subsets(wanted: Sequence[str], found: Sequence[str]) -> list[str]:
    """The subsets to report: ``wanted`` (all of them present) or, when empty, every one found."""
    found = sorted(set(found))
    if not wanted:
        return found
    missing = [name for name in wanted if name not in found]
    if missing:
        raise UserFacingError(
            f"evaluate.subsets asks for {missing}, but the shards hold only {found or 'no sample with ground truth'}; "
            f"name some of those, or leave evaluate.subsets empty for all"
        )
    return list(wanted)
