"""``h36m``: Human3.6M frames in the extracted layout, the cameras pickle and SPIN-style npz files.

Writes:

- frames ``S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg`` (dotted camera
  ids; frame numbers 1, 6, 11, ... as in SPIN's every-5th-frame subsampling);
- ``cameras.pkl``: dict keyed ``(subject, camera_id)`` (str, str) with ``R`` (3, 3), ``T``
  (3, 1), ``c`` (2, 1), ``f`` (2, 1), ``k`` (3, 1), ``p`` (2, 1) float64, ``w``, ``h`` (int),
  ``name`` ('camera1'..'camera4') and ``id``, for S1, S5, S6, S7, S8, S9, S11;
- ``h36m_train.npz`` (S1, S5, S6, S7, S8; all four cameras) and ``h36m_valid_protocol2.npz``
  (S9, S11; frontal camera 60457274): ``imgname`` (basenames, as in the real sample), ``center``
  (N, 2), ``scale`` (N,), ``part`` (N, 24, 3), ``S`` (N, 24, 4), ``pose`` (N, 72), ``shape``
  (N, 10), ``has_smpl`` (N,).

Conventions:

- The world frame is Human3.6M's: metres, z up. A camera's ``R`` is camera-to-world and ``T``
  is its centre in the world, as in the common pickle: ``x_cam = R.T @ (x_world - T)``. Pixels
  are ``f * x_cam[:2] / x_cam[2] + c`` in continuous image coordinates (pixel (i, j) spans
  [j, j + 1) x [i, i + 1)). Frames are rendered without lens distortion, so ``k`` and ``p`` are 0.
- ``pose`` is stored as SPIN stores Human3.6M: axis-angle with the root rotation in the CAMERA
  frame (x right, y down, z forward). An upright person therefore has a root near pi about x:
  the rotation SPIN applies to the MoSh fits, whose root is in a y-up frame.
- ``S`` holds SPIN's 24 ground-truth joints of the body model in the camera frame (metres), and
  ``part`` their projections; only the 17 joints that Human3.6M annotates are filled (validity
  1), the others are zero, as in the real files. Re-posing the body model with ``pose`` and
  ``shape`` gives ``S`` up to one translation (the npz has no translation key).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from pare_model.body_model.procedural.files import write_npz
from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.keypoints import NUM_OPENPOSE, h36m_gt_mask
from preprocessing.render.cameras import perspective_to_screen
from preprocessing.synth.appearance import random_vertex_colors
from preprocessing.synth.common import LayoutResult, PreviewTile, SynthOptions, chunks, progress, sample_rng, write_jpeg
from preprocessing.synth.framing import box_center_scale, random_lean, yaw_rotation
from preprocessing.synth.poses import axis_angle_to_matrix, matrix_to_axis_angle, sample_betas, sample_body_poses
from preprocessing.synth.scene import (
    PersonView,
    depth_tolerance,
    keypoint_visibility,
    render_random_scene,
)

NAME = "h36m"
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
SUBJECT_ORDER = ("S1", "S9", "S5", "S11", "S6", "S7", "S8")
"""Subjects in the order samples cycle through them, so a few samples already fill both files."""
CAMERAS = {"54138969": (1000, 1002), "55011271": (1000, 1000), "58860488": (1000, 1000), "60457274": (1000, 1002)}
"""Camera ids and their (width, height) in pixels, in Human3.6M's order (camera1..camera4)."""
PROTOCOL2_CAMERA = "60457274"
ACTIONS = ("Directions_1", "Discussion", "Eating_2", "Greeting", "Phoning_1", "Posing", "SittingDown", "WalkDog_1")
FOCAL, CENTER = (1145.0, 1144.0), (512.0, 510.0)
Z_UP = axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))
"""Rotation from the body's rest frame (y up) to Human3.6M's world frame (z up)."""
FRAME_STEP = 5
TRAIN_FILE, VALID_FILE, CAMERAS_FILE = "h36m_train.npz", "h36m_valid_protocol2.npz", "cameras.pkl"


