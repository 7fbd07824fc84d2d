"""A deterministic LabelImg dataset: scikit-learn's real handwritten 8x8 digits composed onto cluttered scenes."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tfodkit.dataset.labelimg_xml import annotation_xml
from tfodkit.errors import TfodkitError

CLASS_NAMES: tuple[str, ...] = tuple(str(digit) for digit in range(10))
MIN_SIDE, MAX_SIDE = 240, 480  # image width and height, pixels
MIN_DIGIT, MAX_DIGIT = 16, 160  # height of a digit's ink, pixels
MAX_DIGITS = 6
MAX_IOU = 0.1  # digits may touch, never overlap heavily
INK_LEVEL = 0.3  # coverage from which a pixel counts as the digit's ink (and so lies inside its box)
MARGIN = 2  # pixels kept free at the image border, so no box is truncated
BLUR_ROOM = 3  # empty pixels around each digit's coverage map, for the blur to spread into
FILE_STEM = "digits_"
XML_DATABASE = "scikit-learn handwritten digits (tfodkit demo-data)"  # <source><database> of the XML files


@dataclasses.dataclass(frozen=True)
class DigitBox:
    """One digit: class name and its box as LabelImg stores it (integer pixel corners, xmax/ymax exclusive)."""

    name: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int


@dataclasses.dataclass(frozen=True)
class Scene:
    """A composed image, the same scene without its digits, and the digits' boxes."""

    image: np.ndarray  # HxWx3 uint8
    background: np.ndarray  # HxWx3 uint8
    boxes: tuple[DigitBox, ...]


@dataclasses.dataclass(frozen=True)
class Glyphs:
    """The bundled digits as coverage maps in 0..1 and their classes."""

    images: np.ndarray  # N x 8 x 8 float32
    targets: np.ndarray  # N int


