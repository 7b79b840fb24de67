"""A one-picture summary of a body model: views of the rest and posed body, parts and joints."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pare_model.body_model.parts import PART_NAMES, face_parts
from pipelines.visualize.mesh_view import View, draw_skeleton, render_mesh, view_rotation
from pipelines.visualize.palette import PART_COLORS

TITLE_HEIGHT = 56
LEGEND_ROW = 26
LEGEND_COLUMNS = 6
MARGIN = 16


@dataclass(frozen=True)
class BodyState:
    """A posed body: (V, 3) vertices and (24, 3) SMPL joints, y up, facing +z."""

    vertices: np.ndarray
    joints: np.ndarray


@dataclass(frozen=True)
class Panel:
    caption: str
    body: BodyState
    yaw: float
    pitch: float = 0.0


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _render_panel(
    panel: Panel, faces: np.ndarray, part_map: np.ndarray, parents: tuple[int, ...], size: int
) -> Image.Image:
    view = View.fit(panel.body.vertices, view_rotation(panel.yaw, panel.pitch), size, size, margin=0.06)
    colors = PART_COLORS[face_parts(faces, part_map)]
    image = render_mesh(panel.body.vertices, faces, colors, view)
    image = draw_skeleton(image, panel.body.joints, parents, view, PART_COLORS, radius=max(3.0, size / 110))
    ImageDraw.Draw(image).text((10, 8), panel.caption, fill=(30, 30, 30), font=_font(max(12, size // 26)))
    return image


def _legend(width: int) -> Image.Image:
    rows = -(-len(PART_NAMES) // LEGEND_COLUMNS)
    image = Image.new("RGB", (width, rows * LEGEND_ROW + MARGIN), "white")
    draw = ImageDraw.Draw(image)
    column_width = (width - 2 * MARGIN) // LEGEND_COLUMNS
    for part, name in enumerate(PART_NAMES):
        row, column = divmod(part, LEGEND_COLUMNS)
        x, y = MARGIN + column * column_width, row * LEGEND_ROW + 4
        draw.rectangle([x, y, x + 18, y + 18], fill=tuple(int(c) for c in PART_COLORS[part]), outline=(0, 0, 0))
        draw.text((x + 26, y + 1), f"{part + 1:>2} {name}", fill=(20, 20, 20), font=_font(15))
    return image


def body_sheet(
    panels: list[Panel],
    faces: np.ndarray,
    part_map: np.ndarray,
    parents: tuple[int, ...],
    title: str,
    panel_size: int = 480,
) -> Image.Image:
    """Panels side by side under a title, with the part legend (label ids 1..24) below."""
    rendered = [_render_panel(p, faces, part_map, parents, panel_size) for p in panels]
    width = panel_size * len(rendered)
    legend = _legend(width)
    sheet = Image.new("RGB", (width, TITLE_HEIGHT + panel_size + legend.height), "white")
    ImageDraw.Draw(sheet).text((MARGIN, 14), title, fill=(0, 0, 0), font=_font(24))
    for k, image in enumerate(rendered):
        sheet.paste(image, (k * panel_size, TITLE_HEIGHT))
    sheet.paste(legend, (0, TITLE_HEIGHT + panel_size))
    return sheet
