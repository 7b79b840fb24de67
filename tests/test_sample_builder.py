"""The sample builder: loose crop geometry, camera fitting, fit quality, encoding and images.

Records are made straight from synthetic pictures (``preprocessing.synth.crop_samples``), whose
ground truth is exact: the part labels the builder renders into the crop must equal the
generator's own label map warped into the crop, and keypoints must land where the affine says.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import tarfile

import cv2
import numpy as np
import pytest

from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.record import (
    CropCamera,
    ImageRef,
    PerspectiveCamera,
    RecordRejected,
    Rejected,
    SampleRecord,
    validate_record,
)
from preprocessing.render import affine_for_cv2, apply_affine, crop_affine, invert_affine, render_part_labels
from preprocessing.render.cameras import weak_perspective_translation
from preprocessing.samples import CropConfig, QualityConfig
from preprocessing.samples.build import SampleBuilder
from preprocessing.samples.camera_fit import CROP_INTRINSICS, fit_translation
from preprocessing.samples.encode import member_key, read_tar_members, sample_members, tar_bytes
from preprocessing.samples.images import ImageLoader, reduction_for
from preprocessing.samples.quality import FitQuality, check_fit, measure_fit
from preprocessing.synth.common import SynthOptions
from preprocessing.synth.crop_samples import crop_samples


@pytest.fixture(scope="module")
def models(procedural_dir):
    return BodyModels(procedural_dir)


@pytest.fixture(scope="module")
def pictures(models, tmp_path_factory):
    """Six synthetic single-person pictures on disk with their exact ground truth."""
    folder = tmp_path_factory.mktemp("pictures")
    options = SynthOptions(image_size=256, occluder_probability=0.0)
    samples = list(crop_samples(models, seed=3, layout="builder-test", num=6, options=options))
    for sample in samples:
        cv2.imwrite(str(folder / f"{sample.index}.jpg"), cv2.cvtColor(sample.scene.image, cv2.COLOR_RGB2BGR))
    return folder, samples


def record_of(folder, sample, camera="crop") -> SampleRecord:
    keypoints = np.concatenate([sample.joints[:, :2], (sample.visibility > 0)[:, None].astype(float)], axis=1)
    cam = CropCamera(sample.cam, sample.center, sample.box_size) if camera == "crop" else None
    return SampleRecord(
        dataset="synthetic",
        split="train",
        sample_id=f"pic.{sample.index}",
        image=ImageRef(str(folder / f"{sample.index}.jpg")),
        center=sample.center,
        box_size=sample.box_size,
        keypoints_2d=keypoints,
        pose=sample.pose.reshape(72),
        betas=sample.betas,
        camera=cam,
        image_size=sample.scene.image.shape[:2],
    )


def decode(members):
    files = dict(members)
    (key,) = {member_key(name) for name in files}
    image = cv2.imdecode(np.frombuffer(files[f"{key}.jpg"], np.uint8), cv2.IMREAD_COLOR)
    labels = cv2.imdecode(np.frombuffer(files[f"{key}.labels.png"], np.uint8), cv2.IMREAD_UNCHANGED)
    return key, image, labels, json.loads(files[f"{key}.json"])


def test_loose_crop_holds_every_training_window():
    """Corners of the box scaled by up to max_scale, rotated by up to max_rotation and shifted stay inside the crop."""
    config = CropConfig()
    assert config.resolution % 8 == 0 and config.resolution >= config.network_resolution * config.loose_factor
    half_loose = config.loose_factor / 2.0  # in box sides
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) / 2.0
    rng = np.random.default_rng(0)
    worst = 0.0
    for angle in np.linspace(-config.max_rotation_deg, config.max_rotation_deg, 49):
        a = math.radians(angle)
        rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        shift = rng.uniform(-config.max_translation, config.max_translation, 2)
        window = corners @ rotation.T * config.max_scale + shift
        worst = max(worst, np.abs(window).max())
    assert worst <= half_loose + 1e-9
    # without rotation the factor is just scale plus shift
    assert CropConfig(max_rotation_deg=0, max_translation=0).loose_factor == pytest.approx(1.25)


def test_fit_translation_recovers_a_known_camera():
    rng = np.random.default_rng(1)
    joints = rng.normal(0, 0.3, (49, 3))
    truth = np.array([0.1, -0.2, 40.0])
    projected = (joints + truth) @ CROP_INTRINSICS.T
    keypoints = projected[:, :2] / projected[:, 2:]
    weights = np.ones(49)
    weights[:10] = 0
    keypoints[:10] += 50  # unlabelled points must not matter
    np.testing.assert_allclose(fit_translation(joints, keypoints, weights, CROP_INTRINSICS), truth, rtol=1e-6)
    with pytest.raises(RecordRejected, match="poor_fit"):
        fit_translation(joints, keypoints, np.zeros(49), CROP_INTRINSICS)


def test_fit_quality_by_hand():
    labels = np.zeros((10, 10), np.uint8)
    labels[:, :5] = 3
    keypoints = np.array([[1.5, 1.5, 1], [7.5, 1.5, 1], [2.5, 8.5, 1], [20.0, 2.0, 1], [1.0, 1.0, 0]])
    projected = keypoints[:, :2] + np.array([[3.0, 4.0], [0, 0], [0, 0], [0, 0], [100, 100]])
    quality = measure_fit(projected, keypoints, labels, pixels_per_network_pixel=0.5)
    assert quality.reprojection_error == pytest.approx((5.0 / 4) / 0.5)  # labelled points only, in network pixels
    assert quality.keypoints_in_silhouette == pytest.approx(2 / 3)  # the point outside the map does not count
    check_fit(quality, QualityConfig(min_keypoints_in_silhouette=0.6, max_reprojection_error=3))
    with pytest.raises(RecordRejected, match="max_reprojection_error"):
        check_fit(quality, QualityConfig(max_reprojection_error=2))
    with pytest.raises(RecordRejected, match="min_keypoints_in_silhouette"):
        check_fit(quality, QualityConfig(min_keypoints_in_silhouette=0.7))
    check_fit(FitQuality(1.0, float("nan")), QualityConfig(0.9, 3.0))  # no keypoint in the crop: not filtered
    check_fit(FitQuality(float("nan"), float("nan")), QualityConfig(0.9, 0.0))  # the reprojection gate is off


def test_a_nan_reprojection_error_is_a_poor_fit():
    """A fit whose joints do not project (NaN error) must not pass the gate as a NaN comparison would let it."""
    with pytest.raises(RecordRejected, match=r"poor_fit: the reprojection error is NaN.*max_reprojection_error"):
        check_fit(FitQuality(float("nan"), 0.9), QualityConfig())
    projected = np.full((49, 2), np.nan)  # what a camera at the body's depth gives
    keypoints = np.concatenate([np.full((49, 2), 50.0), np.ones((49, 1))], axis=1)
    quality = measure_fit(projected, keypoints, np.ones((100, 100), np.uint8), pixels_per_network_pixel=1.0)
    with pytest.raises(RecordRejected, match="poor_fit"):
        check_fit(quality, QualityConfig())


def test_labels_and_keypoints_match_the_ground_truth(models, pictures):
    folder, samples = pictures
    config = CropConfig()
    builder = SampleBuilder(models, config, QualityConfig())
    results = builder.build([record_of(folder, s) for s in samples])
    size, stride = config.resolution, config.label_stride
    assert stride == 4 and config.label_resolution == size // 4  # the loss's 56 px for a 224-px input
    for sample, result in zip(samples, results, strict=True):
        assert not isinstance(result, Rejected), result
        key, image, labels, annotation = decode(result.members)
        assert key == f"synthetic_train_pic-{sample.index}" and "." not in key
        assert image.shape == (size, size, 3) and labels.shape == (size // 4, size // 4) and labels.dtype == np.uint8
        to_crop = np.asarray(annotation["crop"]["affine"])
        np.testing.assert_allclose(
            to_crop, crop_affine(sample.center, sample.box_size * config.loose_factor, size), atol=1e-6
        )
        # the generator's own body (image-space vertices), mapped into the crop and rendered independently
        screen = sample.vertices.copy()
        screen[:, :2] = apply_affine(sample.vertices[:, :2], to_crop)
        # stored: the crop pixel at the centre of each 4 x 4 block (rounding down-right)
        expected = render_part_labels(screen, models.faces(), models.face_parts(), size, size)[2::4, 2::4]
        body = (labels > 0) | (expected > 0)
        assert body.sum() > 100
        assert (labels == expected)[body].mean() > 0.999
        # and the generator's label map, warped into the crop, agrees up to nearest-neighbour resampling at borders
        # (0.9 at the crop's resolution; at a quarter of it the border pixels are 4 times the share)
        warped = cv2.warpAffine(sample.scene.labels, affine_for_cv2(to_crop), (size, size), flags=cv2.INTER_NEAREST)
        assert (warped[2::4, 2::4] == labels)[body].mean() > 0.85
        keypoints = np.asarray(annotation["keypoints_2d"])
        np.testing.assert_allclose(keypoints[:, :2], apply_affine(sample.joints[:, :2], to_crop), atol=1e-4)
        quality = annotation["fit_quality"]
        assert quality["reprojection_error"] < 1e-3 and quality["keypoints_in_silhouette"] > 0.8
        assert annotation["has_smpl"] == 1 and annotation["has_segm"] == 1 and annotation["has_joints_3d"] == 0
        # the stored camera projects the fit's joints onto the stored keypoints
        intrinsics, translation = (
            np.asarray(annotation["camera"]["intrinsics"]),
            np.asarray(annotation["camera"]["translation"]),
        )
        assert intrinsics.shape == (3, 3) and np.isfinite(translation).all()
        back = apply_affine(keypoints[:, :2], invert_affine(to_crop))
        np.testing.assert_allclose(back, sample.joints[:, :2], atol=1e-3)


def test_fitted_camera_gives_the_same_labels(models, pictures):
    """Without a camera the builder fits PARE's crop camera to the keypoints; on exact data that is the true one."""
    folder, samples = pictures
    builder = SampleBuilder(models, CropConfig(), QualityConfig())
    given = builder.build([record_of(folder, s) for s in samples[:3]])
    fitted = builder.build([record_of(folder, s, camera=None) for s in samples[:3]])
    for a, b in zip(given, fitted, strict=True):
        _, _, labels_a, ann_a = decode(a.members)
        _, _, labels_b, ann_b = decode(b.members)
        assert (labels_a == labels_b).mean() > 0.999
        np.testing.assert_allclose(ann_a["camera"]["translation"], ann_b["camera"]["translation"], rtol=1e-4, atol=1e-4)


