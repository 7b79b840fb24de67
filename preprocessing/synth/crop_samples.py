"""Single-person pictures whose body is defined by PARE's crop camera (coco_eft, mpii).

The person is posed in the camera frame and given a weak-perspective camera ``[s, tx, ty]``
(f = 5000) in the 224 x 224 crop of a square box (centre, side) of the image; the body is
rendered into the full image through the inverse of that crop's affine. The crop camera and
the box are therefore the exact camera of the image: projecting the stored parameters with
:func:`preprocessing.render.cameras.weak_perspective_to_screen` and the same affine gives the
rendered pixels back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.render.cameras import (
    CROP_SIZE,
    crop_affine,
    invert_affine,
    weak_perspective_to_screen,
    weak_perspective_translation,
)
from preprocessing.synth.appearance import random_vertex_colors
from preprocessing.synth.common import SynthOptions, chunks, sample_rng
from preprocessing.synth.framing import camera_root, fit_crop_camera, random_crop_box, random_image_size
from preprocessing.synth.poses import axis_angle_to_matrix, matrix_to_axis_angle, sample_betas, sample_body_poses
from preprocessing.synth.scene import (
    PersonView,
    SceneRender,
    depth_tolerance,
    keypoint_visibility,
    render_random_scene,
)


@dataclass(frozen=True)
class CropSample:
    """One rendered single-person picture and its exact ground truth.

    Attributes:
        index: sample number.
        pose: (24, 3) axis-angle, root rotation in the camera frame.
        betas: (10,).
        cam: (3,) weak-perspective ``[s, tx, ty]`` in the crop of the box.
        center: (2,) box centre in image pixels; box_size: box side in image pixels.
        joints: (49, 3) SPIN joints in the image: x, y pixels and camera depth.
        visibility: (49,) 0 outside the image, 1 hidden, 2 visible.
        vertices: (V, 3) vertices in the image (x, y pixels, depth).
        scene: the picture and its label and depth maps.
    """

    index: int
    pose: np.ndarray
    betas: np.ndarray
    cam: np.ndarray
    center: np.ndarray
    box_size: float
    joints: np.ndarray
    visibility: np.ndarray
    vertices: np.ndarray
    scene: SceneRender

    @property
    def scale(self) -> float:
        """Box side / 200, the datasets' ``scale``."""
        return self.box_size / 200.0


def image_affine(center: np.ndarray, box_size: float) -> np.ndarray:
    """(2, 3) map from the 224 crop of the box to image pixels."""
    return invert_affine(crop_affine(center, box_size, CROP_SIZE))


def crop_samples(models: BodyModels, seed: int, layout: str, num: int, options: SynthOptions) -> Iterator[CropSample]:
    """Render ``num`` single-person pictures with the neutral body model, posed in batches."""
    faces, face_parts, part_map = models.faces(), models.face_parts(), models.part_map()
    model = models.get("neutral")
    for block in chunks(num, options.batch_size):
        rngs = [sample_rng(seed, layout, i) for i in block]
        sizes = [random_image_size(rng, options.image_size) for rng in rngs]
        body_pose = np.stack([sample_body_poses(rng, 1, variation=options.pose_variation)[0] for rng in rngs])
        betas = np.stack([sample_betas(rng, 1)[0] for rng in rngs])
        root = np.stack([matrix_to_axis_angle(camera_root(rng)) for rng in rngs])
        pose = np.concatenate([root[:, None], body_pose], axis=1)  # (B, 24, 3)
        bodies = pose_bodies(model, axis_angle_to_matrix(pose), betas, batch_size=options.batch_size)
        for k, index in enumerate(block):
            rng, (height, width) = rngs[k], sizes[k]
            vertices, joints = bodies.vertices[k], bodies.joints[k]
            cam = fit_crop_camera(rng, vertices)
            center, box_size = random_crop_box(rng, height, width)
            affine = image_affine(center, box_size)
            screen = weak_perspective_to_screen(vertices, cam, affine=affine)
            joints_screen = weak_perspective_to_screen(joints, cam, affine=affine)
            person = PersonView(
                screen,
                vertices + weak_perspective_translation(cam),
                random_vertex_colors(rng, part_map, models.template()),
            )
            scene = render_random_scene(rng, [person], faces, face_parts, height, width, options.occluder_probability)
            visibility = keypoint_visibility(joints_screen, depth_tolerance(joints, vertices), scene)
            yield CropSample(
                index=index,
                pose=pose[k],
                betas=betas[k],
                cam=cam,
                center=center,
                box_size=box_size,
                joints=joints_screen,
                visibility=visibility,
                vertices=screen,
                scene=scene,
            )
