"""The ``h36m`` reader (raw Human3.6M) on generated files of the documented structure and real values.

Human3.6M's videos, CDF poses and MoSh fits are licensed, so the tests write them:

- CDF files with ``cdflib`` holding the real 3D joints of the mmpose sample frames (their 2D
  joints, projected by mmpose through the real cameras with lens distortion, must come back);
- a sequence rendered from the procedural body model into an mp4 (OpenCV), its ``D3_Positions_mono``
  and a MoSh pickle whose root is stored the MoSh way, so that the sample builder's labels,
  rendered from the record's fit and camera, must cover the body in the decoded video frame.
"""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from cdflib.cdfwrite import CDF
from scipy.spatial.transform import Rotation

from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.keypoints import H36M17_TO_SPIN_GT, NUM_OPENPOSE, gt_indices
from preprocessing.readers import SourceError, build_reader
from preprocessing.readers.files import SourceFiles
from preprocessing.readers.h36m_cameras import CAMERA_IDS, load_cameras
from preprocessing.record import Rejected
from preprocessing.render import render_part_labels
from preprocessing.render.cameras import perspective_to_screen
from preprocessing.samples import CropConfig, QualityConfig
from preprocessing.samples.build import SampleBuilder
from preprocessing.synth.framing import camera_root
from preprocessing.synth.poses import matrix_to_axis_angle, sample_betas, sample_body_poses
from tests.conftest import require_real_fixture
from tests.reader_helpers import read_source

SUBSET = [11, 6, 7, 8, 1, 2, 3, 12, 24, 14, 15, 17, 18, 19, 25, 26, 27]  # data-formats.md (SPIN's), as a literal
MMPOSE_SUBSET = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
"""mmpose's pick of the 32 joints (root, right leg, left leg, spine, thorax, ...), the order of its body3d npz."""
DUPLICATES = {11: 0, 24: 13}
"""Human3.6M's 32 joints repeat positions: SPIN's pelvis (11) and neck (24) coincide with mmpose's 0 and 13."""
GT = NUM_OPENPOSE + gt_indices(H36M17_TO_SPIN_GT)
FRONTAL = "60457274"


def write_cdf(path, values: np.ndarray) -> None:
    """A Human3.6M pose file: one record of variable ``Pose`` with dimensions (F, D)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cdf = CDF(str(path), cdf_spec={"Majority": "Row_major"}, delete=True)
    spec = {"Variable": "Pose", "Data_Type": CDF.CDF_DOUBLE, "Num_Elements": 1, "Rec_Vary": True}
    cdf.write_var({**spec, "Dim_Sizes": list(values.shape)}, var_data=values[None])
    cdf.close()


def to_32(joints17: np.ndarray, scale: float, subset=SUBSET) -> np.ndarray:
    """(F, 17, D) joints picked by ``subset`` in the 32-joint layout; the other slots hold decoys far away."""
    full = np.full((len(joints17), 32, joints17.shape[-1]), 12345.0)
    full[:, subset] = joints17 * scale
    if subset == MMPOSE_SUBSET:
        for slot, same in DUPLICATES.items():
            full[:, slot] = full[:, same]
    return full.reshape(len(joints17), -1)


def write_sequence(root, subject, action, camera, joints17, pixels17=None, video=None, mosh=None, subset=SUBSET):
    base = root / subject / "MyPoseFeatures"
    write_cdf(base / "D3_Positions_mono" / f"{action}.{camera}.cdf", to_32(joints17, 1000.0, subset))
    if pixels17 is not None:
        write_cdf(base / "D2_Positions" / f"{action}.{camera}.cdf", to_32(pixels17, 1.0, subset))
    if video is not None:
        (root / subject / "Videos").mkdir(parents=True, exist_ok=True)
        height, width = video.shape[1:3]
        path = str(root / subject / "Videos" / f"{action}.{camera}.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 50, (width, height))
        for frame in video:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
    if mosh is not None:
        folder = root / "mosh" / subject
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{action}_cam{CAMERA_IDS.index(camera)}_aligned.pkl", "wb") as f:
            pickle.dump(mosh, f, protocol=2)


def metadata_xml(cameras: dict) -> str:
    """``metadata.xml`` with ``w0`` built from ``cameras`` (per camera id: f, c, k, p); extrinsics zero."""
    w0 = np.zeros(264 + 9 * 4)
    for index, camera in enumerate(CAMERA_IDS):
        f, c, k, p = (np.asarray(cameras[camera][key], float).ravel() for key in ("f", "c", "k", "p"))
        w0[264 + 9 * index : 264 + 9 * (index + 1)] = np.concatenate([f, c, k, p])
    ids = "".join(f"<td>{camera}</td>" for camera in CAMERA_IDS)
    return f"<metadata><dbcameras><index2id>{ids}</index2id></dbcameras><w0>[{' '.join(map(repr, w0.tolist()))}]</w0></metadata>"


def read(root, split="train", **options):
    return read_source("h36m", root, split, **options)


def test_metadata_xml_and_pickle_give_the_same_intrinsics(tmp_path):
    pickle_path = require_real_fixture("mmpose/h36m/cameras.pkl")
    real = load_cameras(SourceFiles(str(pickle_path.parent)), pickle_path.name)
    assert len(real) == 44
    raw = pickle.loads(pickle_path.read_bytes())  # the fixture itself, with the format's plain tool
    (tmp_path / "metadata.xml").write_text(metadata_xml({camera: raw["S1", camera] for camera in CAMERA_IDS}))
    parsed = load_cameras(SourceFiles(str(tmp_path)), "metadata.xml")
    assert parsed.keys() == real.keys()
    for key, camera in real.items():
        other = parsed[key]
        for field in ("focal", "center", "radial", "tangential"):
            np.testing.assert_array_equal(getattr(other, field), getattr(camera, field))
        assert (
            other.image_size == camera.image_size == ((1002, 1000) if key[1] in ("54138969", FRONTAL) else (1000, 1000))
        )
    np.testing.assert_array_equal(real["S9", FRONTAL].intrinsics(0.5)[:2, 2], raw["S9", FRONTAL]["c"].ravel() + 0.5)


@pytest.fixture(scope="module")
def real_frames(tmp_path_factory):
    """CDF files holding the real joints of mmpose's four sample frames at their frame numbers."""
    body3d = np.load(require_real_fixture("mmpose/h36m/test_h36m_body3d.npz"))
    root = tmp_path_factory.mktemp("h36m_real_values")
    for name, joints in zip(body3d["imgname"], body3d["S"][:, :, :3], strict=True):
        stem = name.split("/")[1]  # S1_Directions_1.54138969
        subject, rest = stem.split("_", 1)
        action, camera = rest.rsplit(".", 1)
        frame = int(name.rsplit("_", 1)[1][:-4]) - 1
        sequence = np.repeat(joints[None], frame + 1, axis=0)
        write_sequence(root, subject, action.replace("_", " "), camera, sequence, subset=MMPOSE_SUBSET)
    return root, body3d