def test_perspective_camera_with_frame_rotation(models, pictures):
    """A fit made in another frame: the builder adds (R - I) j0 to the translation, j0 the shaped body's root joint."""
    folder, samples = pictures
    sample = samples[0]
    config = CropConfig()
    record = record_of(folder, sample)
    builder = SampleBuilder(models, config, QualityConfig(0.0, 0.0))
    reference = json.loads(dict(builder.build([record])[0].members)[f"{record.key}.json"])
    to_crop = crop_affine(sample.center, sample.box_size * config.loose_factor, config.resolution)
    image_intrinsics = np.linalg.inv(np.vstack([to_crop, [0, 0, 1]])) @ np.asarray(reference["camera"]["intrinsics"])
    rotation = cv2.Rodrigues(np.array([0.0, 0.4, 0.1]))[0]
    translation = weak_perspective_translation(sample.cam)
    rotated = dataclasses.replace(record, camera=PerspectiveCamera(image_intrinsics, translation, rotation))
    annotation = json.loads(dict(builder.build([rotated])[0].members)[f"{record.key}.json"])
    rest = pose_bodies(models.get(), np.zeros((1, 24, 3)), sample.betas[None])
    j0 = rest.smpl_joints[0, 0]
    np.testing.assert_allclose(
        annotation["camera"]["translation"], translation + (rotation - np.eye(3)) @ j0, atol=1e-5
    )
    np.testing.assert_allclose(annotation["camera"]["intrinsics"], reference["camera"]["intrinsics"], atol=1e-4)
    without = dataclasses.replace(record, camera=PerspectiveCamera(image_intrinsics, translation))
    plain = json.loads(dict(builder.build([without])[0].members)[f"{record.key}.json"])
    np.testing.assert_allclose(plain["camera"]["translation"], translation, atol=1e-6)
    assert plain["fit_quality"]["reprojection_error"] < 1e-3  # same camera as the crop camera, so exact


