"""Anchor boxes in the OD API's order: `ssd_anchor_generator` and `multiscale_anchor_generator`.

Anchors are normalised [ymin, xmin, ymax, xmax] in float32, computed with the same float32 operations
in the same order as the OD API, so they match its tensors bit for bit or nearly so. Within a feature map
the order is row (y), then column (x), then the anchor shapes of that location.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

F32 = np.float32


def tile_anchors(
    grid_height: int,
    grid_width: int,
    scales: Sequence[float],
    aspect_ratios: Sequence[float],
    base_anchor_size: Sequence[float],
    anchor_stride: Sequence[float],
    anchor_offset: Sequence[float],
) -> np.ndarray:
    """Corners of len(scales) anchors (paired with aspect_ratios) at every cell of a grid, [H*W*A, 4]."""
    scales = np.asarray(scales, F32)
    ratio_sqrts = np.sqrt(np.asarray(aspect_ratios, F32))
    heights = scales / ratio_sqrts * F32(base_anchor_size[0])
    widths = scales * ratio_sqrts * F32(base_anchor_size[1])
    y_centers = np.arange(grid_height, dtype=F32) * F32(anchor_stride[0]) + F32(anchor_offset[0])
    x_centers = np.arange(grid_width, dtype=F32) * F32(anchor_stride[1]) + F32(anchor_offset[1])
    num = len(scales)
    y_grid = np.broadcast_to(y_centers[:, None, None], (grid_height, grid_width, num))
    x_grid = np.broadcast_to(x_centers[None, :, None], (grid_height, grid_width, num))
    h_grid = np.broadcast_to(heights[None, None, :], (grid_height, grid_width, num))
    w_grid = np.broadcast_to(widths[None, None, :], (grid_height, grid_width, num))
    centers = np.stack([y_grid, x_grid], axis=-1).reshape(-1, 2)
    sizes = np.stack([h_grid, w_grid], axis=-1).reshape(-1, 2)
    return np.concatenate([centers - F32(0.5) * sizes, centers + F32(0.5) * sizes], axis=1).astype(F32)


def ssd_box_specs(
    num_layers: int,
    min_scale: float,
    max_scale: float,
    scales: Sequence[float],
    aspect_ratios: Sequence[float],
    interpolated_scale_aspect_ratio: float,
    reduce_boxes_in_lowest_layer: bool,
) -> list[list[tuple[float, float]]]:
    """(scale, aspect_ratio) of every anchor shape per layer, as the OD API's create_ssd_anchors lists them."""
    if scales:
        layer_scales = [float(s) for s in scales] + [1.0]
    elif num_layers < 2:
        raise ValueError(f"ssd_anchor_generator.num_layers {num_layers}: needs at least 2 layers (or explicit scales)")
    else:
        layer_scales = [min_scale + (max_scale - min_scale) * i / (num_layers - 1) for i in range(num_layers)]
        layer_scales.append(1.0)
    specs = []
    for layer, (scale, scale_next) in enumerate(zip(layer_scales[:-1], layer_scales[1:])):
        if layer == 0 and reduce_boxes_in_lowest_layer:
            specs.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
            continue
        layer_specs = [(scale, float(ratio)) for ratio in aspect_ratios]
        if interpolated_scale_aspect_ratio > 0.0:
            layer_specs.append((float(np.sqrt(scale * scale_next)), interpolated_scale_aspect_ratio))
        specs.append(layer_specs)
    return specs


