"""Renderers: inside a mask only the style's rendering, outside nothing changes."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from numpy.typing import NDArray

from veil.core.frame import Frame
from veil.core.plan import MaskLayer, MaskPlan, MaskReason
from veil.core.region import Region
from veil.core.style import Style, StyleKind
from veil.render import FrameRenderer

W, H = 160, 120


def _frame(seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    image = rng.integers(60, 196, size=(H, W, 3), dtype=np.uint8)
    return Frame(image=image, pts=0, time_base=Fraction(1, 25), index=0)


def _layer(region: Region, style: Style) -> MaskLayer:
    box = region.bbox(W, H)
    return MaskLayer(box, region.rasterize_in(box, W, H), style, MaskReason.STATIC, "t")


SHAPES = {
    "rect": Region.rect(0.2, 0.15, 0.45, 0.5),
    "polygon": Region(np.array([[0.1, 0.9], [0.5, 0.1], [0.93, 0.8], [0.6, 0.62]])),
    "edge": Region.rect(0.8, 0.7, 0.4, 0.4),
}
STYLES = {
    "fill": Style(StyleKind.FILL, color=(10, 200, 30)),
    "mosaic": Style(StyleKind.MOSAIC, cell_size=8),
    "blur": Style(StyleKind.BLUR, blur_radius=8),
    "silhouette": Style(StyleKind.SILHOUETTE, color=(255, 0, 255)),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("style", STYLES)
def test_outside_every_mask_nothing_changes(shape: str, style: str) -> None:
    frame = _frame()
    layer = _layer(SHAPES[shape], STYLES[style])
    out = FrameRenderer().render(frame, MaskPlan(W, H, (layer,)))
    covered = MaskPlan(W, H, (layer,)).union()
    assert np.array_equal(out.image[~covered], frame.image[~covered])
    assert covered.any()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("style", ["fill", "silhouette"])
def test_fill_inside_is_exactly_the_colour(shape: str, style: str) -> None:
    frame = _frame()
    layer = _layer(SHAPES[shape], STYLES[style])
    out = FrameRenderer().render(frame, MaskPlan(W, H, (layer,)))
    covered = MaskPlan(W, H, (layer,)).union()
    assert (out.image[covered] == np.array(STYLES[style].color, np.uint8)).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_mosaic_cells_are_flat(shape: str) -> None:
    frame = _frame()
    cell = STYLES["mosaic"].cell_size
    layer = _layer(SHAPES[shape], STYLES["mosaic"])
    out = FrameRenderer().render(frame, MaskPlan(W, H, (layer,)))
    covered = MaskPlan(W, H, (layer,)).union()
    for y0 in range(0, H, cell):
        for x0 in range(0, W, cell):
            inside = covered[y0 : y0 + cell, x0 : x0 + cell]
            if not inside.any():
                continue
            colours = out.image[y0 : y0 + cell, x0 : x0 + cell][inside]
            assert (colours == colours[0]).all(), f"cell at {x0},{y0} is not flat"


def _same_cell_means(image: NDArray[np.uint8], cell: int, seed: int) -> NDArray[np.uint8]:
    """A different picture with the same mean in every cell of the grid: only detail
    finer than a cell differs."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-20, 21, size=image.shape).astype(np.int16)
    h, w = image.shape[:2]
    for y0 in range(0, h, cell):
        for x0 in range(0, w, cell):
            block = noise[y0 : y0 + cell, x0 : x0 + cell]
            block -= np.rint(block.mean(axis=(0, 1))).astype(np.int16)
            # Rounding may leave a small residue; push it into one pixel.
            block[0, 0] -= block.sum(axis=(0, 1))
    out = image.astype(np.int16) + noise
    assert out.min() >= 0, "test picture must not clip"
    assert out.max() <= 255, "test picture must not clip"
    return out.astype(np.uint8)


@pytest.mark.parametrize("style", ["mosaic", "blur"])
def test_no_detail_finer_than_the_cell_survives(style: str) -> None:
    """Two pictures that differ only in detail finer than the cell/radius give the
    same masked output: that detail cannot be recovered from the output."""
    frame = _frame(3)
    spec = STYLES[style]
    cell = spec.cell_size if spec.kind is StyleKind.MOSAIC else spec.blur_radius
    other = frame.with_image(_same_cell_means(frame.image, cell, seed=9))
    assert not np.array_equal(other.image, frame.image)
    layer = _layer(SHAPES["polygon"], spec)
    plan = MaskPlan(W, H, (layer,))
    a = FrameRenderer().render(frame, plan).image
    b = FrameRenderer().render(other, plan).image
    covered = plan.union()
    assert np.array_equal(a[covered], b[covered])


def test_blur_smooths_fine_detail() -> None:
    checker = ((np.indices((H, W)).sum(axis=0) % 2) * 255).astype(np.uint8)
    frame = Frame(np.repeat(checker[:, :, None], 3, axis=2), 0, Fraction(1, 25), 0)
    layer = _layer(Region.rect(0.0, 0.0, 1.0, 1.0), STYLES["blur"])
    out = FrameRenderer().render(frame, MaskPlan(W, H, (layer,))).image
    assert out.std() < 3.0
    assert abs(float(out.mean()) - 127.5) < 3.0


def test_input_frame_is_never_modified() -> None:
    frame = _frame()
    before = frame.image.copy()
    layers = tuple(_layer(SHAPES["rect"], s) for s in STYLES.values())
    FrameRenderer().render(frame, MaskPlan(W, H, layers))
    assert np.array_equal(frame.image, before)
    assert not frame.image.flags.writeable


def test_blur_over_a_fill_reveals_nothing_from_under_it() -> None:
    frame = _frame()
    fill = _layer(Region.rect(0.2, 0.2, 0.6, 0.6), Style(StyleKind.FILL, color=(0, 0, 0)))
    blur = _layer(Region.rect(0.0, 0.0, 1.0, 1.0), STYLES["blur"])
    out = FrameRenderer().render(frame, MaskPlan(W, H, (fill, blur))).image
    # The blur of a uniform black core stays exactly black well inside the fill.
    core = out[int(0.2 * H) + 16 : int(0.8 * H) - 16, int(0.2 * W) + 16 : int(0.8 * W) - 16]
    assert core.max() == 0


def test_full_frame_layer_hides_everything() -> None:
    frame = _frame()
    layer = MaskLayer.full_frame(W, H, Style(), MaskReason.FAIL_CLOSED)
    plan = MaskPlan(W, H, (layer,))
    assert plan.fully_masked
    out = FrameRenderer().render(frame, plan)
    assert out.image.max() == 0


def test_plan_for_another_size_is_refused() -> None:
    with pytest.raises(ValueError, match="plan is for"):
        FrameRenderer().render(_frame(), MaskPlan(W + 1, H, ()))
