"""A Human3.6M-like capture that every ``h36m*`` layout writes in its own files: cameras, people, frames.

Sample ``i`` is the same person, pose, camera and picture in every layout for one seed (the
generators are keyed by ``h36m``), so the layouts' files describe the same frames and their sample
ids agree (``S1_Directions_1.54138969_000001``).

Conventions:

- The world frame is Human3.6M's: metres, z up. A camera's ``R`` is camera-to-world and ``T``
  is its centre in the world, as in the common pickle: ``x_cam = R.T @ (x_world - T)``. Pixels
  are ``f * x_cam[:2] / x_cam[2] + c`` in continuous image coordinates (pixel (i, j) spans
  [j, j + 1) x [i, i + 1)). Frames are rendered without lens distortion, so ``k`` and ``p`` are 0.
- The pose's root rotation is in the CAMERA frame (x right, y down, z forward), as SPIN stores
  Human3.6M: an upright person has a root near pi about x, the rotation SPIN applies to the MoSh fits.
- The 17 Human3.6M joints are the body model's ``J_regressor_h36m`` joints (Human3.6M's order:
  pelvis, left leg, right leg, spine, thorax, neck/nose, head, left arm, right arm), so that PARE's
  evaluation of the fit gives them back exactly.
- Subjects S1, S5, S6, S7, S8 (train) and S9, S11 (test), each with one body shape, take turns; a train subject cycles through
  the four cameras, a test subject through the frontal camera 60457274 (every other frame, protocol 2's)
  and the other three (protocol 1 adds them). Frame numbers of a (subject, action, camera) take are
  1, 6, 11, ... (SPIN's every-5th-frame subsampling).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.keypoints import h36m17_as_spin_gt
from preprocessing.render.cameras import perspective_to_screen
from preprocessing.synth.appearance import random_vertex_colors
from preprocessing.synth.common import LayoutResult, PreviewTile, SynthOptions, chunks, progress, sample_rng
from preprocessing.synth.framing import box_center_scale, random_lean, yaw_rotation
from preprocessing.synth.poses import axis_angle_to_matrix, matrix_to_axis_angle, sample_betas, sample_body_poses
from preprocessing.synth.scene import PersonView, depth_tolerance, keypoint_visibility, render_random_scene

STREAM = "h36m"
"""Key of every h36m layout's per-sample generators: the layouts draw the same frames."""
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
SUBJECT_ORDER = ("S1", "S9", "S5", "S11", "S6", "S7", "S8")
"""Subjects in the order samples cycle through them, so a few samples already fill both splits."""
CAMERAS = {"54138969": (1000, 1002), "55011271": (1000, 1000), "58860488": (1000, 1000), "60457274": (1000, 1002)}
"""Camera ids and their (width, height) in pixels, in Human3.6M's order (camera1..camera4)."""
PROTOCOL2_CAMERA = "60457274"
ACTIONS = ("Directions_1", "Discussion", "Eating_2", "Greeting", "Phoning_1", "Posing", "SittingDown", "WalkDog_1")
FOCAL, CENTER = (1145.0, 1144.0), (512.0, 510.0)
Z_UP = axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))
"""Rotation from the body's rest frame (y up) to Human3.6M's world frame (z up)."""
FRAME_STEP = 5


def camera_rig(seed: int, subject: str, scale: float) -> dict[str, dict]:
    """The four cameras of a subject's capture: around the room's centre, about 5 m away, 1.5 m up."""
    rng = sample_rng(seed, f"{STREAM}-cameras-{subject}", 0)
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


def all_cameras(seed: int, scale: float) -> dict[tuple[str, str], dict]:
    """The cameras pickle's dict: every subject's rig, keyed ``(subject, camera id)``."""
    return {(s, cid): cam for s in TRAIN_SUBJECTS + TEST_SUBJECTS for cid, cam in camera_rig(seed, s, scale).items()}