def camera_rig(seed: int, subject: str, scale: float) -> dict[str, dict]:
    """The four cameras of a subject's capture: around the room's centre, about 5 m away, 1.5 m up."""
    rng = sample_rng(seed, f"{NAME}-cameras-{subject}", 0)
    rig = {}
    for k, (camera_id, (width, height)) in enumerate(CAMERAS.items()):
        azimuth = np.pi / 4 + k * np.pi / 2 + rng.uniform(-0.2, 0.2)
        distance = rng.uniform(4.5, 5.5)
        eye = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), rng.uniform(1.4, 1.7)])
        target = np.array([0.0, 0.0, 0.9]) + rng.uniform(-0.2, 0.2, size=3)
        forward = (target - eye) / np.linalg.norm(target - eye)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rig[camera_id] = {
            "R": np.stack([right, down, forward], axis=1),  # camera-to-world: columns are the camera axes
            "T": eye.reshape(3, 1),
            "c": (np.array(CENTER) * scale + rng.uniform(-3, 3, size=2) * scale).reshape(2, 1),
            "f": (np.array(FOCAL) * scale).reshape(2, 1),
            "k": np.zeros((3, 1)),
            "p": np.zeros((2, 1)),
            "w": int(round(width * scale)),
            "h": int(round(height * scale)),
            "name": f"camera{k + 1}",
            "id": camera_id,
        }
    return rig


def camera_matrix(camera: dict) -> np.ndarray:
    """(3, 3) intrinsics ``K`` of a cameras-pickle entry."""
    (fx, fy), (cx, cy) = camera["f"].ravel(), camera["c"].ravel()
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def assign(index: int) -> tuple[str, str, str]:
    """(subject, action, camera id) of sample ``index``."""
    subject = SUBJECT_ORDER[index % len(SUBJECT_ORDER)]
    turn = index // len(SUBJECT_ORDER)
    camera = PROTOCOL2_CAMERA if subject in TEST_SUBJECTS else list(CAMERAS)[turn % len(CAMERAS)]
    return subject, ACTIONS[turn % len(ACTIONS)], camera


def _empty_annotations() -> dict[str, list]:
    return {key: [] for key in ("imgname", "center", "scale", "part", "S", "pose", "shape", "has_smpl")}


def _stack(annotations: dict[str, list]) -> dict[str, np.ndarray]:
    """The npz arrays of one split (empty splits keep their trailing shapes)."""
    shapes = {"center": (2,), "scale": (), "part": (24, 3), "S": (24, 4), "pose": (72,), "shape": (10,), "has_smpl": ()}
    arrays = {"imgname": np.array(annotations["imgname"], dtype=str)}
    for key, shape in shapes.items():
        arrays[key] = np.array(annotations[key], dtype=np.float64).reshape((-1,) + shape)
    return arrays


