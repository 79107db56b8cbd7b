"""Tests of model_backend.core.marks: prompt index masks, mark colours, drawn marks and the digit font."""

from __future__ import annotations

import ast
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_backend.core import marks
from model_backend.core.errors import InvalidArgumentError, InvalidPromptError
from model_backend.core.marks import (
    DIGIT_GLYPHS,
    PALETTE,
    default_point_radius,
    draw_marks,
    halo_colour,
    mark_line_width,
    pick_mark_colour,
    prompt_mask,
    render_number,
)
from model_backend.core.prompts import VisualPrompt, polygon_area

MARKS_PY = Path(marks.__file__)


def _reference_inside(ring, x, y):
    """Plain-Python even-odd ray cast, half-open on y (the rule the module documents)."""
    inside = False
    n = len(ring)
    for i in range(n):
        (ax, ay), (bx, by) = ring[i], ring[(i + 1) % n]
        if (ay <= y) != (by <= y):
            if x > ax + (y - ay) * (bx - ax) / (by - ay):
                inside = not inside
    return inside


# --------------------------------------------------------------------------------------------------
# prompt_mask


def test_box_aligned_to_pixel_edges_covers_exact_pixels():
    mask = prompt_mask([VisualPrompt.box(10, 5, 30, 12)], 64, 48)
    assert mask.shape == (48, 64) and mask.dtype == np.uint8
    assert int((mask == 1).sum()) == 20 * 7
    assert mask[5:12, 10:30].all() and mask[4, 10] == 0 and mask[5, 30] == 0 and mask[12, 29] == 0


def test_box_uses_pixel_centres():
    # [10.4, 12.6] holds the centres 10.5, 11.5, 12.5 only
    mask = prompt_mask([VisualPrompt.box(10.4, 0.0, 12.6, 1.0)], 20, 4)
    assert np.nonzero(mask[0])[0].tolist() == [10, 11, 12]
    assert int(mask.sum()) == 3


@given(
    x1=st.floats(-50, 150), y1=st.floats(-50, 150),
    w=st.floats(0.01, 120), h=st.floats(0.01, 120),
)
def test_box_count_matches_centre_rule(x1, y1, w, h):
    x2, y2 = x1 + w, y1 + h
    if not (x2 > x1 and y2 > y1):
        return
    mask = prompt_mask([VisualPrompt.box(x1, y1, x2, y2)], 100, 80)
    centres_x = np.arange(100) + 0.5
    centres_y = np.arange(80) + 0.5
    expected = int(((centres_x >= x1) & (centres_x <= x2)).sum()) * int(((centres_y >= y1) & (centres_y <= y2)).sum())
    assert int(mask.sum()) == expected


