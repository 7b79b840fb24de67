"""One synthetic picture: posed bodies seen by a camera over a procedural background, with occluders.

The image is composed in three layers: a background texture, the shaded bodies (all people of
the picture rasterised together in one z-buffer, so they hide each other correctly), and
optional occluding objects. The same rasterisation gives the exact part labels and the depth
map that decide which keypoints are visible.

Keypoint visibility (0 outside the image, 1 hidden, 2 visible): a keypoint inside the image is
hidden when an occluder covers its pixel, or when the nearest surface at its pixel is closer to
the camera than the keypoint minus a tolerance. Joints lie inside the body, so the tolerance
is the keypoint's own depth below the skin: twice its distance to the nearest mesh vertex plus
2 cm (a knee about 12 cm, a surface landmark such as the nose 2 cm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocessing.render import Fragments, part_labels, rasterize, shade
from preprocessing.synth.occluder_shapes import occluder_mask, occluder_pixels
from preprocessing.synth.textures import random_texture

VISIBILITY_MARGIN = 0.02
"""Metres added to every keypoint's depth tolerance (see the module docstring)."""


@dataclass(frozen=True)
class Lighting:
    """A directional light in the camera frame plus ambient light."""

    direction: np.ndarray  # (3,) unit vector from the surface towards the light
    ambient: float


def random_lighting(rng: np.random.Generator) -> Lighting:
    """A light from the camera's side of the scene (towards -z), from a random direction."""
    direction = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.3), -rng.uniform(0.4, 1.0)])
    return Lighting(direction / np.linalg.norm(direction), float(rng.uniform(0.3, 0.6)))


@dataclass(frozen=True)
class PersonView:
    """One posed body as the camera sees it.

    Attributes:
        screen: (V, 3) pixel x, y and camera depth z (from :mod:`preprocessing.render.cameras`).
        camera_vertices: (V, 3) vertices in the camera frame (for shading normals).
        vertex_colors: (V, 3) albedo in [0, 1].
    """

    screen: np.ndarray
    camera_vertices: np.ndarray
    vertex_colors: np.ndarray


@dataclass(frozen=True)
class SceneRender:
    """A composed picture and its exact ground truth maps.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) uint8 part labels of the bodies (0 background, part + 1), ignoring occluders.
        depth: (H, W) float32 camera depth of the nearest body surface (+inf background).
        person: (H, W) int16 index of the person seen at each pixel (-1 background).
        occluded: (H, W) bool pixels covered by an occluding object.
    """

    image: np.ndarray
    labels: np.ndarray
    depth: np.ndarray
    person: np.ndarray
    occluded: np.ndarray

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


def _stack_people(people: list[PersonView], faces: np.ndarray) -> tuple[np.ndarray, ...]:
    """One mesh holding every person: screen, camera vertices, colours and faces (offset per person)."""
    num_vertices = len(people[0].screen)
    screen = np.concatenate([p.screen for p in people])
    camera = np.concatenate([p.camera_vertices for p in people])
    colors = np.concatenate([p.vertex_colors for p in people])
    all_faces = np.concatenate([faces + k * num_vertices for k in range(len(people))])
    return screen, camera, colors, all_faces


@dataclass(frozen=True)
class OccluderLayer:
    """Occluding objects: (H, W) bool mask and the (H, W, 3) uint8 pixels painted where it is set."""

    mask: np.ndarray
    pixels: np.ndarray


def random_occluders(rng: np.random.Generator, height: int, width: int, box: np.ndarray) -> OccluderLayer:
    """1-3 textured shapes over ``box`` ((4,) ``[x0, y0, x1, y1]``, usually the person's box)."""
    mask = occluder_mask(rng, height, width, box)
    return OccluderLayer(mask, occluder_pixels(rng, mask))


