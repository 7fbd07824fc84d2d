"""Anchor generators: counts per layer, order within a layer, and the OD API's offset and scale rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfodkit.model.anchors import MultiscaleAnchorGenerator, SsdAnchorGenerator, ssd_box_specs

SSD_300_MAPS = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]


def _ssd_generator(**overrides) -> SsdAnchorGenerator:
    options = dict(
        num_layers=6, min_scale=0.2, max_scale=0.95, scales=[], aspect_ratios=[1.0, 2.0, 0.5, 3.0, 0.3333],
        interpolated_scale_aspect_ratio=1.0, reduce_boxes_in_lowest_layer=True,
    )
    options.update(overrides)
    return SsdAnchorGenerator(tuple(tuple(layer) for layer in ssd_box_specs(**options)))


def test_ssd_300_has_1917_anchors_with_3_then_6_per_cell() -> None:
    generator = _ssd_generator()
    assert generator.num_anchors_per_location() == [3, 6, 6, 6, 6, 6]
    anchors = generator.generate(SSD_300_MAPS, 300, 300)
    assert anchors.shape == (19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6, 4) == (1917, 4)
    assert anchors.dtype == np.float32


def test_ssd_lowest_layer_shapes_and_order() -> None:
    anchors = _ssd_generator().generate(SSD_300_MAPS, 300, 300)
    center = 0.5 / 19
    # First cell: (scale 0.1, ratio 1), (0.2, 2), (0.2, 0.5); then the next cell to the right.
    np.testing.assert_allclose(anchors[0], [center - 0.05, center - 0.05, center + 0.05, center + 0.05], atol=1e-6)
    half_h, half_w = 0.1 / math.sqrt(2), 0.1 * math.sqrt(2)
    wide = [center - half_h, center - half_w, center + half_h, center + half_w]
    tall = [center - half_w, center - half_h, center + half_w, center + half_h]
    np.testing.assert_allclose(anchors[1], wide, atol=1e-6)
    np.testing.assert_allclose(anchors[2], tall, atol=1e-6)
    next_x = 1.5 / 19
    np.testing.assert_allclose(anchors[3, [1, 3]], [next_x - 0.05, next_x + 0.05], atol=1e-6)
    np.testing.assert_allclose(anchors[3, [0, 2]], anchors[0, [0, 2]])


def test_ssd_interpolated_scale_and_last_layer() -> None:
    anchors = _ssd_generator().generate(SSD_300_MAPS, 300, 300)
    last = anchors[-6:]  # the 1x1 map: scale 0.95, and sqrt(0.95 * 1.0) for the interpolated anchor
    np.testing.assert_allclose(last[0], [0.5 - 0.475, 0.5 - 0.475, 0.5 + 0.475, 0.5 + 0.475], atol=1e-6)
    side = math.sqrt(0.95)
    np.testing.assert_allclose(last[5], [0.5 - side / 2, 0.5 - side / 2, 0.5 + side / 2, 0.5 + side / 2], atol=1e-6)


def test_ssd_options_change_the_anchor_set() -> None:
    plain = _ssd_generator(reduce_boxes_in_lowest_layer=False, interpolated_scale_aspect_ratio=0.0)
    assert plain.num_anchors_per_location() == [5] * 6
    explicit = _ssd_generator(scales=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    np.testing.assert_allclose(explicit.generate(SSD_300_MAPS, 300, 300)[-6, 2] - 0.5, 0.3, atol=1e-6)


def test_ssd_base_anchor_size_follows_image_aspect() -> None:
    square = _ssd_generator().generate(SSD_300_MAPS, 300, 300)
    wide = _ssd_generator().generate(SSD_300_MAPS, 300, 600)
    # On a 2:1 image, the same normalised anchor is half as wide.
    np.testing.assert_allclose(wide[-6, 3] - wide[-6, 1], (square[-6, 3] - square[-6, 1]) / 2, atol=1e-6)


def test_multiscale_fpn_320_anchor_count_order_and_offsets() -> None:
    generator = MultiscaleAnchorGenerator(3, 7, 4.0, (1.0, 2.0, 0.5), 2)
    maps = [(40, 40), (20, 20), (10, 10), (5, 5), (3, 3)]
    anchors = generator.generate(maps, 320, 320)
    assert generator.num_anchors_per_location() == [6] * 5
    assert anchors.shape == ((1600 + 400 + 100 + 25 + 9) * 6, 4) == (12804, 4)
    # Level 3, first cell: ratio 1 at octave scales 1 and sqrt(2), centred at (4, 4) pixels; base size 32.
    c = 4 / 320
    np.testing.assert_allclose(anchors[0], [c - 16 / 320, c - 16 / 320, c + 16 / 320, c + 16 / 320], atol=1e-6)
    half = 16 * math.sqrt(2) / 320
    np.testing.assert_allclose(anchors[1], [c - half, c - half, c + half, c + half], atol=1e-6)
    # 320 is not a multiple of 128, so level 7 anchors sit on cell corners (offset 0): first centre is 0.
    level7 = anchors[-9 * 6 :]
    np.testing.assert_allclose((level7[0, 0] + level7[0, 2]) / 2, 0.0, atol=1e-6)
    level6_first = anchors[-(9 + 25) * 6]
    np.testing.assert_allclose((level6_first[0] + level6_first[2]) / 2, 32 / 320, atol=1e-6)


def test_mismatched_feature_map_count_is_rejected() -> None:
    with pytest.raises(ValueError):
        _ssd_generator().generate(SSD_300_MAPS[:5], 300, 300)


def test_single_layer_without_scales_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        ssd_box_specs(1, 0.2, 0.95, [], [1.0], 1.0, True)
