"""Procedural textures, occluders, picture composition and keypoint visibility."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing.bodies import pose_bodies
from preprocessing.render import crop_affine, invert_affine, rasterize, shade, weak_perspective_to_screen
from preprocessing.synth.framing import UPRIGHT_IN_CAMERA, fit_crop_camera, look_at
from preprocessing.synth.occluder_shapes import occluder_mask
from preprocessing.synth.scene import (
    Lighting,
    OccluderLayer,
    PersonView,
    SceneRender,
    depth_tolerance,
    keypoint_visibility,
    render_scene,
)
from preprocessing.synth.textures import TEXTURES, random_texture, texture


@pytest.mark.parametrize("kind", sorted(TEXTURES))
def test_textures_are_deterministic_varied_images(kind):
    first = texture(kind, np.random.default_rng(3), 48, 64)
    again = texture(kind, np.random.default_rng(3), 48, 64)
    other = texture(kind, np.random.default_rng(4), 48, 64)
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.reshape(-1, 3).std(axis=0).max() > 1.0  # not a flat colour


def test_unknown_texture_lists_the_valid_names():
    with pytest.raises(KeyError, match="valid names: .*checker"):
        texture("marble", np.random.default_rng(0), 8, 8)


def test_occluders_sit_over_their_box_and_repeat_per_seed():
    box = np.array([40.0, 30.0, 80.0, 90.0])
    masks = [occluder_mask(np.random.default_rng(s), 120, 160, box) for s in range(20)]
    np.testing.assert_array_equal(masks[0], occluder_mask(np.random.default_rng(0), 120, 160, box))
    for mask in masks:
        assert mask.dtype == bool and mask.any()
        rows, cols = np.nonzero(mask)
        # Shapes are centred inside the box and at most 0.3 x its size in radius.
        assert cols.min() >= 40 - 0.3 * 60 - 1 and cols.max() <= 80 + 0.3 * 60 + 1
        assert rows.min() >= 30 - 0.3 * 60 - 1 and rows.max() <= 90 + 0.3 * 60 + 1


def _scene_with_depth() -> SceneRender:
    """A 10 x 20 picture: a surface at depth 2 on the left half, an occluder at rows 0-2 of the right half."""
    depth = np.full((10, 20), np.inf, np.float32)
    depth[:, :10] = 2.0
    occluded = np.zeros((10, 20), bool)
    occluded[0:3, 10:] = True
    empty = np.zeros((10, 20), np.uint8)
    return SceneRender(np.zeros((10, 20, 3), np.uint8), empty, depth, empty.astype(np.int16) - 1, occluded)


def test_keypoint_visibility_against_depth_and_occluders():
    scene = _scene_with_depth()
    points = np.array(
        [
            [5.5, 5.5, 1.9],  # in front of the surface: visible
            [5.5, 5.5, 2.05],  # just behind it, within the tolerance: visible
            [5.5, 5.5, 2.5],  # well behind it: hidden
            [15.5, 5.5, 9.0],  # background: visible
            [15.5, 1.5, 1.0],  # under the occluder: hidden
            [20.0, 5.0, 1.0],  # x == width is outside the image
            [-0.01, 5.0, 1.0],  # outside
            [9.99, 9.99, 1.0],  # last pixel, inside
        ]
    )
    tolerance = np.full(len(points), 0.1)
    np.testing.assert_array_equal(keypoint_visibility(points, tolerance, scene), [2, 2, 1, 2, 1, 0, 0, 2])


def test_depth_tolerance_is_twice_the_depth_below_the_skin_plus_margin():
    vertices = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    joints = np.array([[0.0, 0.05, 0.0], [0.7, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(depth_tolerance(joints, vertices), [0.12, 0.62, 0.02])


def test_render_scene_layers_background_body_and_occluders(body_model):
    """Body pixels are the shaded body, the rest is background, occluders cover both."""
    rotations = np.concatenate([UPRIGHT_IN_CAMERA[None, None], np.broadcast_to(np.eye(3), (1, 23, 3, 3))], axis=1)
    vertices = pose_bodies(body_model, rotations, np.zeros((1, 10))).vertices[0]
    cam = fit_crop_camera(np.random.default_rng(0), vertices)
    affine = invert_affine(crop_affine([60.0, 50.0], 90.0, 224))
    screen = weak_perspective_to_screen(vertices, cam, affine=affine)
    colors = np.full((len(vertices), 3), 0.6)
    camera_vertices = vertices + np.array([cam[1], cam[2], 2 * 5000 / (224 * cam[0])])
    background = np.full((100, 120, 3), 17, np.uint8)
    occluder = np.zeros((100, 120), bool)
    occluder[45:55, :] = True
    layer = OccluderLayer(occluder, np.full((100, 120, 3), 200, np.uint8))
    light = Lighting(np.array([0.0, 0.0, -1.0]), 0.4)
    faces = body_model.faces.numpy()
    parts = np.zeros(len(faces), np.int64)
    scene = render_scene([PersonView(screen, camera_vertices, colors)], faces, parts, background, light, layer)

    fragments = rasterize(screen, faces, 100, 120)
    body = fragments.mask
    expected = shade(
        fragments, screen, faces, camera_vertices, vertex_colors=colors, light_dir=light.direction, ambient=0.4
    )
    free = ~occluder
    np.testing.assert_array_equal(scene.image[body & free], expected[body & free])
    assert (scene.image[~body & free] == 17).all() and (scene.image[occluder] == 200).all()
    np.testing.assert_array_equal(scene.labels > 0, body)  # labels ignore the occluders
    np.testing.assert_array_equal(scene.person, np.where(body, 0, -1))
    np.testing.assert_array_equal(scene.occluded, occluder)
    assert 0.05 < body.mean() < 0.5


def test_look_at_gives_an_opencv_camera():
    rotation, translation = look_at(np.array([0.0, 1.0, -4.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    # The target is straight ahead, a point above it is up on screen (y < 0), one to +x is to the left.
    np.testing.assert_allclose(rotation @ np.array([0.0, 1.0, 0.0]) + translation, [0.0, 0.0, 4.0], atol=1e-12)
    assert (rotation @ np.array([0.0, 2.0, 0.0]) + translation)[1] < 0
    assert (rotation @ np.array([1.0, 1.0, 0.0]) + translation)[0] < 0


def test_random_texture_blends_kinds():
    image = random_texture(np.random.default_rng(5), 30, 40)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