def maybe_occluders(
    rng: np.random.Generator, probability: float, height: int, width: int, screen: np.ndarray
) -> OccluderLayer | None:
    """With ``probability``, occluders over the box of (V, 3) screen vertices; else None."""
    if rng.random() >= probability:
        return None
    return random_occluders(rng, height, width, screen_box(screen[:, :2]))


def render_scene(
    people: list[PersonView],
    faces: np.ndarray,
    face_parts: np.ndarray,
    background: np.ndarray,
    lighting: Lighting,
    occluders: OccluderLayer | None = None,
    texture_noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> SceneRender:
    """Compose background, bodies and occluders into one picture with its ground truth maps.

    Args:
        people: the bodies to draw (all share the topology ``faces``).
        faces: (F, 3) triangles; face_parts: (F,) part 0..23 of each face.
        background: (H, W, 3) uint8, which also sets the picture size.
        occluders: painted over everything; keypoints under them count as hidden.
        texture_noise, rng: per-pixel shading noise of the bodies and its source.
    """
    height, width = background.shape[:2]
    screen, camera, colors, all_faces = _stack_people(people, faces)
    fragments: Fragments = rasterize(screen, all_faces, height, width)
    shaded = shade(
        fragments,
        screen,
        all_faces,
        camera_vertices=camera,
        vertex_colors=colors,
        light_dir=lighting.direction,
        ambient=lighting.ambient,
        texture_noise=texture_noise,
        rng=rng,
    )
    body = fragments.face_index >= 0
    image = np.where(body[..., None], shaded, background)
    labels = part_labels(fragments, np.tile(face_parts, len(people)))
    person = np.where(body, fragments.face_index // len(faces), -1).astype(np.int16)
    occluded = np.zeros((height, width), bool)
    if occluders is not None:
        occluded = occluders.mask
        image = np.where(occluded[..., None], occluders.pixels, image)
    return SceneRender(image=image, labels=labels, depth=fragments.depth, person=person, occluded=occluded)


def render_random_scene(
    rng: np.random.Generator,
    people: list[PersonView],
    faces: np.ndarray,
    face_parts: np.ndarray,
    height: int,
    width: int,
    occluder_probability: float,
) -> SceneRender:
    """:func:`render_scene` with a random background, lighting, occluders and skin texture."""
    return render_scene(
        people,
        faces,
        face_parts,
        background=random_texture(rng, height, width),
        lighting=random_lighting(rng),
        occluders=maybe_occluders(rng, occluder_probability, height, width, people[0].screen),
        texture_noise=float(rng.uniform(0.0, 0.08)),
        rng=rng,
    )


def screen_box(points: np.ndarray) -> np.ndarray:
    """(4,) ``[x0, y0, x1, y1]`` bounding box of (N, 2) points."""
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def depth_tolerance(joints: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """(K,) how far below the skin each of (K, 3) joints lies, doubled, plus a margin (metres)."""
    distances = np.sqrt(((joints[:, None, :] - vertices[None, :, :]) ** 2).sum(-1)).min(axis=1)
    return 2.0 * distances + VISIBILITY_MARGIN


def keypoint_visibility(points: np.ndarray, tolerance: np.ndarray, scene: SceneRender) -> np.ndarray:
    """(K,) int visibility of (K, 3) screen keypoints (x, y, depth): 0 outside, 1 hidden, 2 visible.

    A keypoint at continuous coordinates ``(x, y)`` lies in pixel ``(floor(y), floor(x))``.
    """
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    inside = (x >= 0) & (x < scene.width) & (y >= 0) & (y < scene.height) & (z > 0)
    visibility = np.zeros(len(points), np.int64)
    rows = np.clip(np.floor(y).astype(np.int64), 0, scene.height - 1)
    cols = np.clip(np.floor(x).astype(np.int64), 0, scene.width - 1)
    surface = scene.depth[rows, cols].astype(np.float64)
    hidden = scene.occluded[rows, cols] | (surface < z - tolerance)
    visibility[inside] = np.where(hidden[inside], 1, 2)
    return visibility
