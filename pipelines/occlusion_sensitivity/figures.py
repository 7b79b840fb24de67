"""The pictures of the occlusion sensitivity analysis, after the paper's Figures 1 and 3.

- :func:`joint_heatmaps` (Figure 1): for each of the 14 joints, how much the joint's error grows
  when the patch sits at each grid position (occluded minus clean), as a heat map over the image,
  the joint marked, one colour scale for all joints.
- :func:`part_sensitivity_figure` (Figure 3): the body in its rest pose, front and back, each part
  coloured by how much hiding it raises the error (mean over joints, occluded minus clean, weighted
  by how many of the part's pixels the patch hides); parts never hidden are grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pare_model.body_model.parts import face_parts
from pare_model.joint_sets import LSP14_JOINT_NAMES
from pipelines.file_names import printable_text
from pipelines.visualize.mesh_view import View, render_mesh, view_rotation

UNSEEN_GREY = np.array([170, 170, 170], np.float64)


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def joint_heatmaps(
    path: Path,
    image: np.ndarray,
    errors: np.ndarray,
    stride: int,
    joints_2d: np.ndarray | None,
    clean: np.ndarray,
    title: str,
    metric: str = "MPJPE",
) -> Path:
    """Figure 1: the input, then one panel per joint with its (side, side) error increase over the image.

    ``joints_2d``: (14, 3) pixel positions and whether each is known (marked when it is), or None.
    """
    side = errors.shape[0]
    size = image.shape[0]
    increase = errors - clean[None, None, :]
    figure = _figure(15, 9.6)
    axes = figure.subplots(3, 5)
    vmax = max(float(np.nanmax(increase)) if np.isfinite(increase).any() else 1.0, 1e-3)
    extent = (0, side * stride, side * stride, 0)
    axes[0, 0].imshow(image)
    axes[0, 0].set_title("input", fontsize=9)
    known = joints_2d[:, 2] > 0 if joints_2d is not None else np.zeros(14, bool)
    if known.any():
        axes[0, 0].scatter(
            joints_2d[known, 0], joints_2d[known, 1], s=10, c="yellow", edgecolors="black", linewidths=0.5
        )
    mappable = None
    for joint, name in enumerate(LSP14_JOINT_NAMES):
        ax = axes.flat[joint + 1]
        ax.imshow(image, alpha=0.55)
        mappable = ax.imshow(
            np.clip(increase[..., joint], 0.0, None),
            cmap="jet",
            alpha=0.55,
            vmin=0.0,
            vmax=vmax,
            extent=extent,
            interpolation="bilinear",
        )
        if known[joint]:
            ax.scatter([joints_2d[joint, 0]], [joints_2d[joint, 1]], marker="x", s=40, c="white", linewidths=2)
        ax.set_title(f"{name}: clean {clean[joint]:.0f} mm, up to +{np.nanmax(increase[..., joint]):.0f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xlim(0, size)
        ax.set_ylim(size, 0)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.colorbar(mappable, ax=axes, shrink=0.6, label=f"{metric} increase of the joint with the patch there (mm)")
    figure.suptitle(printable_text(title), fontsize=11)
    figure.savefig(path, dpi=90)
    return path


def part_sensitivity(errors: np.ndarray, clean: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """(24,) mean error increase (mm) when each part is hidden.

    Args:
        errors: (N, side, side, 14) occluded per-joint errors; clean: (N, 14);
        coverage: (N, side, side, 24) pixels of each part under the patch.
    """
    increase = errors.mean(axis=-1) - clean.mean(axis=-1)[:, None, None]  # (N, side, side)
    weights = coverage.astype(np.float64)
    total = weights.sum(axis=(0, 1, 2))
    weighted = (weights * increase[..., None]).sum(axis=(0, 1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / np.maximum(total, 1e-12), np.nan)


def _coloured_views(
    vertices: np.ndarray, faces: np.ndarray, part_map: np.ndarray, values: np.ndarray, vmax: float, cmap, size: int
) -> list[np.ndarray]:
    parts = face_parts(faces, part_map)
    per_part = np.array([cmap(v / vmax)[:3] if np.isfinite(v) else UNSEEN_GREY / 255 for v in values]) * 255
    colours = per_part[parts]
    views = []
    for yaw in (0.0, 180.0):
        view = View.fit(vertices, view_rotation(yaw), size, int(size * 1.3), margin=0.05)
        views.append(np.asarray(render_mesh(vertices, faces, colours, view)))
    return views


def part_sensitivity_figure(
    path: Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    part_map: np.ndarray,
    rows: dict[str, np.ndarray],
    title: str,
    size: int = 360,
) -> Path:
    """Figure 3: per metric a row of front and back views, parts coloured by :func:`part_sensitivity`."""
    import matplotlib

    figure = _figure(7.5, 5.2 * len(rows))
    axes = figure.subplots(len(rows), 2, squeeze=False)
    cmap = matplotlib.colormaps["inferno_r"]
    for row, (metric, values) in enumerate(rows.items()):
        finite = values[np.isfinite(values)]
        vmax = max(float(finite.max()) if len(finite) else 1.0, 1e-6)
        clipped = np.clip(values, 0.0, None)
        for column, (image, side) in enumerate(
            zip(_coloured_views(vertices, faces, part_map, clipped, vmax, cmap, size), ("front", "back"), strict=True)
        ):
            ax = axes[row, column]
            ax.imshow(image)
            ax.set_title(f"{metric}, {side}", fontsize=10)
            ax.axis("off")
        scalar = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0.0, vmax), cmap=cmap)
        figure.colorbar(
            scalar,
            ax=axes[row].tolist(),
            shrink=0.8,
            label=f"{metric} increase when the part is hidden (mm); grey: never hidden",
        )
    figure.suptitle(printable_text(title), fontsize=11)
    figure.savefig(path, dpi=90)
    return path
