"""``pare occluders build``: a Ray job that cuts every usable Pascal VOC object into an occluder bank.

Images are split into tasks over the Ray cluster; the driver gathers the cut-outs in image
order and writes the bank (:mod:`preprocessing.augment.synthetic_occlusion`) and, beside it,
``<bank>.rejects.jsonl``: every object that was not used, with its reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pare_model.errors import UserFacingError
from pipelines.io.cluster import init_ray
from pipelines.occluder_bank.voc import extract, segmented_ids
from preprocessing.augment.synthetic_occlusion import save_bank

IMAGES_PER_TASK = 64


@dataclass(frozen=True)
class BankReport:
    bank: Path
    rejects: Path
    images: int
    occluders: int
    rejected_by_reason: dict[str, int]


def build_bank(
    voc_root: str | Path, out: str | Path, min_pixels: int = 500, ray_address: str = "", show_progress: bool = True
) -> BankReport:
    import ray
    from tqdm import tqdm

    voc_root, out = Path(voc_root), Path(out)
    try:
        ids = segmented_ids(voc_root)
    except FileNotFoundError as error:
        raise UserFacingError(str(error)) from None
    if not ids:
        raise UserFacingError(f"{voc_root}/SegmentationObject holds no .png files: is this VOC2012 with segmentations?")
    init_ray(ray_address)

    @ray.remote(num_cpus=1)
    def work(chunk: list[str]):
        results = [extract(voc_root, image_id, min_pixels) for image_id in chunk]
        return [c for cutouts, _ in results for c in cutouts], [s for _, skipped in results for s in skipped]

    chunks = [ids[i : i + IMAGES_PER_TASK] for i in range(0, len(ids), IMAGES_PER_TASK)]
    pending = [work.remote(chunk) for chunk in chunks]
    cutouts, rejects = [], []
    with tqdm(total=len(ids), unit="image", desc="occluders", disable=not show_progress) as progress:
        for chunk, ref in zip(chunks, pending, strict=True):  # in order, so the bank is deterministic
            found, skipped = ray.get(ref)
            cutouts.extend(found)
            rejects.extend(skipped)
            progress.update(len(chunk))
    if not cutouts:
        raise UserFacingError(f"no usable object in {len(ids)} VOC images (see the reasons: {_counts(rejects)})")
    save_bank(
        out,
        cutouts,
        {
            "source": str(voc_root),
            "images": len(ids),
            "min_pixels": min_pixels,
            "rules": "segmented; not person, not truncated, not difficult; cut to the annotated box; mask >= "
            "min_pixels; border eroded 8x8 at alpha 192; halved (as the original PARE's Pascal occluders)",
        },
    )
    rejects_path = out.with_name(out.name + ".rejects.jsonl")
    rejects_path.write_text("".join(json.dumps(r) + "\n" for r in rejects))
    return BankReport(out, rejects_path, len(ids), len(cutouts), _counts(rejects))


def _counts(rejects: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reject in rejects:
        counts[reject["reason"]] = counts.get(reject["reason"], 0) + 1
    return dict(sorted(counts.items()))
