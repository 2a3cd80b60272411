"""Static masks: configuration -> regions -> layers, cached per resolution, pixel-exact."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from veil.config.schema import MaskConfig, StyleConfig
from veil.core.frame import Frame
from veil.core.plan import MaskReason
from veil.core.region import Region
from veil.core.style import Style, StyleKind
from veil.policy.static import StaticPlanner, region_from_config, style_from_config
from veil.render import FrameRenderer

W, H = 160, 120


def _frame(width: int = W, height: int = H) -> Frame:
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Frame(image, pts=0, time_base=Fraction(1, 25), index=0)


def _mask(**fields: Any) -> MaskConfig:
    return MaskConfig.model_validate({"name": "m", **fields})


@pytest.mark.parametrize(
    ("color", "bgr"),
    [
        ("#ff0000", (0, 0, 255)),
        ("#00ff00", (0, 255, 0)),
        ("navy", (128, 0, 0)),
        ("1,2,3", (3, 2, 1)),
    ],
)
def test_style_colour_is_converted_to_bgr(color: str, bgr: tuple[int, int, int]) -> None:
    style = style_from_config(StyleConfig(style=StyleKind.MOSAIC, color=color, cell_size=12))
    assert style == Style(StyleKind.MOSAIC, color=bgr, cell_size=12)


def test_pixel_rect_covers_exactly_its_pixels() -> None:
    mask = _mask(units="pixels", rect=(10, 20, 30, 40))
    (layer,) = StaticPlanner([mask]).plan(_frame()).layers
    covered = np.zeros((H, W), bool)
    covered[layer.bbox.slices()] = layer.coverage
    expected = np.zeros((H, W), bool)
    expected[20:60, 10:40] = True
    np.testing.assert_array_equal(covered, expected)


def test_normalised_shapes_match_their_regions() -> None:
    rect = _mask(name="r", rect=(0.1, 0.2, 0.3, 0.4))
    poly = _mask(name="p", polygon=[(0.5, 0.1), (0.9, 0.5), (0.6, 0.9)])
    plan = StaticPlanner([rect, poly]).plan(_frame())
    expected = [
        Region.rect(0.1, 0.2, 0.3, 0.4).rasterize(W, H),
        Region(np.array([[0.5, 0.1], [0.9, 0.5], [0.6, 0.9]])).rasterize(W, H),
    ]
    assert [layer.label for layer in plan.layers] == ["r", "p"]
    for layer, want in zip(plan.layers, expected, strict=True):
        got = np.zeros((H, W), bool)
        got[layer.bbox.slices()] = layer.coverage
        np.testing.assert_array_equal(got, want)
        assert layer.reason is MaskReason.STATIC


def test_pixel_polygon_is_converted_with_the_frame_size() -> None:
    mask = _mask(units="pixels", polygon=[(16, 12), (80, 12), (80, 60)])
    region = region_from_config(mask, W, H)
    np.testing.assert_allclose(region.points, [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]])


def test_disabled_masks_are_left_out_and_order_is_kept() -> None:
    masks = [
        _mask(name="a", rect=(0, 0, 0.5, 0.5)),
        _mask(name="b", rect=(0.5, 0.5, 0.5, 0.5), enabled=False),
        _mask(name="c", rect=(0.2, 0.2, 0.2, 0.2), style="blur"),
    ]
    planner = StaticPlanner(masks)
    assert planner.mask_count == 2
    plan = planner.plan(_frame())
    assert [layer.label for layer in plan.layers] == ["a", "c"]
    assert [layer.style.kind for layer in plan.layers] == [StyleKind.FILL, StyleKind.BLUR]


def test_rasterised_once_per_resolution() -> None:
    planner = StaticPlanner([_mask(rect=(0.1, 0.1, 0.5, 0.5))])
    first = planner.plan(_frame()).layers
    again = planner.plan(_frame()).layers
    assert first is again
    bigger = planner.plan(_frame(2 * W, 2 * H)).layers
    want = Region.rect(0.1, 0.1, 0.5, 0.5).rasterize(2 * W, 2 * H)
    assert bigger[0].coverage.sum() == want.sum() == 4 * first[0].coverage.sum()
    assert not bigger[0].coverage.flags.writeable


def test_pixel_mask_beyond_the_picture_draws_nothing() -> None:
    plan = StaticPlanner([_mask(units="pixels", rect=(500, 500, 10, 10))]).plan(_frame())
    assert plan.layers == ()


def test_fill_is_exact_inside_and_nothing_changes_outside() -> None:
    masks = [
        _mask(name="a", polygon=[(0.1, 0.1), (0.6, 0.2), (0.3, 0.8)], color="#ff00ff"),
        _mask(name="b", units="pixels", rect=(100, 10, 40, 30), color="#123456"),
    ]
    frame = _frame()
    plan = StaticPlanner(masks).plan(frame)
    out = FrameRenderer().render(frame, plan).image
    inside_a = Region(np.array([[0.1, 0.1], [0.6, 0.2], [0.3, 0.8]])).rasterize(W, H)
    assert (out[inside_a] == (255, 0, 255)).all()
    assert (out[10:40, 100:140] == (0x56, 0x34, 0x12)).all()
    outside = ~plan.union()
    np.testing.assert_array_equal(out[outside], frame.image[outside])
