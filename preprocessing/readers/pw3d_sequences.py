"""3DPW's sequences: the official split of each, and the 3DPW-OCC rule (PARE's occlusion subset).

The split of a sequence is the folder of its file in the download (``sequenceFiles/{train,validation,test}``):
24 training, 12 validation and 24 test sequences. The test list is the original PARE's
``pw3d_test_sequences`` (``pare/core/constants.py``), which its ``compute_error`` uses for the
"3DPW-Test" figure; validation and training are the rest of the download's folders (PARE's
``pw3d_cam_sequences`` names five of the validation ones).

3DPW-OCC (``pare/utils/compute_error.py``): a frame of the *whole* 3DPW (the ``3dpw-all`` set: all
three splits) belongs to it when the first two ``_``-separated words of its sequence's name are one
of :data:`OCCLUSION_SEQUENCES` (PARE's ``pw3d_occluded_sequences``). Only 4 of those 17 prefixes
occur among the test sequences.
"""

from __future__ import annotations

OCCLUSION_SEQUENCES = (
    "courtyard_backpack",
    "courtyard_basketball",
    "courtyard_bodyScannerMotions",
    "courtyard_box",
    "courtyard_golf",
    "courtyard_jacket",
    "courtyard_laceShoe",
    "downtown_stairs",
    "flat_guitar",
    "flat_packBags",
    "outdoors_climbing",
    "outdoors_crosscountry",
    "outdoors_fencing",
    "outdoors_freestyle",
    "outdoors_golf",
    "outdoors_parcours",
    "outdoors_slalom",
)
"""The sequence prefixes of 3DPW-OCC (PARE's ``pw3d_occluded_sequences``)."""

TEST_SEQUENCES = (
    "downtown_arguing_00",
    "downtown_bar_00",
    "downtown_bus_00",
    "downtown_cafe_00",
    "downtown_car_00",
    "downtown_crossStreets_00",
    "downtown_downstairs_00",
    "downtown_enterShop_00",
    "downtown_rampAndStairs_00",
    "downtown_runForBus_00",
    "downtown_runForBus_01",
    "downtown_sitOnStairs_00",
    "downtown_stairs_00",
    "downtown_upstairs_00",
    "downtown_walkBridge_01",
    "downtown_walkUphill_00",
    "downtown_walking_00",
    "downtown_warmWelcome_00",
    "downtown_weeklyMarket_00",
    "downtown_windowShopping_00",
    "flat_guitar_01",
    "flat_packBags_00",
    "office_phoneCall_00",
    "outdoors_fencing_01",
)
"""``sequenceFiles/test`` (PARE's ``pw3d_test_sequences``)."""

VALIDATION_SEQUENCES = (
    "courtyard_basketball_01",
    "courtyard_dancing_00",
    "courtyard_drinking_00",
    "courtyard_hug_00",
    "courtyard_jumpBench_01",
    "courtyard_rangeOfMotions_01",
    "downtown_walkDownhill_00",
    "outdoors_crosscountry_00",
    "outdoors_freestyle_01",
    "outdoors_golf_00",
    "outdoors_parcours_00",
    "outdoors_parcours_01",
)
"""``sequenceFiles/validation``."""

TRAIN_SEQUENCES = (
    "courtyard_arguing_00",
    "courtyard_backpack_00",
    "courtyard_basketball_00",
    "courtyard_bodyScannerMotions_00",
    "courtyard_box_00",
    "courtyard_capoeira_00",
    "courtyard_captureSelfies_00",
    "courtyard_dancing_01",
    "courtyard_giveDirections_00",
    "courtyard_golf_00",
    "courtyard_goodNews_00",
    "courtyard_jacket_00",
    "courtyard_laceShoe_00",
    "courtyard_rangeOfMotions_00",
    "courtyard_relaxOnBench_00",
    "courtyard_relaxOnBench_01",
    "courtyard_shakeHands_00",
    "courtyard_warmWelcome_00",
    "outdoors_climbing_00",
    "outdoors_climbing_01",
    "outdoors_climbing_02",
    "outdoors_freestyle_00",
    "outdoors_slalom_00",
    "outdoors_slalom_01",
)
"""``sequenceFiles/train``."""

SPLIT_SEQUENCES = {"train": TRAIN_SEQUENCES, "validation": VALIDATION_SEQUENCES, "test": TEST_SEQUENCES}
"""The official split -> its sequences."""

SPLITS = tuple(SPLIT_SEQUENCES)
"""3DPW's splits, in the order the ``3dpw-all`` set reads them (train, validation, test)."""


def sequence_prefix(sequence: str) -> str:
    """The first two ``_``-separated words of a sequence name (or of its file name, ``.pkl`` dropped)."""
    return "_".join(sequence.removesuffix(".pkl").split("_")[:2])


def in_occlusion_subset(sequence: str) -> bool:
    """Whether a 3DPW sequence (or its file name) is one of 3DPW-OCC's, by PARE's rule (its prefix is listed)."""
    return sequence_prefix(sequence) in OCCLUSION_SEQUENCES


def official_split(sequence: str) -> str:
    """The split 3DPW puts a sequence in, or '' for a name that is not one of 3DPW's 60."""
    return next((split for split, names in SPLIT_SEQUENCES.items() if sequence in names), "")
