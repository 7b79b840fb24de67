"""Part-label rendering throughput on ONE CPU core: the numba rasterizer, and other renderers if installed.

A posed procedural body model (6890 vertices, 13776 faces) seen by 100 random weak-perspective
crop cameras; every figure excludes the first call (compilation or cache load, printed apart).
Prints figures only (never pass/fail). Run:  .venv/bin/python bench/render.py [--cameras 100]

pyrender, open3d and trimesh + embreex are timed in the same run when importable (dev-only;
not project dependencies), on the same meshes and cameras: open3d and trimesh cast one ray
per pixel centre, pyrender draws flat per-face colours.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SIZES = (224, 56)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _posed_bodies(num_poses: int, seed: int):
    """(P, 6890, 3) float64 posed procedural bodies (upright, y down), faces (F, 3), face parts (F,)."""
    import torch

    from pare_model.body_model import load_body_model
    from pare_model.body_model.parts import face_parts
    from pare_model.body_model.procedural.files import write_asset_folder
    from pare_model.body_model.procedural.generator import generate
    from pare_model.geometry import axis_angle_to_matrix

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        write_asset_folder(generate(0), Path(folder), "pkl")
        body = load_body_model(folder)
    generator = torch.Generator().manual_seed(seed)
    pose = 0.35 * torch.randn(num_poses, 24, 3, generator=generator)
    pose[:, 0] = torch.tensor([np.pi, 0.0, 0.0]) + 0.2 * torch.randn(num_poses, 3, generator=generator)
    rotations = axis_angle_to_matrix(pose)
    with torch.no_grad():
        vertices = body(rotations[:, :1], rotations[:, 1:], torch.randn(num_poses, 10, generator=generator))["vertices"]
    faces = body.faces.numpy().astype(np.int64)
    return vertices.double().numpy(), faces, face_parts(faces, body.part_map.numpy())


def _cameras(num: int, seed: int) -> np.ndarray:
    """(N, 3) weak-perspective cameras [s, tx, ty] that keep the body in the crop."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0.7, 1.1, num), rng.uniform(-0.15, 0.15, num), rng.uniform(-0.1, 0.25, num)], 1)


def _rate(function: Callable, items: list, passes: int) -> tuple[float, float]:
    """(calls per second of the best pass, of the median pass) of ``function`` over ``items``."""
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        for item in items:
            function(item)
        times.append(time.perf_counter() - start)
    return len(items) / min(times), len(items) / float(np.median(times))


def _numba_rows(cases, faces, parts, passes):
    """Figures of the project's renderer: {name: {size: (best, median) per second}} and first-call seconds."""
    from preprocessing.render import rasterize, render_part_labels, scale_affine, shade, weak_perspective_to_screen

    screens = {
        size: [weak_perspective_to_screen(v, c, affine=scale_affine(size / 224)) for v, c, _ in cases] for size in SIZES
    }
    start = time.perf_counter()
    render_part_labels(screens[224][0], faces, parts, 224, 224)
    first_call = time.perf_counter() - start
    for size in SIZES:  # warm every compiled variant before timing
        shade(rasterize(screens[size][0], faces, size, size), screens[size][0], faces, cases[0][2], face_colors=None)
        render_part_labels(screens[size][0], faces, parts, size, size)
    rows = {
        "projection (weak perspective)": {},
        "label map": {},
        "fragments (face index + depth)": {},
        "shaded colour image": {},
    }
    for size in SIZES:
        affine = scale_affine(size / 224)
        rows["projection (weak perspective)"][size] = _rate(
            lambda case, affine=affine: weak_perspective_to_screen(case[0], case[1], affine=affine), cases, passes
        )
        rows["label map"][size] = _rate(
            lambda s, size=size: render_part_labels(s, faces, parts, size, size), screens[size], passes
        )
        rows["fragments (face index + depth)"][size] = _rate(
            lambda s, size=size: rasterize(s, faces, size, size), screens[size], passes
        )
        pairs = list(zip(screens[size], [case[2] for case in cases], strict=True))
        rows["shaded colour image"][size] = _rate(
            lambda pair, size=size: shade(rasterize(pair[0], faces, size, size), pair[0], faces, pair[1]), pairs, passes
        )
    return rows, first_call


def _pixel_rays(size: int) -> np.ndarray:
    """(size * size, 3) unit camera-space rays through the pixel centres of a crop of ``size`` px."""
    scale = 224 / size
    columns, rows = np.meshgrid((np.arange(size) + 0.5) * scale, (np.arange(size) + 0.5) * scale)
    rays = np.stack([(columns.ravel() - 112) / 5000, (rows.ravel() - 112) / 5000, np.ones(columns.size)], axis=1)
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def _open3d_renderer(faces, parts):
    import open3d as o3d

    table = np.concatenate([parts + 1, [0]]).astype(np.uint8)

    def render(camera_points, size):
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(camera_points.astype(np.float32), faces.astype(np.uint32))
        rays = np.concatenate([np.zeros((size * size, 3)), _pixel_rays(size)], axis=1).astype(np.float32)
        hit = scene.cast_rays(o3d.core.Tensor(rays))["primitive_ids"].numpy().astype(np.int64)
        return table[np.where(hit < len(faces), hit, -1)].reshape(size, size)

    return render


