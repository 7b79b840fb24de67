"""``3doh``: 3DOH50K's release layout (Zhang et al., CVPR 2020), one object-occluded person per picture.

Writes ``testset/annots.json`` with ``testset/images/<id>.jpg`` and, for every fourth picture,
``trainset/annots.json`` with ``trainset/images/<id>.jpg`` and ``trainset/masks/<id>.png`` (the
release has masks for its training set only). ``annots.json`` maps five-digit ids (``"00000"``,
per split) to the keys PARE's 3DOH preprocessing lists, with its shapes: ``extri`` (4, 4) world
to camera, ``intri`` (3, 3), ``img_path`` (``images\\00000.jpg``: Windows separators, as the
original's ``replace("\\\\", "/")`` expects), ``bbox`` [[x1, y1], [x2, y2]] (the tight box of the
person), ``betas`` (1, 10), ``pose`` (1, 72) axis-angle with the root in the world frame,
``trans`` (1, 3), ``scale`` (1,), ``smpl_joints_2d`` (24, 2), ``smpl_joints_3d`` (24, 3),
``lsp_joints_2d`` (14, 2) and ``lsp_joints_3d`` (14, 3) (LSP's 14 joints: SPIN's ground-truth
joints 0-13), ``mask_path`` (training set).

The person is the neutral body model (3DOH has no genders; PARE evaluates it on the neutral
model). The world is metric (``scale`` 1): ``body(pose, betas) + trans`` (the body rotating about
its root joint, as SMPL) mapped by ``extri`` is the body the camera sees. The 3D joints are written
in the camera frame (posepile reads ``lsp_joints_3d`` so; the release's values carry a scale
factor the readers need not know: ``pare``'s reader uses none of ``trans``, ``scale`` and the 3D
joints, as PARE's preprocessing). Occluders (``synth.occluder_probability``) hide parts of the
person, as 3DOH's objects do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.keypoints import LSP14_TO_SPIN_GT, spin_indices
from preprocessing.render.cameras import perspective_to_screen
from preprocessing.synth.appearance import random_vertex_colors
from preprocessing.synth.common import (
    LayoutResult,
    PreviewTile,
    SynthOptions,
    progress,
    sample_rng,
    write_jpeg,
    write_json,
)
from preprocessing.synth.framing import camera_root, intrinsics, place_in_view, random_image_size, yaw_tilt
from preprocessing.synth.poses import matrix_to_axis_angle, sample_betas, sample_body_poses
from preprocessing.synth.scene import PersonView, depth_tolerance, keypoint_visibility, render_random_scene

NAME = "3doh"
FOLDERS = {"train": "trainset", "test": "testset"}
LSP = spin_indices(LSP14_TO_SPIN_GT)


def split_of(index: int) -> str:
    """Every fourth picture goes to the training set, the others to the test set."""
    return "train" if index % 4 == 3 else "test"


def _extrinsics(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A world-to-camera ``(R, t)``: the world turned about the camera's vertical and shifted."""
    return yaw_tilt(rng, 0.1), rng.uniform(-2.0, 2.0, size=3)


def _sample(index: int, seed: int, models: BodyModels, options: SynthOptions) -> tuple[dict, object, np.ndarray]:
    """(annotation, scene, (14, 2) LSP keypoints) of picture ``index``."""
    rng = sample_rng(seed, NAME, index)
    height, width = random_image_size(rng, options.image_size)
    root_camera = camera_root(rng)
    pose = np.concatenate(
        [matrix_to_axis_angle(root_camera)[None], sample_body_poses(rng, 1, variation=options.pose_variation)[0]]
    )
    betas = sample_betas(rng, 1)[0]
    body = pose_bodies(models.get("neutral"), pose[None], betas[None], batch_size=1)
    camera = intrinsics(max(height, width) * rng.uniform(1.0, 1.6), width / 2.0, height / 2.0)
    shift = place_in_view(rng, body.vertices[0], camera, height, width)
    screen = perspective_to_screen(body.vertices[0] + shift, camera, np.eye(4))
    joints = perspective_to_screen(body.joints[0] + shift, camera, np.eye(4))
    smpl_2d = perspective_to_screen(body.smpl_joints[0] + shift, camera, np.eye(4))
    person = PersonView(
        screen, body.vertices[0] + shift, random_vertex_colors(rng, models.part_map(), models.template())
    )
    scene = render_random_scene(
        rng, [person], models.faces(), models.face_parts(), height, width, options.occluder_probability
    )
    rotation, translation = _extrinsics(rng)
    root = body.smpl_joints[0, 0]  # the rest root joint: the root rotation turns the body about it
    world_pose = pose.copy()
    world_pose[0] = matrix_to_axis_angle(rotation.T @ root_camera)
    extri = np.eye(4)
    extri[:3, :3], extri[:3, 3] = rotation, translation
    low, high = screen[:, :2].min(axis=0), screen[:, :2].max(axis=0)
    annotation = {
        "extri": extri.tolist(),
        "intri": camera.tolist(),
        "bbox": [low.tolist(), high.tolist()],
        "betas": [betas.tolist()],
        "pose": [world_pose.reshape(72).tolist()],
        "trans": [(rotation.T @ (root + shift - translation) - root).tolist()],
        "scale": [1.0],
        "smpl_joints_2d": smpl_2d[:, :2].tolist(),
        "smpl_joints_3d": (body.smpl_joints[0] + shift).tolist(),
        "lsp_joints_2d": joints[LSP, :2].tolist(),
        "lsp_joints_3d": (body.joints[0, LSP] + shift).tolist(),
    }
    visibility = keypoint_visibility(joints[LSP], depth_tolerance(body.joints[0, LSP], body.vertices[0]), scene)
    return annotation, scene, visibility


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """Write ``num`` pictures and the two ``annots.json`` files (see the module docstring)."""
    result = LayoutResult(layout=NAME, num_samples=num, num_images=num)
    annotations: dict[str, dict[str, dict]] = {split: {} for split in FOLDERS}
    for index in progress(range(num), num, NAME):
        split = split_of(index)
        annotation, scene, visibility = _sample(index, seed, models, options)
        image_id = f"{len(annotations[split]):05d}"
        folder = out / FOLDERS[split]
        write_jpeg(folder / "images" / f"{image_id}.jpg", scene.image, options.jpeg_quality)
        annotation["img_path"] = f"images\\{image_id}.jpg"
        if split == "train":
            annotation["mask_path"] = f"masks\\{image_id}.png"
            (folder / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(((scene.person >= 0) * 255).astype(np.uint8)).save(folder / "masks" / f"{image_id}.png")
        annotations[split][image_id] = annotation
        result.keep_preview(
            lambda s=scene, a=annotation, v=visibility, n=f"{FOLDERS[split]}/{image_id}": PreviewTile(
                s.image, s.labels, np.asarray(a["lsp_joints_2d"]), v, n
            ),
            options.preview_count,
        )
    for split, entries in annotations.items():
        if entries:
            path = out / FOLDERS[split] / "annots.json"
            write_json(path, entries)
            result.annotation_files.append(path)
    return result