def test_large_triangle_area_within_two_percent():
    tri = [(20.3, 30.7), (900.2, 110.9), (400.6, 980.1)]
    mask = prompt_mask([VisualPrompt.polygon(tri)], 1024, 1024)
    area = abs(polygon_area(np.array(tri)))
    assert abs(int(mask.sum()) - area) / area < 0.02
    assert mask[int(tri[0][1] + tri[1][1] + tri[2][1]) // 3, int(tri[0][0] + tri[1][0] + tri[2][0]) // 3] == 1
    assert mask[1000, 1000] == 0 and mask[5, 5] == 0


def test_concave_polygon_leaves_its_notch_empty():
    u_shape = [(10, 10), (90, 10), (90, 90), (60, 90), (60, 40), (40, 40), (40, 90), (10, 90)]
    mask = prompt_mask([VisualPrompt.polygon(u_shape)], 100, 100)
    assert mask[70, 50] == 0  # inside the notch
    assert mask[70, 20] == 1 and mask[70, 80] == 1 and mask[20, 50] == 1
    assert int(mask.sum()) == 80 * 80 - 20 * 50


@settings(max_examples=60, deadline=None)
@given(
    cx=st.floats(-20, 60), cy=st.floats(-20, 60),
    radii=st.lists(st.floats(3, 40), min_size=3, max_size=12),
    phase=st.floats(0, 1),
)
def test_polygon_matches_reference_point_in_polygon(cx, cy, radii, phase):
    n = len(radii)
    angles = [2 * math.pi * (k + phase) / n for k in range(n)]
    ring = [(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in zip(radii, angles)]  # star-shaped: simple
    try:
        prompt = VisualPrompt.polygon(ring)
    except InvalidPromptError:
        return
    mask = prompt_mask([prompt], 48, 40)
    expected = np.array([[_reference_inside(ring, c + 0.5, r + 0.5) for c in range(48)] for r in range(40)])
    assert np.array_equal(mask.astype(bool), expected)


def test_overlapping_prompts_later_index_wins():
    first = VisualPrompt.box(0, 0, 20, 20, index=1)
    second = VisualPrompt.box(10, 10, 30, 30, index=2)
    mask = prompt_mask([first, second], 40, 40)
    assert mask[15, 15] == 2 and mask[5, 5] == 1 and mask[25, 25] == 2 and mask[35, 35] == 0
    assert int((mask == 1).sum()) == 400 - 100 and int((mask == 2).sum()) == 400


def test_point_disk_centred_on_its_pixel_and_symmetric():
    mask = prompt_mask([VisualPrompt.point(40.5, 30.5)], 101, 81, point_radius=5)
    assert mask[30, 40] == 1
    rows, cols = np.nonzero(mask)
    assert rows.min() == 25 and rows.max() == 35 and cols.min() == 35 and cols.max() == 45
    window = mask[25:36, 35:46]
    assert np.array_equal(window, window[::-1, :]) and np.array_equal(window, window[:, ::-1])
    assert np.array_equal(window, window.T)
    assert abs(int(mask.sum()) - math.pi * 25) < 0.15 * math.pi * 25


def test_point_default_radius_scales_with_chip():
    assert default_point_radius(1024, 512) == 10 and default_point_radius(64, 64) == 2
    mask = prompt_mask([VisualPrompt.point(512, 512)], 1024, 1024)
    rows, cols = np.nonzero(mask)
    assert cols.min() == 502 and cols.max() == 521  # centres 502.5 .. 521.5 lie within 10 of 512


def test_scribble_covers_line_and_not_far_from_it():
    mask = prompt_mask([VisualPrompt.scribble([(10, 10), (90, 90)])], 100, 100, line_width=4)
    for t in range(10, 90):
        assert mask[t, t] == 1
    assert mask[20, 21] == 1  # distance 0.71
    assert mask[20, 26] == 0 and mask[30, 20] == 0  # distance >= 4.2
    rows, cols = np.nonzero(mask)
    dist = np.abs((cols + 0.5) - (rows + 0.5)) / math.sqrt(2)
    assert dist.max() <= 2.0


def test_prompts_fully_outside_give_empty_mask():
    prompts = [
        VisualPrompt.box(-50, -50, -10, -10, 1),
        VisualPrompt.point(500, 30, 2),
        VisualPrompt.polygon([(200, 0), (300, 0), (250, 80)], 3),
        VisualPrompt.scribble([(0, -30), (60, -30)], 4),
    ]
    mask = prompt_mask(prompts, 64, 64)
    assert mask.shape == (64, 64) and not mask.any()


def test_prompt_partly_outside_is_clipped():
    prompts = [VisualPrompt.box(-10, -10, 5, 5), VisualPrompt.polygon([(-40, 50), (40, 50), (0, 90)], 2)]
    mask = prompt_mask(prompts, 64, 64)
    assert int((mask == 1).sum()) == 25
    assert mask[55, 0] == 2 and mask[63, 0] == 2


def test_prompt_mask_rejects_bad_arguments():
    with pytest.raises(InvalidArgumentError):
        prompt_mask([], 0, 10)
    with pytest.raises(InvalidArgumentError):
        prompt_mask([], 10, 10, point_radius=0)
    with pytest.raises(InvalidPromptError):
        prompt_mask([VisualPrompt.point(1, 1, index=256)], 10, 10)


def test_prompt_mask_fast_on_1024():
    rng = np.random.default_rng(0)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 2000))
    ring = np.c_[512 + 400 * np.cos(angles), 512 + 400 * np.sin(angles)]
    walk = np.cumsum(rng.normal(0, 3, (2000, 2)), axis=0) + 512
    prompts = [VisualPrompt.polygon(ring), VisualPrompt.scribble(walk, 2), VisualPrompt.box(0, 0, 1024, 1024, 3)]
    start = time.perf_counter()
    prompt_mask(prompts, 1024, 1024)
    assert time.perf_counter() - start < 2.0


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["point", "box", "polygon", "scribble"]),
    x=st.floats(-200, 300), y=st.floats(-200, 300), size=st.floats(1, 150),
)
def test_any_prompt_anywhere_masks_and_draws(kind, x, y, size):
    if kind == "point":
        p = VisualPrompt.point(x, y)
    elif kind == "box":
        p = VisualPrompt.box(x, y, x + size, y + size)
    elif kind == "polygon":
        p = VisualPrompt.polygon([(x, y), (x + size, y), (x, y + size)])
    else:
        p = VisualPrompt.scribble([(x, y), (x + size, y + size / 2), (x - size / 3, y + size)])
    mask = prompt_mask([p.with_index(3)], 97, 71)
    assert set(np.unique(mask).tolist()) <= {0, 3}
    image = np.full((71, 97, 3), 90, dtype=np.uint8)
    out = draw_marks(image, [p, p.with_index(2)])
    assert out.shape == image.shape and out.dtype == np.uint8
    minx, miny, maxx, maxy = p.bounds()
    if maxx < -10 or maxy < -10 or minx > 107 or miny > 81:  # well clear of the chip: nothing drawn
        assert not mask.any() and np.array_equal(out, image)