def test_real_joints_project_through_the_real_cameras(real_frames):
    root, body3d = real_frames
    cameras = str(require_real_fixture("mmpose/h36m/cameras.pkl"))
    good, rejected = read(root, cameras=cameras)
    assert not rejected
    by_id = {r.sample_id: r for r in good}
    spin = np.load(require_real_fixture("mmpose/h36m/test_h36m.npz"))
    for k, name in enumerate(body3d["imgname"]):
        record = by_id[name.rsplit("/", 1)[1][:-4]]
        # SPIN's own 24-joint file of the same frames: the reader's 17 -> SPIN mapping puts every joint where
        # SPIN put it, in 2D (projected with the real camera's lens distortion) and in 3D (metres, camera frame).
        labelled = spin["part"][k, :, 2] > 0
        assert labelled.sum() == 17 and (record.joints_3d[:, 3] > 0).sum() == 17
        np.testing.assert_array_equal(record.keypoints_2d[NUM_OPENPOSE:, 2] > 0, labelled)
        np.testing.assert_allclose(
            record.keypoints_2d[NUM_OPENPOSE:][labelled, :2], spin["part"][k, labelled, :2] + 0.5, atol=0.05
        )
        np.testing.assert_allclose(record.joints_3d[labelled, :3], spin["S"][k, labelled, :3], atol=2e-3)
        # mmpose projected its 3D joints through the same cameras: with the distortion, its 2D joints exactly.
        np.testing.assert_allclose(record.keypoints_2d[GT[[0, 4, 5]], :2], body3d["part"][k, :3, :2] + 0.5, atol=1e-6)
        assert record.image.path.endswith(f"/Videos/{record.extra['action']}.{record.extra['camera']}.mp4")
        assert record.image.frame == record.extra["frame"] - 1 and record.image.frame % 5 == 0
        assert record.image_size == (1002, 1000) if record.extra["camera"] == "54138969" else (1000, 1000)
        assert not record.has_smpl
    # Every 5th frame of each sequence, in order: frame numbers 1, 6, 11, ...
    s1 = [r.sample_id for r in good if r.extra["subject"] == "S1"]
    assert s1 == ["S1_Directions_1.54138969_000001"]
    s5 = [r.image.frame for r in good if r.extra["subject"] == "S5"]
    assert s5 == list(range(0, 2061, 5))


