"""CPU mesh rendering: part-label maps, depth, face index and shaded colour images.

A numba z-buffer rasterizer (no OpenGL, no GPU) for body meshes seen through PARE's
weak-perspective crop camera or a full pinhole camera, rendered straight into any crop frame
given by a 2 x 3 affine. Conventions (pixel centres, winding, ties, near plane) are stated in
:mod:`.cameras` and :mod:`.rasterize`. Importing this package compiles nothing and does not
import numba; the kernels compile on first use (about 15 s for all of them) and are cached on
disk next to the source. In Ray workers set ``NUMBA_CACHE_DIR`` to a writable folder shared
by the workers, so that they load the cache instead of compiling each, and
``NUMBA_NUM_THREADS=1``.
"""

from preprocessing.render.cameras import (
    CROP_SIZE,
    FOCAL_LENGTH,
    affine_for_cv2,
    apply_affine,
    compose_affine,
    crop_affine,
    invert_affine,
    perspective_to_screen,
    scale_affine,
    translation_affine,
    weak_perspective_to_screen,
    weak_perspective_translation,
)
from preprocessing.render.labels import labels_from_face_index, part_labels, render_part_labels
from preprocessing.render.rasterize import NEAR_PLANE, Fragments, rasterize
from preprocessing.render.shading import DEFAULT_LIGHT, shade

__all__ = [
    "CROP_SIZE",
    "DEFAULT_LIGHT",
    "FOCAL_LENGTH",
    "NEAR_PLANE",
    "Fragments",
    "affine_for_cv2",
    "apply_affine",
    "compose_affine",
    "crop_affine",
    "invert_affine",
    "labels_from_face_index",
    "part_labels",
    "perspective_to_screen",
    "rasterize",
    "render_part_labels",
    "scale_affine",
    "shade",
    "translation_affine",
    "weak_perspective_to_screen",
    "weak_perspective_translation",
]