def test_records_without_fit_get_empty_labels(models, pictures):
    folder, samples = pictures
    record = dataclasses.replace(record_of(folder, samples[0]), pose=None, betas=None, camera=None)
    result = SampleBuilder(models, CropConfig(), QualityConfig()).build([record])[0]
    _, _, labels, annotation = decode(result.members)
    assert labels.max() == 0 and annotation["has_smpl"] == 0 and annotation["has_segm"] == 0
    assert annotation["camera"] is None and annotation["fit_quality"]["reprojection_error"] is None


def test_bad_images_and_poor_fits_are_rejected(models, pictures, tmp_path):
    folder, samples = pictures
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((folder / "0.jpg").read_bytes()[:200])
    good = record_of(folder, samples[0])
    shifted = good.keypoints_2d.copy()
    shifted[:, :2] += good.box_size * 0.4  # the fit no longer matches the keypoints
    records = [
        dataclasses.replace(good, sample_id="missing", image=ImageRef(str(tmp_path / "nope.jpg"))),
        dataclasses.replace(good, sample_id="corrupt", image=ImageRef(str(corrupt))),
        dataclasses.replace(good, sample_id="poor", keypoints_2d=shifted),
        good,
    ]
    results = SampleBuilder(models, CropConfig(), QualityConfig()).build(records)
    reasons = [r.reason if isinstance(r, Rejected) else "ok" for r in results]
    assert reasons == ["missing_image", "corrupt_image", "poor_fit", "ok"]
    assert "nope.jpg" in results[0].detail