# --------------------------------------------------------------------------------------------------
# colours


@pytest.mark.parametrize("colour", PALETTE)
def test_uniform_image_never_gets_its_own_colour(colour):
    image = np.empty((32, 32, 3), dtype=np.uint8)
    image[:] = colour
    assert pick_mark_colour(image, np.ones((32, 32), dtype=bool)) != colour


def test_all_red_and_all_yellow():
    red = np.zeros((16, 16, 3), dtype=np.uint8)
    red[..., 0] = 255
    yellow = red.copy()
    yellow[..., 1] = 255
    assert pick_mark_colour(red, np.zeros((16, 16), dtype=bool)) != (255, 0, 0)
    assert pick_mark_colour(yellow, None) != (255, 255, 0)


def test_colour_looks_only_at_region():
    yellow, cyan = (255, 255, 0), (0, 255, 255)
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    image[:, :10] = yellow
    image[:, 10:] = cyan
    left = np.zeros((20, 20), dtype=bool)
    left[:, :10] = True
    assert pick_mark_colour(image, left) != yellow
    assert pick_mark_colour(image, ~left) != cyan
    assert pick_mark_colour(image, None) not in (yellow, cyan)


def test_colour_rejects_mismatched_region():
    with pytest.raises(InvalidArgumentError):
        pick_mark_colour(np.zeros((8, 8, 3), dtype=np.uint8), np.ones((4, 4), dtype=bool))


def test_halo_colour():
    assert halo_colour((255, 255, 0)) == (0, 0, 0)
    assert halo_colour((0, 64, 255)) == (255, 255, 255)
    assert halo_colour((255, 255, 255)) == (0, 0, 0)


# --------------------------------------------------------------------------------------------------
# draw_marks


def _grey(h=200, w=240):
    return np.full((h, w, 3), 128, dtype=np.uint8)


def test_draw_box_outline_only_and_input_untouched():
    image = _grey()
    before = image.copy()
    out = draw_marks(image, [VisualPrompt.box(40, 50, 160, 150)])
    assert np.array_equal(image, before)
    assert out is not image and out.dtype == np.uint8 and out.shape == image.shape
    changed = np.any(out != image, axis=2)
    for r, c in [(50, 100), (149, 100), (100, 40), (100, 159), (50, 40)]:
        assert changed[r, c], (r, c)
    assert not changed[60:140, 50:150].any()  # interior, far from the outline
    assert not changed[:45].any() and not changed[:, 165:].any()
    colour = out[50, 100]
    assert tuple(colour.tolist()) in PALETTE


def test_line_width_scales_with_image():
    assert mark_line_width(100, 100) == 2 and mark_line_width(1024, 768) == 4 and mark_line_width(4000, 10) == 16
    out = draw_marks(_grey(1024, 1024), [VisualPrompt.box(100, 100, 900, 900)])
    changed = np.any(out != 128, axis=2)
    assert int(changed[500, 90:110].sum()) == 4  # vertical edge at x = 100: columns 98..101


def test_draw_uses_given_colours():
    out = draw_marks(_grey(), [VisualPrompt.scribble([(20, 20), (200, 20)])], colours=[(1, 2, 3)])
    assert tuple(out[20, 100].tolist()) == (1, 2, 3)
    with pytest.raises(InvalidArgumentError):
        draw_marks(_grey(), [VisualPrompt.point(5, 5)], colours=[])


