"""A contact sheet: many pictures of any sizes in a grid of equal cells, with captions and a title."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT_COLOR = (20, 20, 20)
GAP = 6


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit(tile: Image.Image, width: int, height: int) -> Image.Image:
    """``tile`` scaled to fit (width, height), aspect kept, centred on the background colour."""
    scale = min(width / tile.width, height / tile.height)
    size = (max(1, round(tile.width * scale)), max(1, round(tile.height * scale)))
    cell = Image.new("RGB", (width, height), BACKGROUND)
    cell.paste(tile.resize(size, Image.Resampling.BILINEAR), ((width - size[0]) // 2, (height - size[1]) // 2))
    return cell


def _shorten(text: str, font: ImageFont.ImageFont, width: int) -> str:
    """``text``, or its end after an ellipsis, so that it fits in ``width`` pixels (file names differ at the end)."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength("..." + text) > width:
        text = text[1:]
    return "..." + text


def contact_sheet(
    tiles: Sequence[np.ndarray | Image.Image],
    columns: int,
    captions: Sequence[str] | None = None,
    title: str | None = None,
    cell_size: tuple[int, int] = (240, 240),
) -> Image.Image:
    """Lay ``tiles`` out row by row, ``columns`` per row, each scaled into a ``cell_size`` (w, h) cell.

    Args:
        tiles: (H, W, 3) uint8 arrays or PIL images.
        captions: one line under each tile (optional; same length as ``tiles``).
        title: a line above the grid (optional).
    """
    if not tiles:
        raise ValueError("contact_sheet needs at least one tile")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if captions is not None and len(captions) != len(tiles):
        raise ValueError(f"{len(captions)} captions for {len(tiles)} tiles")
    width, height = cell_size
    caption_height = max(12, height // 14) + 4 if captions is not None else 0
    title_height = max(20, width // 8) if title else 0
    rows = -(-len(tiles) // columns)
    sheet = Image.new(
        "RGB",
        (columns * (width + GAP) + GAP, title_height + rows * (height + caption_height + GAP) + GAP),
        BACKGROUND,
    )
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((GAP, GAP), title, fill=TEXT_COLOR, font=_font(max(14, title_height - 2 * GAP)))
    for k, tile in enumerate(tiles):
        row, column = divmod(k, columns)
        picture = tile if isinstance(tile, Image.Image) else Image.fromarray(np.asarray(tile, dtype=np.uint8))
        x = GAP + column * (width + GAP)
        y = title_height + GAP + row * (height + caption_height + GAP)
        sheet.paste(_fit(picture.convert("RGB"), width, height), (x, y))
        if captions is not None:
            font = _font(caption_height - 4)
            draw.text((x, y + height + 2), _shorten(captions[k], font, width), fill=TEXT_COLOR, font=font)
    return sheet