def test_a_jpeg_cut_short_is_rejected_although_it_decodes(models, pictures, tmp_path):
    """libjpeg fills the rows past the cut with grey and only warns: the crop would be silently wrong."""
    folder, samples = pictures
    data = (folder / "0.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert cv2.imread(str(cut)) is not None  # what made it slip through
    record = dataclasses.replace(record_of(folder, samples[0]), image=ImageRef(str(cut)))
    result = SampleBuilder(models, CropConfig(), QualityConfig()).build([record])[0]
    assert isinstance(result, Rejected) and result.reason == "corrupt_image" and "cut short" in result.detail


def test_ground_truth_that_comes_out_non_finite_is_rejected(models, pictures):
    """A crop camera whose scale is positive and finite but tiny puts the body at an infinite depth: its translation
    is infinite. The fit-quality filter would catch this one; with it off (preprocess.quality.* = 0) the sample used to
    be written with Infinity in its camera."""
    folder, samples = pictures
    good = record_of(folder, samples[0])
    camera = CropCamera(np.array([1e-320, 0.0, 0.0]), good.camera.center, good.camera.box_size)  # subnormal
    validate_record(dataclasses.replace(good, camera=camera))  # every field the reader gave is finite
    with np.errstate(over="ignore", invalid="ignore"):
        unfiltered = QualityConfig(min_keypoints_in_silhouette=0.0, max_reprojection_error=0.0)
        result = SampleBuilder(models, CropConfig(), unfiltered).build([dataclasses.replace(good, camera=camera)])
    assert isinstance(result[0], Rejected) and result[0].reason == "nan_parameters", result[0]
    assert "camera.translation" in result[0].detail


def test_tar_bytes_are_deterministic_and_readable_by_tarfile():
    members = sample_members("a_b", b"jpg-bytes", b"png-bytes", b'{"x": 1}')
    first, second = tar_bytes(members), tar_bytes(members)
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.getnames() == ["a_b.jpg", "a_b.labels.png", "a_b.json"]
        assert all(info.mtime == 0 and info.uid == 0 for info in tar.getmembers())
    assert list(read_tar_members(first)) == members


def test_reduced_decoding_matches_full_decoding(pictures):
    """Decoding at 1/2 size and warping gives nearly the crop of the full-size decode."""
    folder, samples = pictures
    assert reduction_for(1000, 424) == 2 and reduction_for(400, 424) == 1 and reduction_for(10_000, 424) == 8
    loader = ImageLoader()
    ref = ImageRef(str(folder / "0.jpg"))
    full, r1 = loader.load(ref, 1)
    half, r2 = loader.load(ref, 2)
    assert (r1, r2) == (1, 2) and half.shape[0] == math.ceil(full.shape[0] / 2)
    small = cv2.resize(full, (half.shape[1], half.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - half.astype(int)).mean() < 4


def test_video_frames_are_read_in_order_and_by_seeking(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for value in range(0, 200, 5):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.release()
    loader = ImageLoader()
    for frame in (0, 5, 10, 3, 39):
        image, _ = loader.load(ImageRef(str(path), frame))
        assert abs(float(image.mean()) - 5 * frame) < 3, frame
    with pytest.raises(RecordRejected, match="corrupt_image"):
        loader.load(ImageRef(str(path), 400))
