"""``spin_npz``: a SPIN/PARE ``dataset_extras``-style npz over an image folder, seen by a pinhole camera.

Writes ``images/{n:06d}.jpg`` and ``synth_train.npz`` with ``imgname`` (paths relative to the
output folder, as SPIN's ``images/...``), ``center`` (N, 2), ``scale`` (N,) = box side / 200
(the box is 1.2 times the person's extent), ``part`` (N, 24, 3) SPIN's ground-truth joints in
image pixels with confidence 1 inside the image, ``openpose`` (N, 25, 3) the OpenPose joints
likewise, ``S`` (N, 24, 4) 3D joints as SPIN's files with 3D joints (Human3.6M, MPI-INF-3DHP) hold
them: 17 Human3.6M joints (the body model's ``J_regressor_h36m`` joints) at SPIN's slots (head in 18,
slot 13 and six others empty, validity 0), root-centred (metres, axes of the camera frame, the pelvis,
slot 14, at 0),
``pose`` (N, 72) axis-angle with the root in the camera frame, ``shape`` (N, 10), ``has_smpl``
(N,) and ``gender`` (N,) 'm' or 'f'.

Each person is posed with the body model of their gender in front of a camera at the world
origin (x right, y down, z forward) with square pixels, focal length 1.0-1.6 times the image's
longer side and the principal point at the image centre. Re-posing the body model of
``gender`` with ``pose`` and ``shape`` gives ``S``'s joints once centred on the pelvis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pare_model.body_model.procedural.files import write_npz
from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.keypoints import NUM_OPENPOSE, h36m17_as_spin_gt
from preprocessing.render.cameras import perspective_to_screen
from preprocessing.synth.appearance import random_vertex_colors
from preprocessing.synth.common import LayoutResult, PreviewTile, SynthOptions, chunks, progress, sample_rng, write_jpeg
from preprocessing.synth.framing import box_center_scale, camera_root, intrinsics, place_in_view, random_image_size
from preprocessing.synth.poses import axis_angle_to_matrix, matrix_to_axis_angle, sample_betas, sample_body_poses
from preprocessing.synth.scene import (
    PersonView,
    depth_tolerance,
    keypoint_visibility,
    render_random_scene,
)

NAME = "spin_npz"
NPZ_FILE = "synth_train.npz"
KEYS = ("imgname", "center", "scale", "part", "openpose", "S", "pose", "shape", "has_smpl", "gender")


def _pose_by_gender(models: BodyModels, genders: list[str], pose: np.ndarray, betas: np.ndarray, batch: int):
    """(B, V, 3) vertices, (B, 49, 3) joints and (B, 17, 3) Human3.6M joints, each sample posed with its gender's
    model."""
    vertices = np.zeros((len(genders), len(models.part_map()), 3))
    joints = np.zeros((len(genders), 49, 3))
    h36m = np.zeros((len(genders), 17, 3))
    for gender in sorted(set(genders)):
        chosen = np.array([g == gender for g in genders])
        bodies = pose_bodies(models.get(gender), axis_angle_to_matrix(pose[chosen]), betas[chosen], batch_size=batch)
        vertices[chosen], joints[chosen], h36m[chosen] = bodies.vertices, bodies.joints, bodies.h36m_joints
    return vertices, joints, h36m


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """Write ``num`` images and their npz annotations (see the module docstring)."""
    faces, face_parts, part_map = models.faces(), models.face_parts(), models.part_map()
    columns: dict[str, list] = {key: [] for key in KEYS}
    result = LayoutResult(layout=NAME, num_samples=num, num_images=num)
    bar = progress(range(num), num, NAME)
    for block in chunks(num, options.batch_size):
        rngs = [sample_rng(seed, NAME, i) for i in block]
        sizes = [random_image_size(rng, options.image_size) for rng in rngs]
        genders = [("m", "f")[rng.integers(2)] for rng in rngs]
        body_pose = np.stack([sample_body_poses(rng, 1, variation=options.pose_variation)[0] for rng in rngs])
        betas = np.stack([sample_betas(rng, 1)[0] for rng in rngs])
        roots = np.stack([matrix_to_axis_angle(camera_root(rng)) for rng in rngs])
        pose = np.concatenate([roots[:, None], body_pose], axis=1)
        vertices, joints, h36m = _pose_by_gender(models, genders, pose, betas, options.batch_size)
        for k, index in enumerate(block):
            rng, (height, width) = rngs[k], sizes[k]
            camera = intrinsics(max(height, width) * rng.uniform(1.0, 1.6), width / 2.0, height / 2.0)
            shift = place_in_view(rng, vertices[k], camera, height, width)
            screen = perspective_to_screen(vertices[k] + shift, camera, np.eye(4))
            joints_screen = perspective_to_screen(joints[k] + shift, camera, np.eye(4))
            person = PersonView(screen, vertices[k] + shift, random_vertex_colors(rng, part_map, models.template()))
            scene = render_random_scene(rng, [person], faces, face_parts, height, width, options.occluder_probability)
            visibility = keypoint_visibility(joints_screen, depth_tolerance(joints[k], vertices[k]), scene)
            name = f"images/{index + 1:06d}.jpg"
            write_jpeg(out / name, scene.image, options.jpeg_quality)
            keypoints = np.concatenate([joints_screen[:, :2], (visibility > 0)[:, None]], axis=1)
            center, scale = box_center_scale(screen[:, :2])
            S = h36m17_as_spin_gt(h36m[k] - h36m[k, 0])  # root-centred at SPIN's slots, as SPIN's files
            row = (name, center, scale, keypoints[NUM_OPENPOSE:], keypoints[:NUM_OPENPOSE], S)
            row += (pose[k].reshape(72), betas[k], 1.0, genders[k])
            for key, value in zip(KEYS, row, strict=True):
                columns[key].append(value)
            result.keep_preview(
                lambda s=scene, p=joints_screen, v=visibility, n=name: PreviewTile(
                    s.image, s.labels, p[NUM_OPENPOSE:, :2], v[NUM_OPENPOSE:], n
                ),
                options.preview_count,
            )
            bar.update(1)
    bar.close()
    arrays = {key: np.array(columns[key], dtype=str if key in ("imgname", "gender") else np.float64) for key in KEYS}
    write_npz(out / NPZ_FILE, arrays)
    result.annotation_files.append(out / NPZ_FILE)
    return result
