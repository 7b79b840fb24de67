"""Synthetic people from the front and from the back: what tells a picture which way a person faces."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipelines.visualize.mesh_view import View, render_mesh, view_rotation

CAPTION_HEIGHT = 24
TITLE_HEIGHT = 40


def people_sheet(
    vertices: np.ndarray, faces: np.ndarray, vertex_colors: list[np.ndarray], title: str, panel_size: int = 260
) -> Image.Image:
    """One column per person, front view above the back view.

    Args:
        vertices: (V, 3) posed body, y up, facing +z (every person wears it).
        faces: (F, 3) triangles; vertex_colors: per person (V, 3) albedo in [0, 1].
    """
    font = ImageFont.load_default(size=15)
    width, height = panel_size * len(vertex_colors), TITLE_HEIGHT + 2 * (panel_size + CAPTION_HEIGHT)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((12, 10), title, fill=(0, 0, 0), font=ImageFont.load_default(size=20))
    for column, colors in enumerate(vertex_colors):
        face_colors = 255.0 * colors[faces].mean(axis=1)
        for row, (caption, yaw) in enumerate((("front", 0.0), ("back", 180.0))):
            view = View.fit(vertices, view_rotation(yaw, 8.0), panel_size, panel_size, margin=0.05)
            image = render_mesh(vertices, faces, face_colors, view, background=(205, 210, 215))
            top = TITLE_HEIGHT + row * (panel_size + CAPTION_HEIGHT)
            sheet.paste(image, (column * panel_size, top))
            draw.text(
                (column * panel_size + 8, top + panel_size + 3),
                f"person {column + 1}, {caption}",
                fill=(20, 20, 20),
                font=font,
            )
    return sheet