def load_glyphs() -> Glyphs:
    """scikit-learn's 1,797 bundled handwritten digits (no download)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return Glyphs(images=(digits.images / 16.0).astype(np.float32), targets=digits.target.astype(int))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gradient, low-frequency texture and stripes in random colours, float32 0..255."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]

    def along(angle: float) -> np.ndarray:
        return xs * np.float32(math.cos(angle)) + ys * np.float32(math.sin(angle))

    ramp = along(rng.uniform(0.0, 2.0 * math.pi))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    start, end = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    pixels = start + ramp[..., None] * (end - start)
    cells = int(rng.integers(3, 20))
    coarse = np.clip(128 + 40 * rng.standard_normal((cells, cells, 3)), 0, 255).astype(np.uint8)
    texture = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float32)
    pixels += (texture - 128) * np.float32(rng.uniform(0.1, 1.1))
    if rng.random() < 0.4:
        phase = along(rng.uniform(0.0, math.pi)) * np.float32(2 * math.pi / rng.uniform(6, 40))
        pixels += np.sin(phase)[..., None] * rng.uniform(-30, 30, 3).astype(np.float32)
    return np.clip(pixels, 0, 255)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _draw_distractors(rng: np.random.Generator, image: Image.Image) -> None:
    """Strokes, arcs, blobs and frames that look like ink but are no digit."""
    draw = ImageDraw.Draw(image)
    width, height = image.size

    def point() -> tuple[float, float]:
        return float(rng.uniform(0, width)), float(rng.uniform(0, height))

    def bbox(max_size: float) -> tuple[float, float, float, float]:
        x, y = point()
        w, h = rng.uniform(4, max_size, 2)
        return x, y, x + float(w), y + float(h)

    for _ in range(int(rng.integers(2, 12))):
        kind = rng.integers(4)
        stroke = int(rng.integers(1, 7))
        colour = _random_colour(rng)
        if kind == 0:
            draw.line([point() for _ in range(int(rng.integers(2, 5)))], fill=colour, width=stroke, joint="curve")
        elif kind == 1:
            start = float(rng.uniform(0, 360))
            draw.arc(bbox(120), start, start + float(rng.uniform(40, 300)), fill=colour, width=stroke)
        elif kind == 2:
            draw.ellipse(bbox(40), fill=colour)
        else:
            draw.rectangle(bbox(160), outline=colour, width=stroke)


def _ink_rows(glyph: np.ndarray) -> int:
    """Rows of the 8x8 glyph that the contrast curve below turns into ink, to size digits by their ink height."""
    rows = np.flatnonzero(glyph.max(axis=1) >= 0.5)
    return int(rows[-1] - rows[0] + 1) if rows.size else glyph.shape[0]


def _digit_coverage(rng: np.random.Generator, glyph: np.ndarray, ink_height: float) -> np.ndarray:
    """Smoothly upscaled, stretched and rotated coverage map (0..1), cropped to its ink plus BLUR_ROOM."""
    padded = np.pad(glyph, 1)
    scale_y = ink_height / _ink_rows(glyph)
    scale_x = scale_y * rng.uniform(0.55, 1.0)  # handwriting is taller than the 8x8 grid
    size = (max(2, round(padded.shape[1] * scale_x)), max(2, round(padded.shape[0] * scale_y)))
    image = Image.fromarray(padded, mode="F").resize(size, Image.BICUBIC)
    image = image.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR, expand=True)
    # A smooth contrast curve turns the blurry upscale into strokes with soft edges.
    coverage = np.clip((np.asarray(image) - 0.4) / 0.25, 0.0, 1.0)
    coverage = coverage * coverage * (3.0 - 2.0 * coverage)
    rows, cols = np.flatnonzero(coverage.max(axis=1) > 0), np.flatnonzero(coverage.max(axis=0) > 0)
    return np.pad(coverage[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], BLUR_ROOM)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    overlap_w = min(a[2], b[2]) - max(a[0], b[0])
    overlap_h = min(a[3], b[3]) - max(a[1], b[1])
    if overlap_w <= 0 or overlap_h <= 0:
        return 0.0
    inter = overlap_w * overlap_h
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter)


def _contrasting_colour(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """A random colour whose luminance differs clearly from the region's mean."""
    luma = np.array([0.299, 0.587, 0.114])
    region_luma = float(region.reshape(-1, 3).mean(axis=0) @ luma)
    for _ in range(20):
        colour = rng.uniform(0, 255, 3)
        if abs(float(colour @ luma) - region_luma) >= 70:
            return colour
    return np.zeros(3) if region_luma > 127 else np.full(3, 255.0)


def _place(
    rng: np.random.Generator, shape: tuple[int, int], coverage: np.ndarray, boxes: list[tuple[int, int, int, int]]
) -> tuple[int, int, tuple[int, int, int, int]] | None:
    """Top-left corner of the coverage patch and its ink box, or None when it cannot go in without heavy overlap."""
    height, width = shape
    patch_h, patch_w = coverage.shape
    if patch_h > height - 2 * MARGIN or patch_w > width - 2 * MARGIN:
        return None
    rows, cols = np.flatnonzero(coverage.max(axis=1) >= INK_LEVEL), np.flatnonzero(coverage.max(axis=0) >= INK_LEVEL)
    for _ in range(30):
        top = int(rng.integers(MARGIN, height - MARGIN - patch_h + 1))
        left = int(rng.integers(MARGIN, width - MARGIN - patch_w + 1))
        box = (left + int(cols[0]), top + int(rows[0]), left + int(cols[-1]) + 1, top + int(rows[-1]) + 1)
        if all(_iou(box, other) <= MAX_IOU for other in boxes):
            return top, left, box
    return None


def _blurred(coverage: np.ndarray, blur: ImageFilter.GaussianBlur) -> np.ndarray:
    """The coverage map blurred like the background, so digit edges are as soft as the rest of the scene."""
    image = Image.fromarray(np.round(coverage * 255).astype(np.uint8), mode="L").filter(blur)
    return np.asarray(image, dtype=np.float32) / 255.0