@pytest.fixture(scope="module")
def rendered(procedural_dir, tmp_path_factory):
    """One 11-frame sequence rendered into an mp4 with its 3D joints and a MoSh fit, plus test-split files."""
    models = BodyModels(procedural_dir)
    model = models.get("neutral")
    rng = np.random.default_rng(7)
    num, size, focal = 11, 192, 260.0
    roots = np.stack([matrix_to_axis_angle(camera_root(rng)) for _ in range(num)])
    pose = np.concatenate([roots[:, None], sample_body_poses(rng, num)], axis=1)  # (F, 24, 3), root in camera frame
    betas = np.repeat(sample_betas(rng, 1), num, axis=0)
    transl = np.stack([rng.uniform(-0.3, 0.3, num), rng.uniform(-0.2, 0.2, num), rng.uniform(3.4, 4.0, num)], axis=1)
    bodies = pose_bodies(model, pose, betas, transl)
    intrinsics = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1.0]])
    faces, face_parts = models.faces(), models.face_parts()
    video = np.full((num, size, size, 3), 30, np.uint8)
    for f in range(num):
        screen = perspective_to_screen(bodies.vertices[f], intrinsics, (np.eye(3), np.zeros(3)))
        video[f][render_part_labels(screen, faces, face_parts, size, size) > 0] = 230
    joints17 = bodies.joints[:, GT]
    mosh_roots = (Rotation.from_rotvec(roots) * Rotation.from_rotvec([np.pi, 0, 0])).as_rotvec()  # y-up MoSh root
    new_poses = np.concatenate([mosh_roots[:, None], pose[:, 1:]], axis=1).reshape(num, 72)[::5]
    root = tmp_path_factory.mktemp("h36m_rendered")
    mosh = {"new_poses": new_poses, "betas": betas[0]}
    write_sequence(root, "S1", "Walking 1", "54138969", joints17, video=video, mosh=mosh)
    write_sequence(root, "S1", "_ALL", "54138969", joints17)  # skipped, as in SPIN
    for camera in (FRONTAL, "55011271"):
        write_sequence(root, "S9", "Eating", camera, joints17[:6])
    camera = {"f": [[focal], [focal]], "c": [[size / 2], [size / 2]], "k": np.zeros((3, 1)), "p": np.zeros((2, 1))}
    cameras = {(s, c): {**camera, "w": size, "h": size} for s in ("S1", "S5", "S9", "S11") for c in CAMERA_IDS}
    with open(root / "cameras.pkl", "wb") as f:
        pickle.dump(cameras, f)
    (root / "metadata.xml").write_text(metadata_xml(dict.fromkeys(CAMERA_IDS, camera)))
    return root, models, {"pose": pose, "betas": betas, "joints": bodies.joints, "transl": transl}


def test_rendered_sequence_records_carry_the_truth(rendered):
    root, _, truth = rendered
    good, rejected = read(root, cameras="cameras.pkl", mosh="mosh", pixel_offset=0.0)
    assert not rejected
    assert [r.sample_id for r in good] == [f"S1_Walking_1.54138969_{n:06d}" for n in (1, 6, 11)]
    for record, f in zip(good, (0, 5, 10), strict=True):
        assert record.image.frame == f and record.fit_source == "mosh" and record.gender == "neutral"
        # MoSh's root, turned by pi about x, is the camera-frame root; the body pose is untouched.
        turned = Rotation.from_rotvec(record.pose[:3]) * Rotation.from_rotvec(truth["pose"][f, 0]).inv()
        assert turned.magnitude() < 1e-9
        np.testing.assert_allclose(record.pose[3:], truth["pose"][f, 1:].ravel(), atol=1e-12)
        np.testing.assert_allclose(record.betas, truth["betas"][f])
        np.testing.assert_allclose(record.joints_3d[GT - NUM_OPENPOSE, :3], truth["joints"][f, GT], atol=1e-9)
        # No D2 file: the 2D joints are the pinhole projections of the 3D joints.
        points = truth["joints"][f, GT]
        np.testing.assert_allclose(record.keypoints_2d[GT, :2], 260.0 * points[:, :2] / points[:, 2:] + 96, atol=1e-6)
    # The same calibration from metadata.xml (the default) gives the same records; every=1 adds fit-less frames.
    again, _ = read(root, mosh="mosh", pixel_offset=0.0, every=1)
    assert len(again) == 11 and [r.has_smpl for r in again] == [f % 5 == 0 for f in range(11)]
    np.testing.assert_allclose(again[5].keypoints_2d, good[1].keypoints_2d)
    # Protocol 2 reads only the frontal camera of S9 and S11; protocol 1 all of them.
    test2, _ = read(root, "test", cameras="cameras.pkl")
    assert {r.extra["camera"] for r in test2} == {FRONTAL} and len(test2) == 2
    test1, _ = read(root, "test", cameras="cameras.pkl", protocol=1)
    assert {r.extra["camera"] for r in test1} == {FRONTAL, "55011271"} and len(test1) == 4