def _trimesh_renderer(faces, parts):
    import trimesh
    from trimesh.ray.ray_pyembree import RayMeshIntersector  # needs embreex

    table = np.concatenate([parts + 1, [0]]).astype(np.uint8)

    def render(camera_points, size):
        mesh = trimesh.Trimesh(vertices=camera_points, faces=faces, process=False)
        directions = _pixel_rays(size)
        hit = RayMeshIntersector(mesh).intersects_first(np.zeros_like(directions), directions)
        return table[hit].reshape(size, size)

    return render


def _pyrender_renderer(faces, parts):
    import pyrender

    colors = np.random.default_rng(0).integers(1, 255, (24, 3), dtype=np.uint8)
    face_colors = np.concatenate([colors[parts], np.full((len(faces), 1), 255, np.uint8)], axis=1)
    renderers = {}

    def render(camera_points, size):
        if size not in renderers:
            renderers[size] = pyrender.OffscreenRenderer(size, size)
        # OpenGL looks down -z with y up: flip y and z of the camera frame (x right, y down, z forward).
        vertices = camera_points * [1.0, -1.0, -1.0]
        mesh = pyrender.Mesh.from_trimesh(_trimesh_with_face_colors(vertices, faces, face_colors), smooth=False)
        scene = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=[1.0, 1.0, 1.0])
        scene.add(mesh)
        focal = 5000 * size / 224
        scene.add(pyrender.IntrinsicsCamera(focal, focal, size / 2, size / 2, znear=0.1, zfar=1000.0))
        color, _ = renderers[size].render(scene, flags=pyrender.RenderFlags.FLAT)
        return color  # decoding colours back to labels is left out of the timing on purpose

    return render


def _trimesh_with_face_colors(vertices, faces, face_colors):
    import trimesh

    return trimesh.Trimesh(vertices=vertices, faces=faces, face_colors=face_colors, process=False)


OTHERS = {
    "open3d ray casting": _open3d_renderer,
    "trimesh + embreex ray casting": _trimesh_renderer,
    "pyrender flat colours": _pyrender_renderer,
}


def _other_rows(cases, faces, parts, passes):
    """{name: {size: (best, median)} or an explanation string} for renderers that are importable."""
    from preprocessing.render import FOCAL_LENGTH

    camera_points = [v + [c[1], c[2], 2 * FOCAL_LENGTH / (224 * c[0])] for v, c, _ in cases]
    rows = {}
    for name, build in OTHERS.items():
        try:
            render = build(faces, parts)
            render(camera_points[0], 224)  # first call: context and BVH set-up
        except ImportError as error:
            rows[name] = f"not installed ({error.name})"
            continue
        except Exception as error:  # a renderer that imports but cannot run here (no GL context, ...)
            rows[name] = f"failed: {type(error).__name__}: {str(error)[:80]}"
            continue
        rows[name] = {size: _rate(lambda p, r=render, size=size: r(p, size), camera_points, passes) for size in SIZES}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=100, help="random cameras (one posed body each)")
    parser.add_argument("--poses", type=int, default=10, help="distinct random poses, cycled over the cameras")
    parser.add_argument("--passes", type=int, default=5, help="timed passes over all cameras; best and median shown")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # before numba is imported (on first render)
    import numba

    bodies, faces, parts = _posed_bodies(args.poses, seed=0)
    cameras = _cameras(args.cameras, seed=1)
    from preprocessing.render import FOCAL_LENGTH

    cases = []
    for index, cam in enumerate(cameras):
        vertices = bodies[index % len(bodies)]
        cases.append((vertices, cam, vertices + [cam[1], cam[2], 2 * FOCAL_LENGTH / (224 * cam[0])]))
    print(
        f"machine: {_cpu_model()}, {os.cpu_count()} cores visible, one used; python {platform.python_version()}, "
        f"numpy {np.__version__}, numba {numba.__version__}, NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}"
    )
    print(
        f"mesh: {bodies.shape[1]} vertices, {len(faces)} faces; {len(cases)} cameras over {len(bodies)} poses; "
        f"best / median of {args.passes} passes"
    )
    rows, first_call = _numba_rows(cases, faces, parts, args.passes)
    print(f"first label map (compile, or load from the numba cache): {first_call:.2f} s\n")
    rows.update(_other_rows(cases, faces, parts, args.passes))
    header = "".join(f"{f'{size}x{size} per s (best / median)':>32}" for size in SIZES)
    print(f"{'step':<34}{header}")
    for name, figures in rows.items():
        if isinstance(figures, str):
            print(f"{name:<34}{figures:>32}")
            continue
        cells = "".join(
            f"{f'{best:,.0f} / {median:,.0f}  ({1e6 / best:,.0f} us)':>32}" for best, median in figures.values()
        )
        print(f"{name:<34}{cells}")


if __name__ == "__main__":
    main()
