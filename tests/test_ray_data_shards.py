"""Our shards in the Ray ecosystem: ``ray.data.read_webdataset`` reads them with its default decoder, and every
member decodes to the same arrays and values as our own reader (:mod:`pipelines.data.samples`) gives."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pipelines.data.reading import iter_samples, read_manifest
from pipelines.data.samples import decode_raw
from pipelines.io.storage import Storage


def _plain(value):
    """Arrow/pandas round trips turn JSON lists into numpy arrays: back to nested Python lists and scalars."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype == object else value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def test_read_webdataset_decodes_every_member_like_our_reader(training_shards, ray_cluster):
    import ray

    folder = training_shards / "3dpw" / "test"
    storage = Storage(str(folder))
    manifest = read_manifest(storage, "")
    ours = {}
    for _, sample in iter_samples(storage, "", manifest):
        crop, labels, annotation = decode_raw(sample)
        ours[sample["__key__"]] = (cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), labels, annotation)

    paths = [str(folder / shard["name"]) for shard in manifest["shards"]]
    rows = ray.data.read_webdataset(paths).take_all()

    assert len(rows) == manifest["totals"]["samples"] == len(ours)
    assert {row["__key__"] for row in rows} == set(ours)
    for row in rows:
        image, labels, annotation = ours[row["__key__"]]
        assert set(row) >= {"jpg", "labels.png", "json"}
        np.testing.assert_array_equal(np.asarray(row["jpg"]), image)
        np.testing.assert_array_equal(np.asarray(row["labels.png"]), labels)
        assert _plain(row["json"]) == _plain(annotation)  # Arrow fills keys a row lacks with nulls: both without


def explore(location: str):
    """docs/preprocessing.md's Ray Data example, verbatim but for the return: the annotations only (no image is
    decoded), samples per sequence, and how many have most of their keypoints inside the fit's silhouette."""
    import ray
    from ray.data.expressions import col

    ds = ray.data.read_webdataset(location, file_extensions=["tar"], suffixes=["json"])
    rows = ds.map(
        lambda row: {
            "dataset": row["json"]["dataset"],
            "sequence": (row["json"]["extra"] or {}).get("sequence") or "",
            "in_silhouette": row["json"]["fit_quality"]["keypoints_in_silhouette"],
        }
    )
    per_sequence = rows.groupby("sequence").count().to_pandas()
    good = rows.filter(expr=col("in_silhouette") >= 0.9)
    return per_sequence, good.count(), rows.count()


@pytest.mark.slow
def test_the_documented_exploration_counts_like_the_manifest(training_shards, ray_cluster):
    from collections import Counter

    folder = training_shards / "3dpw" / "test"
    per_sequence, good, total = explore(str(folder))
    annotations = [
        json.loads(sample["json"])
        for _, sample in iter_samples(Storage(str(folder)), "", read_manifest(Storage(str(folder)), ""))
    ]
    assert total == len(annotations)
    assert dict(zip(per_sequence["sequence"], per_sequence["count()"], strict=True)) == Counter(
        a["extra"]["sequence"] for a in annotations
    )
    assert good == sum(a["fit_quality"]["keypoints_in_silhouette"] >= 0.9 for a in annotations)
    # every dataset folder under the root is read: the counts add up to all the manifests' samples
    _, _, everything = explore(str(training_shards))
    assert everything == sum(
        read_manifest(Storage(str(training_shards / d)), "")["totals"]["samples"]
        for d in ("3dpw/test", "coco-eft/train")
    )