def test_builder_labels_cover_the_body_in_the_decoded_video_frame(rendered):
    root, models, _ = rendered
    good, _ = read(root, cameras="cameras.pkl", mosh="mosh", pixel_offset=0.0)
    builder = SampleBuilder(models, CropConfig(), QualityConfig())
    built = builder.build(good)
    assert len(built) == 3 and not any(isinstance(b, Rejected) for b in built)
    ious = []
    for sample in built:
        members = dict(sample.members)
        crop = cv2.imdecode(np.frombuffer(members[f"{sample.key}.jpg"], np.uint8), cv2.IMREAD_GRAYSCALE)
        labels = cv2.imdecode(np.frombuffer(members[f"{sample.key}.labels.png"], np.uint8), cv2.IMREAD_UNCHANGED)
        stride = crop.shape[0] // labels.shape[0]  # labels are stored at a fraction of the crop's side
        body, fit = crop[stride // 2 :: stride, stride // 2 :: stride] > 130, labels > 0
        ious.append((body & fit).sum() / (body | fit).sum())
        assert sample.quality.keypoints_in_silhouette > 0.9 and sample.quality.reprojection_error < 1.0
    # A wrong frame, a wrong root turn or a wrong translation would leave the labels off the body.
    assert min(ious) > 0.85, ious


def test_bad_frames_are_rejected_and_broken_files_named(rendered, tmp_path):
    source, _, truth = rendered
    joints17 = truth["joints"][:, GT].copy()
    joints17[5, 3, 1] = np.nan
    # A D2_Positions file wins over projecting the 3D joints (here it is the projection moved by (3, -2) px).
    pixels17 = 260.0 * joints17[..., :2] / joints17[..., 2:] + 96 + [3.0, -2.0]
    write_sequence(tmp_path, "S1", "Posing", "54138969", joints17, pixels17=pixels17)
    write_sequence(tmp_path, "S1", "Posing", "55011271", joints17[:3])
    camera = pickle.loads((source / "cameras.pkl").read_bytes())[("S1", "54138969")]
    with open(tmp_path / "cameras.pkl", "wb") as f:
        pickle.dump({("S1", "54138969"): camera}, f)
    good, rejected = read(tmp_path, cameras="cameras.pkl")
    assert [r.sample_id for r in good] == ["S1_Posing.54138969_000001", "S1_Posing.54138969_000011"]
    assert [(r.sample_id, r.reason) for r in rejected] == [
        ("S1_Posing.54138969_000006", "nan_parameters"),
        ("S1_Posing.55011271_000001", "bad_annotation"),
    ]
    assert rejected[1].detail == "cameras.pkl has no camera (S1, 55011271)"
    np.testing.assert_allclose(good[1].keypoints_2d[GT, :2], pixels17[10] + 0.5)  # real data: +0.5
    d2 = tmp_path / "S1" / "MyPoseFeatures" / "D2_Positions" / "Posing.54138969.cdf"
    write_cdf(d2, to_32(pixels17[:4], 1.0))
    with pytest.raises(SourceError, match=r"Posing\.54138969\.cdf has 4 frames, .* has 11"):
        read(tmp_path, cameras="cameras.pkl")
    d2.unlink()
    # Whole-file problems stop the job before any work, naming the file and the fix.
    with pytest.raises(SourceError, match=r"MoSh folder not found: .*nomosh"):
        read(tmp_path, cameras="cameras.pkl", mosh="nomosh")
    (tmp_path / "mosh" / "S1").mkdir(parents=True)
    with open(tmp_path / "mosh" / "S1" / "Posing_cam0_aligned.pkl", "wb") as f:
        pickle.dump({"new_poses": np.zeros((3, 69)), "betas": np.zeros(10)}, f)
    with pytest.raises(SourceError, match=r"Posing_cam0_aligned\.pkl: new_poses \(3, 69\)"):
        read(tmp_path, cameras="cameras.pkl", mosh="mosh")
    (tmp_path / "metadata.xml").write_text("<metadata><w0>[1 2 3]</w0></metadata>")
    with pytest.raises(SourceError, match=r"metadata\.xml: <w0> has 3 values, expected 300"):
        read(tmp_path)
    (tmp_path / "S1" / "MyPoseFeatures" / "D3_Positions_mono" / "Posing.54138969.cdf").write_bytes(b"not a cdf")
    with pytest.raises(SourceError, match=r"cannot read the Pose variable of .*Posing\.54138969\.cdf"):
        read(tmp_path, cameras="cameras.pkl")
    with pytest.raises(SourceError, match=r"no D3_Positions_mono \.cdf files for subjects \['S9', 'S11'\]"):
        read(tmp_path, "test", cameras="cameras.pkl")
    with pytest.raises(SourceError, match="protocol must be 1 or 2"):
        build_reader("h36m", str(tmp_path), "test", {"protocol": 3})
