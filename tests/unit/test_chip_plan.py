"""Chip planning: windows stay inside the raster, contain the prompt, and respect the pixel budget."""

import math

import pytest
from hypothesis import assume, given, strategies as st

from model_backend.core.affine import Affine
from model_backend.core.chip_plan import ChipSettings, clip_bounds, plan_prompt_chip, plan_scene_chip
from model_backend.core.errors import InvalidArgumentError, PromptOutsideRasterError


@st.composite
def prompt_on_raster(draw):
    w = draw(st.integers(1, 40000))
    h = draw(st.integers(1, 40000))
    x1 = draw(st.floats(0, w))
    y1 = draw(st.floats(0, h))
    x2 = draw(st.floats(x1, w))
    y2 = draw(st.floats(y1, h))
    return (x1, y1, x2, y2), w, h


settings_st = st.builds(ChipSettings, context=st.floats(0, 3), max_pixels=st.integers(4096, 4_000_000),
                        min_size=st.integers(1, 2048))


@given(prompt_on_raster(), settings_st, st.lists(st.sampled_from([2, 4, 8, 16, 32, 64]), unique=True))
def test_plan_invariants(case, s, overviews):
    (x1, y1, x2, y2), w, h = case
    plan = plan_prompt_chip((x1, y1, x2, y2), w, h, s, overviews)
    win = plan.window
    assert 0 <= win.col_off and win.col_off + win.width <= w
    assert 0 <= win.row_off and win.row_off + win.height <= h
    assert win.col_off <= x1 + 1e-9 and x2 <= win.col_off + win.width + 1e-9
    assert win.row_off <= y1 + 1e-9 and y2 <= win.row_off + win.height + 1e-9
    assert plan.out_width * plan.out_height <= s.max_pixels
    assert plan.out_width >= 1 and plan.out_height >= 1
    assert win.width >= min(s.min_size, w) and win.height >= min(s.min_size, h)
    assert plan.source_overview in [1] + overviews
    assert plan.source_overview <= plan.overview_factor * (1 + 1e-9)
    if win.width * win.height <= s.max_pixels:
        assert (plan.out_width, plan.out_height) == (win.width, win.height)
    else:  # the budget is used, not wasted: within one row/column of it
        sx, sy = plan.scale
        assert (plan.out_width + 1) * (plan.out_height + 1) > s.max_pixels
        assert abs(sx - sy) / max(sx, sy) < 0.5


def test_a_strip_longer_than_the_budget_keeps_one_row():
    """Found by the property test above: a 9266x2 window in a 4096-pixel budget once divided by zero."""
    plan = plan_prompt_chip((1580.2, 0.76, 7965.3, 0.76), 9266, 2, ChipSettings(context=2.38, max_pixels=4096,
                                                                                 min_size=1), [16])
    assert (plan.out_width, plan.out_height) == (4096, 1)


def test_point_near_edge_shifts_window_inside():
    plan = plan_prompt_chip((5, 995, 5, 995), 3000, 1000, ChipSettings(min_size=512))
    assert plan.window.as_dict() == {"col_off": 0, "row_off": 488, "width": 512, "height": 512}


def test_context_margin_around_box():
    plan = plan_prompt_chip((1000, 1000, 1100, 1050), 5000, 5000, ChipSettings(context=0.5, min_size=1))
    # 100 px larger side -> 50 px each side
    assert plan.window.as_dict() == {"col_off": 950, "row_off": 950, "width": 200, "height": 150}


def test_scene_plan_of_large_raster_uses_overview():
    plan = plan_scene_chip(30000, 30000, max_pixels=1024 * 1024, overviews=[2, 4, 8, 16, 32, 64])
    assert (plan.out_width, plan.out_height) == (1024, 1024)
    assert plan.overview_factor == pytest.approx(30000 / 1024)
    assert plan.source_overview == 16


def test_chip_affine_and_view_to_chip_agree():
    plan = plan_scene_chip(3000, 2000, max_pixels=300 * 200)
    view = Affine.from_gdal((500000, 10, 0, 4000000, 0, -10))
    chip = plan.chip_affine(view)
    assert chip.apply(300, 200) == pytest.approx(view.apply(3000, 2000))
    assert plan.view_to_chip().apply(3000, 2000) == pytest.approx((300, 200))


def test_clip_bounds():
    assert clip_bounds((-10, 5, 20, 30), 100, 100) == ((0.0, 5.0, 20.0, 30.0), True)
    assert clip_bounds((1, 1, 2, 2), 100, 100)[1] is False
    with pytest.raises(PromptOutsideRasterError):
        clip_bounds((101, 1, 120, 2), 100, 100)


@pytest.mark.parametrize("kwargs", [dict(context=-1), dict(max_pixels=10), dict(min_size=0),
                                    dict(context=math.inf)])
def test_bad_settings(kwargs):
    with pytest.raises(InvalidArgumentError):
        ChipSettings(**kwargs)


@given(st.integers(1, 50000), st.integers(1, 50000), st.integers(4096, 2_000_000))
def test_scene_budget(w, h, budget):
    assume(w * h > 0)
    plan = plan_scene_chip(w, h, max_pixels=budget)
    assert plan.out_width * plan.out_height <= budget
    assert plan.window.as_dict() == {"col_off": 0, "row_off": 0, "width": w, "height": h}