def test_drawn_colour_contrasts_with_background():
    red = np.zeros((100, 100, 3), dtype=np.uint8)
    red[..., 0] = 255
    out = draw_marks(red, [VisualPrompt.polygon([(20, 20), (80, 20), (50, 80)])])
    assert tuple(out[20, 50].tolist()) != (255, 0, 0)
    assert np.any(out[20, 50] != red[20, 50])


def test_point_has_dot_and_contrasting_halo():
    image = _grey(120, 120)
    out = draw_marks(image, [VisualPrompt.point(60.5, 60.5)])
    dot = tuple(out[60, 60].tolist())
    assert dot in PALETTE
    radius = int(default_point_radius(120, 120))
    halo = tuple(out[60, 60 + radius + 1].tolist())
    assert halo == halo_colour(dot)
    assert tuple(out[60, 60 + radius + 4].tolist()) == (128, 128, 128)


def test_polygon_closed_and_scribble_open():
    tri = [(20, 20), (180, 20), (100, 160)]
    closed = np.any(draw_marks(_grey(), [VisualPrompt.polygon(tri)]) != 128, axis=2)
    opened = np.any(draw_marks(_grey(), [VisualPrompt.scribble(tri)]) != 128, axis=2)
    # the closing edge (100,160) -> (20,20) passes through (60, 90)
    assert closed[90, 60] and not opened[90, 60]
    assert closed[20, 100] and opened[20, 100]


def test_numbered_marks_draw_digits():
    prompts = [VisualPrompt.box(40, 60, 120, 140, 1), VisualPrompt.point(180, 100, 2)]
    plain = draw_marks(_grey(), prompts, numbered=False)
    default = draw_marks(_grey(), prompts)
    numbered = draw_marks(_grey(), prompts, numbered=True)
    assert np.array_equal(default, numbered)
    extra = np.any(numbered != plain, axis=2)
    # box label above its top-left corner; point label beside the dot
    assert extra[:60, 30:80].any() and extra[80:120, 185:].any()
    assert draw_marks(_grey(), prompts[:1]).tolist() == draw_marks(_grey(), prompts[:1], numbered=False).tolist()


def test_label_stays_inside_image():
    out_plain = draw_marks(_grey(60, 60), [VisualPrompt.point(59, 1, 7)], numbered=False)
    out = draw_marks(_grey(60, 60), [VisualPrompt.point(59, 1, 7)], numbered=True)
    extra = np.any(out != out_plain, axis=2)
    assert extra.any()  # flipped to the left of the dot and moved down into the image


def test_wholly_outside_prompt_draws_nothing():
    image = _grey()
    out = draw_marks(image, [VisualPrompt.box(-100, -100, -50, -50), VisualPrompt.point(1000, 1000, 2)])
    assert np.array_equal(out, image)


def test_draw_rejects_non_rgb_uint8():
    with pytest.raises(InvalidArgumentError):
        draw_marks(np.zeros((10, 10), dtype=np.uint8), [])
    with pytest.raises(InvalidArgumentError):
        draw_marks(np.zeros((10, 10, 3), dtype=float), [])


# --------------------------------------------------------------------------------------------------
# font


def test_digit_glyphs_distinct():
    assert DIGIT_GLYPHS.shape == (10, 7, 5) and DIGIT_GLYPHS.dtype == bool
    flat = {g.tobytes() for g in DIGIT_GLYPHS}
    assert len(flat) == 10
    assert all(g.any() for g in DIGIT_GLYPHS)


def test_render_number_layout():
    one = render_number(1, 3)
    assert one.shape == (21, 15) and np.array_equal(one[::3, ::3], DIGIT_GLYPHS[1])
    twelve = render_number(12, 2)
    assert twelve.shape == (14, 22)
    assert np.array_equal(twelve[::2, :10:2], DIGIT_GLYPHS[1]) and np.array_equal(twelve[::2, 12::2], DIGIT_GLYPHS[2])
    assert not twelve[:, 10:12].any()


# --------------------------------------------------------------------------------------------------
# import hygiene


def test_marks_imports_only_numpy_stdlib_and_siblings():
    tree = ast.parse(MARKS_PY.read_text(encoding="utf-8"))
    allowed_relative = {"prompts", "errors"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                assert top == "numpy" or top in sys.stdlib_module_names, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level == 1 and node.module in allowed_relative, node.module
            else:
                top = node.module.split(".")[0]
                assert top == "numpy" or top == "__future__" or top in sys.stdlib_module_names, node.module