def _world_placement(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Root rotation (3, 3) and pelvis position (3,) of an upright person in the capture area."""
    root = Z_UP @ random_lean(rng, 0.1) @ yaw_rotation(rng.uniform(-np.pi, np.pi))
    pelvis = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8), 0.95])
    return root, pelvis


def _annotation_row(name: str, screen: np.ndarray, joints: np.ndarray, joints_screen: np.ndarray, pose, betas) -> dict:
    """One frame's npz entries; only Human3.6M's 17 joints are filled in ``part`` and ``S``."""
    gt_mask = h36m_gt_mask()
    ones = np.ones((24, 1))
    part, S = np.zeros((24, 3)), np.zeros((24, 4))
    part[gt_mask] = np.concatenate([joints_screen[NUM_OPENPOSE:, :2], ones], axis=1)[gt_mask]
    S[gt_mask] = np.concatenate([joints[NUM_OPENPOSE:], ones], axis=1)[gt_mask]
    center, scale = box_center_scale(screen[:, :2])
    values = (name, center, scale, part, S, np.reshape(pose, 72), betas, 1.0)
    return dict(zip(("imgname", "center", "scale", "part", "S", "pose", "shape", "has_smpl"), values, strict=True))


def _render_frame(rng, camera: dict, vertices: np.ndarray, models: BodyModels, options: SynthOptions):
    """The picture of camera-frame ``vertices`` through ``camera`` and the screen vertices."""
    screen = perspective_to_screen(vertices, camera_matrix(camera), np.eye(4))
    person = PersonView(screen, vertices, random_vertex_colors(rng, models.part_map(), models.template()))
    scene = render_random_scene(
        rng, [person], models.faces(), models.face_parts(), camera["h"], camera["w"], options.occluder_probability
    )
    return scene, screen


def _frame_name(subject: str, action: str, camera_id: str, frame: int) -> tuple[str, str]:
    """(folder, file name) of a frame, e.g. ('S1_Directions_1.54138969', 'S1_Directions_1.54138969_000001.jpg')."""
    folder = f"{subject}_{action}.{camera_id}"
    return folder, f"{folder}_{frame:06d}.jpg"


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """Write ``num`` frames with their cameras and SPIN-style annotations (see the module docstring)."""
    rigs = {subject: camera_rig(seed, subject, options.h36m_scale) for subject in TRAIN_SUBJECTS + TEST_SUBJECTS}
    gt_mask = h36m_gt_mask()
    splits = {TRAIN_FILE: _empty_annotations(), VALID_FILE: _empty_annotations()}
    frame_count: dict[tuple[str, str, str], int] = {}
    result = LayoutResult(layout=NAME, num_samples=num, num_images=num)
    bar = progress(range(num), num, NAME)
    for block in chunks(num, options.batch_size):
        rngs = [sample_rng(seed, NAME, i) for i in block]
        takes = [assign(i) for i in block]
        cameras = [rigs[subject][camera_id] for subject, _, camera_id in takes]
        body_pose = np.stack([sample_body_poses(rng, 1, variation=options.pose_variation)[0] for rng in rngs])
        betas = np.stack([sample_betas(rng, 1)[0] for rng in rngs])
        placements = [_world_placement(rng) for rng in rngs]
        # The root is stored in the camera frame, as SPIN stores Human3.6M.
        roots = [matrix_to_axis_angle(c["R"].T @ root) for c, (root, _) in zip(cameras, placements, strict=True)]
        pose = np.concatenate([np.stack(roots)[:, None], body_pose], axis=1)
        bodies = pose_bodies(models.get("neutral"), pose, betas, batch_size=options.batch_size)
        for k, take in enumerate(takes):
            camera = cameras[k]
            pelvis_camera = camera["R"].T @ (placements[k][1] - camera["T"].ravel())
            shift = pelvis_camera - bodies.smpl_joints[k, 0]
            vertices, joints = bodies.vertices[k] + shift, bodies.joints[k] + shift
            scene, screen = _render_frame(rngs[k], camera, vertices, models, options)
            joints_screen = perspective_to_screen(joints, camera_matrix(camera), np.eye(4))
            frame_count[take] = frame_count.get(take, 0) + 1
            folder, name = _frame_name(*take, 1 + FRAME_STEP * (frame_count[take] - 1))
            write_jpeg(out / take[0] / folder / name, scene.image, options.jpeg_quality)
            row = _annotation_row(name, screen, joints, joints_screen, pose[k], betas[k])
            split = splits[VALID_FILE if take[0] in TEST_SUBJECTS else TRAIN_FILE]
            for key, value in row.items():
                split[key].append(value)
            gt_screen = joints_screen[NUM_OPENPOSE:][gt_mask]
            tolerance = depth_tolerance(joints[NUM_OPENPOSE:][gt_mask], vertices)
            result.keep_preview(
                lambda s=scene, p=gt_screen, t=tolerance, n=name: PreviewTile(
                    s.image, s.labels, p[:, :2], keypoint_visibility(p, t, s), n
                ),
                options.preview_count,
            )
            bar.update(1)
    bar.close()
    for file_name, columns in splits.items():
        write_npz(out / file_name, _stack(columns))
        result.annotation_files.append(out / file_name)
    cameras = {(s, cid): cam for s in TRAIN_SUBJECTS + TEST_SUBJECTS for cid, cam in rigs[s].items()}
    (out / CAMERAS_FILE).write_bytes(pickle.dumps(cameras, protocol=2))
    result.annotation_files.append(out / CAMERAS_FILE)
    return result
