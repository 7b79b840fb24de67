"""Unit tests of the CPU rasterizer, cameras, labels and shading (hand-computed cases).

The agreement with an independent ray caster on posed bodies is in test_render_reference.py.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import subprocess
import sys

import cv2
import numpy as np
import pytest
from scipy.spatial import ConvexHull, Delaunay

from preprocessing.render import (
    Fragments,
    affine_for_cv2,
    apply_affine,
    compose_affine,
    crop_affine,
    invert_affine,
    part_labels,
    perspective_to_screen,
    rasterize,
    render_part_labels,
    scale_affine,
    shade,
    weak_perspective_to_screen,
)


def _screen(points_2d, z=2.0) -> np.ndarray:
    """(N, 2) pixel positions at a constant depth -> (N, 3) screen points."""
    points = np.asarray(points_2d, dtype=np.float64)
    return np.concatenate([points, np.full((len(points), 1), z)], axis=1)


def _mask(picture: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in picture.split()])


def _signed_area(corners: np.ndarray) -> np.ndarray:
    """(..., 3, 2) triangle corners -> (...) signed area x 2; negative is front-facing (y down)."""
    a, b = corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :]
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _coverage(screen, faces, height, width, **kwargs) -> np.ndarray:
    """(H, W) number of faces covering each pixel centre, each face rasterised alone."""
    return sum(rasterize(screen, faces[k : k + 1], height, width, **kwargs).mask.astype(int) for k in range(len(faces)))


# --- coverage and ties ----------------------------------------------------------------------


def test_single_triangle_covers_the_pixel_centres_inside():
    # Legs along x = 1.2 and y = 1.1, hypotenuse from (1.2, 6.3) to (6.1, 1.1): no centre on an edge.
    screen = _screen([(1.2, 1.1), (1.2, 6.3), (6.1, 1.1)])
    fragments = rasterize(screen, np.array([[0, 1, 2]]), 8, 8)
    expected = _mask(
        """
        ........
        .#####..
        .####...
        .###....
        .##.....
        .#......
        ........
        ........
        """
    )
    np.testing.assert_array_equal(fragments.mask, expected)
    np.testing.assert_array_equal(fragments.face_index[expected], 0)
    np.testing.assert_array_equal(fragments.depth[expected], np.float32(2.0))
    assert np.all(np.isinf(fragments.depth[~expected]))
    assert fragments.face_index.dtype == np.int32 and fragments.depth.dtype == np.float32


def test_full_screen_quad_covers_every_pixel_once():
    """Two triangles share the diagonal, which passes through every diagonal pixel centre."""
    size = 8
    screen = _screen([(0, 0), (size, 0), (size, size), (0, size)])
    faces = np.array([[0, 3, 2], [0, 2, 1]])  # counter-clockwise on screen
    np.testing.assert_array_equal(_coverage(screen, faces, size, size), 1)
    fragments = rasterize(screen, faces, size, size)
    assert fragments.mask.all()
    # Each diagonal centre went to exactly one of the two triangles.
    assert set(np.unique(np.diagonal(fragments.face_index))) <= {0, 1}


def test_fan_around_a_pixel_centre_covers_it_once():
    """Eight triangles meet at the centre of pixel (4, 4); all vertices lie on pixel centres."""
    ring = [(0.5, 0.5), (4.5, 0.5), (8.5, 0.5), (8.5, 4.5), (8.5, 8.5), (4.5, 8.5), (0.5, 8.5), (0.5, 4.5)]
    screen = _screen([(4.5, 4.5)] + ring)
    faces = np.array([[0, 1 + (k + 1) % 8, 1 + k] for k in range(8)])
    assert np.all(_signed_area(screen[faces, :2]) < 0)
    coverage = _coverage(screen, faces, 10, 10)
    assert coverage.max() == 1
    np.testing.assert_array_equal(coverage[1:8, 1:8], 1)  # every centre strictly inside the square
    assert coverage[4, 4] == 1


@pytest.mark.parametrize("seed", range(3))
def test_triangulated_grid_points_cover_each_centre_at_most_once(seed):
    """A Delaunay triangulation of random pixel centres: many centres lie exactly on shared edges."""
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 20, size=(40, 2)) + 0.5
    points = np.unique(points, axis=0)
    triangulation = Delaunay(points)
    faces = triangulation.simplices.copy()
    back = _signed_area(points[faces]) > 0
    faces[back] = faces[back][:, ::-1]  # make all front-facing
    coverage = _coverage(_screen(points), faces, 20, 20)
    assert coverage.max() == 1
    centres = np.stack(np.meshgrid(np.arange(20) + 0.5, np.arange(20) + 0.5), axis=-1).reshape(-1, 2)
    hull = ConvexHull(points)
    inside = np.all(centres @ hull.equations[:, :2].T + hull.equations[:, 2] < -1e-9, axis=1).reshape(20, 20)
    np.testing.assert_array_equal(coverage[inside], 1)


def test_closed_convex_mesh_covers_its_silhouette_once():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(40, 3))
    sphere = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    hull = ConvexHull(sphere)
    faces = hull.simplices.copy()
    # Orient every face outward (counter-clockwise seen from outside).
    normals = np.cross(sphere[faces[:, 1]] - sphere[faces[:, 0]], sphere[faces[:, 2]] - sphere[faces[:, 0]])
    outward = np.einsum("ij,ij->i", normals, sphere[faces].mean(axis=1)) > 0
    faces[~outward] = faces[~outward][:, ::-1]
    intrinsics = np.array([[40.0, 0.0, 24.0], [0.0, 40.0, 24.0], [0.0, 0.0, 1.0]])
    screen = perspective_to_screen(sphere, intrinsics, (np.eye(3), np.array([0.1, -0.05, 3.0])))
    fragments = rasterize(screen, faces, 48, 48)
    coverage = _coverage(screen, faces, 48, 48)
    assert fragments.mask.sum() > 300
    np.testing.assert_array_equal(coverage, fragments.mask.astype(int))


# --- depth, culling, near plane -----------------------------------------------------------------


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_nearest_triangle_wins_in_either_draw_order(order):
    near = _screen([(1, 1), (1, 15), (15, 1)], z=2.0)
    far = _screen([(0, 0), (0, 16), (16, 16)], z=3.0)
    screen = np.concatenate([near, far])
    faces = np.array([[0, 1, 2], [3, 4, 5]])[list(order)]
    fragments = rasterize(screen, faces, 16, 16)
    near_alone = rasterize(near, np.array([[0, 1, 2]]), 16, 16).mask
    near_index = order.index(0)
    np.testing.assert_array_equal(fragments.face_index[near_alone], near_index)
    np.testing.assert_array_equal(fragments.depth[near_alone], np.float32(2.0))
    np.testing.assert_array_equal(fragments.depth[fragments.mask & ~near_alone], np.float32(3.0))


def test_depth_is_perspective_correct():
    """Interpenetrating tilted squares: depth at each centre is the exact ray-plane intersection."""
    intrinsics = np.array([[30.0, 0.0, 16.0], [0.0, 30.0, 16.0], [0.0, 0.0, 1.0]])
    first = np.array([[-1.0, -1.0, 2.0], [-1.0, 1.0, 2.0], [1.0, -1.0, 4.0], [1.0, 1.0, 4.0]])  # z = 3 + x
    second = first.copy()
    second[:, 2] = 6.0 - first[:, 2]  # z = 3 - x: the squares cross at x = 0
    points = np.concatenate([first, second])
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 5, 7], [4, 7, 6]])
    fragments = rasterize(perspective_to_screen(points, intrinsics, np.eye(4)), faces, 32, 32, cull_backfaces=False)
    rows, columns = np.nonzero(fragments.mask)
    rays = np.linalg.solve(intrinsics, np.stack([columns + 0.5, rows + 0.5, np.ones(len(rows))]))  # (3, N), z = 1
    # Along the ray t (x, y, 1): t = 3 + x t  and  t = 3 - x t.
    hits = np.stack([3.0 / (1.0 - rays[0]), 3.0 / (1.0 + rays[0])])  # (2, N)
    inside = np.all(np.abs(rays[None, :2] * hits[:, None]) <= 1.0, axis=1)  # the hit lies on the square
    expected = np.where(inside, hits, np.inf)
    np.testing.assert_allclose(fragments.depth[rows, columns], expected.min(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(fragments.face_index[rows, columns] >= 2, expected.argmin(axis=0) == 1)
    assert inside.all(axis=0).sum() > 50  # many pixels see both squares


def test_backface_culling_flag():
    clockwise = _screen([(1, 1), (7, 1), (1, 7)])  # positive signed area: faces away
    faces = np.array([[0, 1, 2]])
    assert not rasterize(clockwise, faces, 8, 8).mask.any()
    shown = rasterize(clockwise, faces, 8, 8, cull_backfaces=False).mask
    front = rasterize(clockwise, faces[:, ::-1], 8, 8).mask
    assert shown.sum() > 10
    np.testing.assert_array_equal(shown, front)


def test_near_plane_skips_whole_triangles():
    faces = np.array([[0, 1, 2]])
    screen = _screen([(1, 1), (1, 7), (7, 1)])
    assert rasterize(screen, faces, 8, 8).mask.sum() > 10
    for bad_z in (0.005, 0.0, -1.0, np.nan):
        crossing = screen.copy()
        crossing[2, 2] = bad_z
        assert not rasterize(crossing, faces, 8, 8).mask.any(), bad_z
    crossing = screen.copy()
    crossing[2, 2] = 0.005
    assert rasterize(crossing, faces, 8, 8, near=0.001).mask.sum() > 10


def test_far_out_vertices_drop_their_triangle():
    """Documented limit: a vertex beyond 2^17 px from the origin drops its triangle (exact int64 arithmetic)."""
    faces = np.array([[0, 1, 2]])
    assert rasterize(_screen([(-1, -1), (-1, 1e5), (1e5, -1)]), faces, 8, 8).mask.all()
    assert not rasterize(_screen([(-1, -1), (-1, 1e6), (1e6, -1)]), faces, 8, 8).mask.any()


def test_mesh_off_screen_gives_an_empty_image(procedural_model):
    model = procedural_model.models["neutral"]
    vertices, faces = model["v_template"] * [1.0, -1.0, -1.0], model["f"].astype(np.int64)
    screen = weak_perspective_to_screen(vertices, [0.9, 0.0, 0.0], affine=scale_affine(64 / 224))
    assert rasterize(screen, faces, 64, 64).mask.sum() > 200
    for shift in ([300.0, 0.0, 0.0], [0.0, -300.0, 0.0], [-1e4, 1e4, 0.0]):
        fragments = rasterize(screen + shift, faces, 64, 64)
        assert not fragments.mask.any()
        assert np.all(np.isinf(fragments.depth))


def test_bad_inputs_raise_clear_errors():
    screen = _screen([(1, 1), (1, 7), (7, 1)])
    with pytest.raises(ValueError, match="outside 0..V-1"):
        rasterize(screen, np.array([[0, 1, 3]]), 8, 8)
    with pytest.raises(ValueError, match="shape"):
        rasterize(screen[:, :2], np.array([[0, 1, 2]]), 8, 8)
    with pytest.raises(ValueError, match="integer"):
        rasterize(screen, np.array([[0.0, 1.0, 2.0]]), 8, 8)
    with pytest.raises(ValueError, match="near"):
        rasterize(screen, np.array([[0, 1, 2]]), 8, 8, near=0.0)
    with pytest.raises(ValueError, match="face_parts"):
        render_part_labels(screen, np.array([[0, 1, 2]]), np.array([0, 1]), 8, 8)
    with pytest.raises(ValueError, match="0..254"):
        render_part_labels(screen, np.array([[0, 1, 2]]), np.array([300]), 8, 8)
    fragments = rasterize(screen, np.array([[0, 1, 2]]), 8, 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fragments.depth = None


# --- labels ----------------------------------------------------------------------------------


def test_part_labels_follow_the_visible_face():
    screen = np.concatenate([_screen([(1, 1), (1, 15), (15, 1)], z=2.0), _screen([(0, 0), (0, 16), (16, 16)], z=3.0)])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    parts = np.array([7, 23])
    fragments = rasterize(screen, faces, 16, 16)
    labels = render_part_labels(screen, faces, parts, 16, 16)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, part_labels(fragments, parts))
    np.testing.assert_array_equal(labels[fragments.face_index == 0], 8)
    np.testing.assert_array_equal(labels[fragments.face_index == 1], 24)
    np.testing.assert_array_equal(labels[~fragments.mask], 0)
    assert {0, 8, 24} == set(np.unique(labels))


# --- cameras and affines -----------------------------------------------------------------------


def test_weak_perspective_matches_project_to_crop(body_model):
    import torch

    from pare_model.geometry import axis_angle_to_matrix, project_to_crop

    generator = torch.Generator().manual_seed(0)
    pose = 0.3 * torch.randn(24, 3, generator=generator)
    pose[0] = torch.tensor([np.pi, 0.0, 0.0])
    rotations = axis_angle_to_matrix(pose)[None]
    with torch.no_grad():
        joints = body_model(rotations[:, :1], rotations[:, 1:], torch.zeros(1, 10))["joints"].double()
    for cam in ([0.9, 0.05, 0.2], [1.3, -0.1, 0.0]):
        ndc = project_to_crop(joints, torch.tensor([cam], dtype=torch.float64))[0].numpy()
        screen = weak_perspective_to_screen(joints[0].numpy(), cam)
        np.testing.assert_allclose(screen[:, :2], (ndc + 1.0) * 112.0, atol=1e-9)
        np.testing.assert_allclose(screen[:, 2], joints[0, :, 2].numpy() + 2 * 5000 / (224 * cam[0]), atol=1e-9)
        half = weak_perspective_to_screen(joints[0].numpy(), cam, affine=[[0.25, 0, 0], [0, 0.25, 0]])
        np.testing.assert_allclose(half[:, :2], screen[:, :2] / 4, atol=1e-9)


def test_perspective_camera_forms_agree():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3)) + [0.0, 0.0, 5.0]
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation *= np.linalg.det(rotation)
    translation = np.array([0.1, -0.2, 6.0])
    intrinsics = np.array([[1000.0, 0.0, 512.0], [0.0, 990.0, 384.0], [0.0, 0.0, 1.0]])
    extrinsics = np.eye(4)
    extrinsics[:3, :3], extrinsics[:3, 3] = rotation, translation
    camera = points @ rotation.T + translation
    expected = camera[:, :2] / camera[:, 2:] * [1000.0, 990.0] + [512.0, 384.0]
    for form in (extrinsics, (rotation, translation)):
        screen = perspective_to_screen(points, intrinsics, form)
        np.testing.assert_allclose(screen[:, :2], expected, rtol=1e-12)
        np.testing.assert_allclose(screen[:, 2], camera[:, 2], rtol=1e-12)
    affine = crop_affine((500.0, 400.0), 300.0, 224, rotation_deg=20.0)
    cropped = perspective_to_screen(points, intrinsics, extrinsics, affine=affine)
    np.testing.assert_allclose(cropped[:, :2], apply_affine(expected, affine), rtol=1e-12)
    with pytest.raises(ValueError, match="extrinsics"):
        perspective_to_screen(points, intrinsics, np.eye(3))


def test_crop_affine_maps_the_box_onto_the_crop():
    affine = crop_affine((300.0, 200.0), 100.0, 224)
    corners = apply_affine([[250.0, 150.0], [350.0, 250.0], [300.0, 200.0]], affine)
    np.testing.assert_allclose(corners, [[0.0, 0.0], [224.0, 224.0], [112.0, 112.0]], atol=1e-12)
    # Positive rotation turns content counter-clockwise on screen: a point right of the centre goes up.
    turned = crop_affine((300.0, 200.0), 100.0, 224, rotation_deg=90.0)
    np.testing.assert_allclose(apply_affine([[310.0, 200.0]], turned), [[112.0, 112.0 - 22.4]], atol=1e-12)


@pytest.mark.parametrize("rotation_deg", [0.0, 33.0, -120.0])
def test_crop_affine_round_trip(rotation_deg):
    rng = np.random.default_rng(1)
    affine = crop_affine(rng.uniform(0, 500, 2), rng.uniform(50, 400), 224, rotation_deg)
    points = rng.uniform(0, 600, (20, 2))
    back = apply_affine(apply_affine(points, affine), invert_affine(affine))
    np.testing.assert_allclose(back, points, atol=1e-9)
    np.testing.assert_allclose(compose_affine(invert_affine(affine), affine), [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_cv2_warp_uses_the_same_pixel_centres():
    """With affine_for_cv2, a 90 degree crop rotation of an image is exactly np.rot90 (counter-clockwise)."""
    image = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    affine = crop_affine((32.0, 32.0), 64.0, 64, rotation_deg=90.0)
    warped = cv2.warpAffine(image, affine_for_cv2(affine), (64, 64), flags=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(warped, np.rot90(image))
    # The centre of pixel (row 10, column 20) lands on the centre of pixel (row 43, column 10).
    np.testing.assert_allclose(apply_affine([[20.5, 10.5]], affine), [[10.5, 43.5]])
    assert warped[43, 10] == image[10, 20]


def test_rendering_into_a_crop_equals_warping_the_full_render(procedural_model):
    """Rendering through a 90 degree crop affine and warping the full label map agree pixel for pixel."""
    model = procedural_model.models["neutral"]
    vertices, faces = model["v_template"] * [1.0, -1.0, -1.0], model["f"].astype(np.int64)
    parts = np.arange(len(faces)) % 24
    full = render_part_labels(weak_perspective_to_screen(vertices, [0.9, 0.0, 0.1]), faces, parts, 224, 224)
    affine = crop_affine((100.0, 120.0), 112.0, 112, rotation_deg=90.0)
    direct = render_part_labels(
        weak_perspective_to_screen(vertices, [0.9, 0.0, 0.1], affine=affine), faces, parts, 112, 112
    )
    warped = cv2.warpAffine(full, affine_for_cv2(affine), (112, 112), flags=cv2.INTER_NEAREST)
    assert (direct > 0).sum() > 1000
    assert (direct == warped).mean() >= 0.999


# --- shading -----------------------------------------------------------------------------------


def _facing_square(z=2.0):
    """A square facing the camera (normal -z) and its fragments at 16 x 16."""
    camera = np.array([[-1.0, -1.0, z], [1.0, -1.0, z], [1.0, 1.0, z], [-1.0, 1.0, z]])
    intrinsics = np.array([[8.0 * z, 0.0, 8.0], [0.0, 8.0 * z, 8.0], [0.0, 0.0, 1.0]])  # fills the 16 x 16 image
    screen = perspective_to_screen(camera, intrinsics, np.eye(4))
    faces = np.array([[0, 3, 2], [0, 2, 1]])
    return camera, screen, faces, rasterize(screen, faces, 16, 16)


def test_lambert_and_ambient():
    camera, screen, faces, fragments = _facing_square()
    colors = np.tile([1.0, 0.5, 0.25], (2, 1))
    lit = shade(fragments, screen, faces, camera, face_colors=colors, light_dir=(0.0, 0.0, -1.0))
    np.testing.assert_array_equal(lit[fragments.mask], np.tile([255, 128, 64], (fragments.mask.sum(), 1)))
    grazing = shade(fragments, screen, faces, camera, face_colors=colors, light_dir=(1.0, 0.0, 0.0), ambient=0.35)
    np.testing.assert_array_equal(grazing[fragments.mask][0], np.round(255 * 0.35 * np.array([1.0, 0.5, 0.25])))
    oblique = shade(fragments, screen, faces, camera, face_colors=colors, light_dir=(0.0, -1.0, -1.0), ambient=0.0)
    np.testing.assert_array_equal(oblique[fragments.mask][0], np.round(255 * np.sqrt(0.5) * np.array([1.0, 0.5, 0.25])))
    assert lit.dtype == np.uint8 and lit.shape == (16, 16, 3)
    assert not lit[~fragments.mask].any()


def test_vertex_colours_interpolate_across_the_surface():
    camera, screen, faces, fragments = _facing_square()
    red_left = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 0, 1.0], [1.0, 0, 0]])  # left vertices red, right blue
    image = shade(fragments, screen, faces, camera, vertex_colors=red_left, light_dir=(0, 0, -1))
    assert fragments.mask.all()
    red, blue = image[8, :, 0].astype(int), image[8, :, 2].astype(int)
    assert np.all(np.diff(red) < 0) and np.all(np.diff(blue) > 0)
    assert np.all(np.abs(red + blue - 255) <= 1) and not image[..., 1].any()  # on the red-blue line
    assert abs(red[0] - 255 * 15.5 / 16) <= 1  # linear across the square: weight (16 - 0.5) / 16 at column 0
    with pytest.raises(ValueError, match="not both"):
        shade(fragments, screen, faces, camera, vertex_colors=red_left, face_colors=np.ones((2, 3)))


def test_texture_noise_is_reproducible_and_stays_on_the_body(procedural_model):
    model = procedural_model.models["neutral"]
    vertices, faces = model["v_template"] * [1.0, -1.0, -1.0], model["f"].astype(np.int64)
    screen = weak_perspective_to_screen(vertices, [0.9, 0.0, 0.1])
    camera = vertices + [0.0, 0.1, 2 * 5000 / (224 * 0.9)]
    fragments = rasterize(screen, faces, 112, 112)
    plain = shade(fragments, screen, faces, camera)
    noisy = shade(fragments, screen, faces, camera, texture_noise=0.2, rng=np.random.default_rng(5))
    again = shade(fragments, screen, faces, camera, texture_noise=0.2, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(noisy, again)
    assert (noisy != plain).any(axis=2)[fragments.mask].mean() > 0.5
    np.testing.assert_array_equal(plain.any(axis=2), fragments.mask)  # grey albedo, ambient > 0: no black pixels
    assert not noisy[~fragments.mask].any()


# --- processes and imports ---------------------------------------------------------------------


def _render_job(args):
    screen, faces, parts = args
    return render_part_labels(screen, faces, parts, 96, 96)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_render_the_same_maps(procedural_model, method):
    model = procedural_model.models["neutral"]
    vertices, faces = model["v_template"] * [1.0, -1.0, -1.0], model["f"].astype(np.int64)
    parts = np.arange(len(faces)) % 24
    jobs = [
        (weak_perspective_to_screen(vertices, cam, affine=[[96 / 224, 0, 0], [0, 96 / 224, 0]]), faces, parts)
        for cam in ([0.9, 0.0, 0.1], [1.1, 0.1, 0.0])
    ]
    expected = [_render_job(job) for job in jobs]
    with multiprocessing.get_context(method).Pool(2) as pool:
        results = pool.map(_render_job, jobs)
    for result, reference in zip(results, expected, strict=True):
        np.testing.assert_array_equal(result, reference)
    assert all((r > 0).sum() > 500 for r in results)


def test_importing_the_package_compiles_nothing():
    script = "import sys, preprocessing.render; print('numba' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"]


def test_fragments_mask_property():
    fragments = Fragments(face_index=np.array([[-1, 0], [3, -1]], np.int32), depth=np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(fragments.mask, [[False, True], [True, False]])