@dataclass(frozen=True)
class SsdAnchorGenerator:
    """`ssd_anchor_generator`: one list of (scale, aspect ratio) per feature map, grid-tiled over [0, 1]."""

    box_specs: tuple[tuple[tuple[float, float], ...], ...]
    base_anchor_size: tuple[float, float] = (1.0, 1.0)
    anchor_strides: tuple[tuple[int, int], ...] | None = None
    anchor_offsets: tuple[tuple[int, int], ...] | None = None

    def num_anchors_per_location(self) -> list[int]:
        """Anchor shapes per cell, one count per feature map."""
        return [len(specs) for specs in self.box_specs]

    def generate(
        self, feature_map_shapes: Sequence[tuple[int, int]], image_height: int, image_width: int
    ) -> np.ndarray:
        """All anchors, feature map after feature map, [N, 4] float32."""
        if len(feature_map_shapes) != len(self.box_specs):
            raise ValueError(f"{len(feature_map_shapes)} feature maps for {len(self.box_specs)} anchor layers")
        im_h, im_w = F32(image_height), F32(image_width)
        if self.anchor_strides:
            strides = [(F32(s[0]) / im_h, F32(s[1]) / im_w) for s in self.anchor_strides]
        else:
            strides = [(F32(1.0) / F32(h), F32(1.0) / F32(w)) for h, w in feature_map_shapes]
        if self.anchor_offsets:
            offsets = [(F32(o[0]) / im_h, F32(o[1]) / im_w) for o in self.anchor_offsets]
        else:
            offsets = [(F32(0.5) * s[0], F32(0.5) * s[1]) for s in strides]
        min_side = min(im_h, im_w)
        base = (min_side / im_h * F32(self.base_anchor_size[0]), min_side / im_w * F32(self.base_anchor_size[1]))
        grids = []
        for (grid_h, grid_w), specs, stride, offset in zip(feature_map_shapes, self.box_specs, strides, offsets):
            scales = [s for s, _ in specs]
            ratios = [r for _, r in specs]
            grids.append(tile_anchors(grid_h, grid_w, scales, ratios, base, stride, offset))
        return np.concatenate(grids, axis=0)


@dataclass(frozen=True)
class MultiscaleAnchorGenerator:
    """`multiscale_anchor_generator` (RetinaNet/FPN): per level, anchor_scale * 2^level sized anchors."""

    min_level: int
    max_level: int
    anchor_scale: float
    aspect_ratios: tuple[float, ...]
    scales_per_octave: int
    normalize_coordinates: bool = True

    def num_anchors_per_location(self) -> list[int]:
        """Anchor shapes per cell, one count per level."""
        per_cell = len(self.aspect_ratios) * self.scales_per_octave
        return [per_cell] * (self.max_level - self.min_level + 1)

    def generate(
        self, feature_map_shapes: Sequence[tuple[int, int]], image_height: int, image_width: int
    ) -> np.ndarray:
        """All anchors, level after level, [N, 4] float32 (normalised unless normalize_coordinates is false)."""
        levels = range(self.min_level, self.max_level + 1)
        if len(feature_map_shapes) != len(levels):
            raise ValueError(f"{len(feature_map_shapes)} feature maps for levels {self.min_level}..{self.max_level}")
        octave_scales = [2 ** (float(i) / self.scales_per_octave) for i in range(self.scales_per_octave)]
        # Aspect ratio is the slow index, octave scale the fast one.
        scales = [s for _ in self.aspect_ratios for s in octave_scales]
        ratios = [r for r in self.aspect_ratios for _ in octave_scales]
        grids = []
        for (grid_h, grid_w), level in zip(feature_map_shapes, levels):
            stride = 2**level
            # The OD API centres anchors in their cells only where the image size is a multiple of the stride.
            offset = (
                stride / 2.0 if image_height % stride == 0 else 0.0,
                stride / 2.0 if image_width % stride == 0 else 0.0,
            )
            base = (stride * self.anchor_scale, stride * self.anchor_scale)
            grid = tile_anchors(grid_h, grid_w, scales, ratios, base, (stride, stride), offset)
            if self.normalize_coordinates:
                scale = np.array([1.0 / F32(image_height), 1.0 / F32(image_width)] * 2, F32)
                grid = (grid * scale).astype(F32)
            grids.append(grid)
        return np.concatenate(grids, axis=0)