def assign(index: int) -> tuple[str, str, str]:
    """(subject, action, camera id) of sample ``index``."""
    subject = SUBJECT_ORDER[index % len(SUBJECT_ORDER)]
    turn = index // len(SUBJECT_ORDER)
    cameras = list(CAMERAS)
    if subject in TEST_SUBJECTS:
        others = [c for c in cameras if c != PROTOCOL2_CAMERA]
        camera = PROTOCOL2_CAMERA if turn % 2 == 0 else others[(turn // 2) % len(others)]
    else:
        camera = cameras[turn % len(cameras)]
    return subject, ACTIONS[turn % len(ACTIONS)], camera


@dataclass(frozen=True)
class H36mFrame:
    """One captured frame: what every layout writes of it (arrays in the camera frame, metres, pixels)."""

    subject: str
    action: str  # with underscores: Directions_1
    camera: str
    frame: int  # 1-based frame number in its video: 1, 6, 11, ...
    image: np.ndarray  # (H, W, 3) uint8
    joints17: np.ndarray  # (17, 3) Human3.6M joints
    pixels17: np.ndarray  # (17, 2) their projections
    screen: np.ndarray  # (V, 3) the mesh projected (x, y pixels, depth)
    pose: np.ndarray  # (72,) axis-angle, root in the camera frame
    betas: np.ndarray  # (10,)

    @property
    def folder(self) -> str:
        """``S1_Directions_1.54138969``: the extracted frames' folder (dotted camera id)."""
        return f"{self.subject}_{self.action}.{self.camera}"

    @property
    def name(self) -> str:
        """``S1_Directions_1.54138969_000001.jpg``: SPIN's frame file name."""
        return f"{self.folder}_{self.frame:06d}.jpg"

    @property
    def test(self) -> bool:
        return self.subject in TEST_SUBJECTS

    def box(self) -> tuple[np.ndarray, float]:
        """SPIN's box of the person: centre (2,) and scale (side / 200)."""
        return box_center_scale(self.screen[:, :2])

    def spin_joints(self, root_centred: bool) -> np.ndarray:
        """(24, 4) SPIN's ``S``: the 17 joints at SPIN's slots, validity 1, others 0; SPIN's files root-centre them
        (``S17 -= S17[0]``), mmpose's keep the camera frame."""
        return h36m17_as_spin_gt(self.joints17 - self.joints17[0] if root_centred else self.joints17)

    def spin_part(self) -> np.ndarray:
        """(24, 3) SPIN's ``part``: the 17 joints' pixels at SPIN's slots, visibility 1, others 0."""
        return h36m17_as_spin_gt(self.pixels17)


def subject_betas(seed: int, subject: str) -> np.ndarray:
    """(10,) the subject's body shape: one per subject, as MoSh fits one per sequence of a subject."""
    return sample_betas(sample_rng(seed, f"{STREAM}-betas-{subject}", 0), 1)[0]


def _world_placement(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Root rotation (3, 3) and pelvis position (3,) of an upright person in the capture area."""
    root = Z_UP @ random_lean(rng, 0.1) @ yaw_rotation(rng.uniform(-np.pi, np.pi))
    pelvis = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8), 0.95])
    return root, pelvis


def _posed_block(block: range, seed: int, rigs: dict, models: BodyModels, options: SynthOptions):
    """Per-sample generators, takes, cameras, poses and the posed bodies (no translation) of a block."""
    rngs = [sample_rng(seed, STREAM, i) for i in block]
    takes = [assign(i) for i in block]
    cameras = [rigs[subject][camera_id] for subject, _, camera_id in takes]
    body_pose = np.stack([sample_body_poses(rng, 1, variation=options.pose_variation)[0] for rng in rngs])
    betas = np.stack([subject_betas(seed, subject) for subject, _, _ in takes])
    placements = [_world_placement(rng) for rng in rngs]
    roots = [matrix_to_axis_angle(c["R"].T @ root) for c, (root, _) in zip(cameras, placements, strict=True)]
    pose = np.concatenate([np.stack(roots)[:, None], body_pose], axis=1)
    bodies = pose_bodies(models.get("neutral"), pose, betas, batch_size=options.batch_size)
    return rngs, takes, cameras, placements, pose, betas, bodies


def capture(
    num: int, seed: int, models: BodyModels, options: SynthOptions, result: LayoutResult
) -> Iterator[H36mFrame]:
    """The ``num`` frames in order, rendered; keeps ``result``'s preview tiles and shows a progress bar."""
    rigs = {subject: camera_rig(seed, subject, options.h36m_scale) for subject in TRAIN_SUBJECTS + TEST_SUBJECTS}
    frame_count: dict[tuple[str, str, str], int] = {}
    bar = progress(range(num), num, result.layout)
    for block in chunks(num, options.batch_size):
        rngs, takes, cameras, placements, pose, betas, bodies = _posed_block(block, seed, rigs, models, options)
        for k, take in enumerate(takes):
            camera, intrinsics = cameras[k], camera_matrix(cameras[k])
            pelvis_camera = camera["R"].T @ (placements[k][1] - camera["T"].ravel())
            shift = pelvis_camera - bodies.smpl_joints[k, 0]
            vertices, joints17 = bodies.vertices[k] + shift, bodies.h36m_joints[k] + shift
            screen = perspective_to_screen(vertices, intrinsics, np.eye(4))
            person = PersonView(screen, vertices, random_vertex_colors(rngs[k], models.part_map(), models.template()))
            faces, parts = models.faces(), models.face_parts()
            scene = render_random_scene(
                rngs[k], [person], faces, parts, camera["h"], camera["w"], options.occluder_probability
            )
            pixels = perspective_to_screen(joints17, intrinsics, np.eye(4))
            frame_count[take] = frame_count.get(take, 0) + 1
            number = 1 + FRAME_STEP * (frame_count[take] - 1)
            frame = H36mFrame(
                *take, number, scene.image, joints17, pixels[:, :2], screen, pose[k].reshape(72), betas[k]
            )
            tolerance = depth_tolerance(joints17, vertices)
            result.keep_preview(
                lambda s=scene, p=pixels, t=tolerance, n=frame.name: PreviewTile(
                    s.image, s.labels, p[:, :2], keypoint_visibility(p, t, s), n
                ),
                options.preview_count,
            )
            yield frame
            bar.update(1)
    bar.close()
