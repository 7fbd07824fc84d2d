"""Draw boxes and class names onto an image with Pillow, one colour per class id."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Saturated colours that stay distinct on photos; class id i uses PALETTE[i % len(PALETTE)].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
)


def class_colour(class_id: int) -> tuple[int, int, int]:
    """The colour boxes of this class id are drawn in (ids outside the label map, e.g. -1, included)."""
    return PALETTE[class_id % len(PALETTE)]


def _text_colour(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    return (0, 0, 0) if 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] > 140 else (255, 255, 255)


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[str],
    class_ids: Sequence[int],
    line_width: int = 2,
) -> Image.Image:
    """A copy of the HxWx3 uint8 image with each box ([N, 4] normalised ymin, xmin, ymax, xmax) outlined
    in its class colour from its first to its last pixel, and its label on a filled tag above it."""
    canvas = Image.fromarray(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
    draw = ImageDraw.Draw(canvas)
    height, width = image.shape[:2]
    font = ImageFont.load_default(size=max(10, min(height, width) // 32))
    for (ymin, xmin, ymax, xmax), label, class_id in zip(np.asarray(boxes, dtype=np.float64), labels, class_ids):
        colour = class_colour(int(class_id))
        left, top = round(xmin * width), round(ymin * height)
        right, bottom = max(left, round(xmax * width) - 1), max(top, round(ymax * height) - 1)
        draw.rectangle((left, top, right, bottom), outline=colour, width=line_width)
        text_box = draw.textbbox((0, 0), label, font=font)
        text_w, text_h = text_box[2] - text_box[0] + 4, text_box[3] - text_box[1] + 4
        tag_top = top - text_h if top - text_h >= 0 else bottom + 1
        draw.rectangle((left, tag_top, left + text_w - 1, tag_top + text_h - 1), fill=colour)
        draw.text((left + 2 - text_box[0], tag_top + 2 - text_box[1]), label, fill=_text_colour(colour), font=font)
    return canvas