def render_scene(rng: np.random.Generator, glyphs: Glyphs) -> Scene:
    """One image with 1-6 digits of random class, size, colour and pose on clutter, blurred and noisy."""
    height, width = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, 2))
    canvas = Image.fromarray(_background(rng, height, width).astype(np.uint8))
    _draw_distractors(rng, canvas)
    blur = ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.2)))
    background = np.asarray(canvas.filter(blur), dtype=np.float32)
    pixels = background.copy()
    boxes: list[tuple[int, int, int, int]] = []
    names: list[str] = []
    largest = min(MAX_DIGIT, 0.75 * min(height, width))
    for _ in range(int(rng.integers(1, MAX_DIGITS + 1))):
        index = int(rng.integers(len(glyphs.targets)))
        # Log-uniform ink height: as many small digits as large ones per octave.
        ink_height = math.exp(rng.uniform(math.log(MIN_DIGIT), math.log(largest)))
        coverage = _digit_coverage(rng, glyphs.images[index], ink_height)
        placed = _place(rng, (height, width), coverage, boxes)
        if placed is None:
            continue
        top, left, box = placed
        window = (slice(top, top + coverage.shape[0]), slice(left, left + coverage.shape[1]))
        colour = _contrasting_colour(rng, background[window])
        alpha = _blurred(coverage, blur)[..., None] * rng.uniform(0.85, 1.0)
        pixels[window] = pixels[window] * (1.0 - alpha) + colour * alpha
        boxes.append(box)
        names.append(CLASS_NAMES[glyphs.targets[index]])
    # Luminance grain: one value per pixel, shared by the three channels.
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(rng.uniform(2.0, 12.0))
    return Scene(
        image=np.clip(pixels + noise, 0, 255).astype(np.uint8),
        background=np.clip(background + noise, 0, 255).astype(np.uint8),
        boxes=tuple(DigitBox(name, *box) for name, box in zip(names, boxes)),
    )


def _file_names(num_images: int) -> list[tuple[str, str]]:
    width = max(4, len(str(num_images - 1)))
    return [(f"{FILE_STEM}{i:0{width}d}.jpg", f"{FILE_STEM}{i:0{width}d}.xml") for i in range(num_images)]


def _check_output_folder(out_dir: Path, names: set[str]) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise TfodkitError(f"--out {out_dir} exists and is not a folder")
    if not out_dir.exists():
        return
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in names)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TfodkitError(
            f"--out {out_dir} holds files this run would not write ({shown}); "
            "remove them or choose an empty folder, so the dataset is exactly what was generated"
        )


def write_dataset(out_dir: str | Path, num_images: int = 600, seed: int = 0) -> dict[str, int]:
    """Write `num_images` JPEG + LabelImg XML pairs into `out_dir`; returns boxes per class.

    Image i depends only on (seed, i), so the same seed gives byte-identical files and a smaller
    `num_images` gives a prefix of a larger set.
    """
    if num_images < 1:
        raise TfodkitError(f"--num-images must be at least 1, got {num_images}")
    if seed < 0:
        raise TfodkitError(f"--seed must be 0 or more, got {seed}")
    out_dir = Path(out_dir)
    file_names = _file_names(num_images)
    _check_output_folder(out_dir, {name for pair in file_names for name in pair})
    out_dir.mkdir(parents=True, exist_ok=True)
    glyphs = load_glyphs()
    counts = {name: 0 for name in CLASS_NAMES}
    for index, (image_name, xml_name) in enumerate(file_names):
        rng = np.random.default_rng([seed, index])
        scene = render_scene(rng, glyphs)
        buffer = io.BytesIO()
        Image.fromarray(scene.image).save(buffer, format="JPEG", quality=int(rng.integers(80, 96)))
        (out_dir / image_name).write_bytes(buffer.getvalue())
        height, width = scene.image.shape[:2]
        xml = annotation_xml(folder=out_dir.name, filename=image_name, path=image_name, database=XML_DATABASE,
                             width=width, height=height, objects=[dataclasses.astuple(box) for box in scene.boxes])
        (out_dir / xml_name).write_bytes(xml)
        for box in scene.boxes:
            counts[box.name] += 1
    return counts
