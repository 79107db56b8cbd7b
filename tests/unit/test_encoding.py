"""Prompt encodings in each model convention, and their inverse."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from model_backend.core.affine import Affine
from model_backend.core.encoding import (Convention, CoordinateFrame, box_corners, chip_to_crs, crs_to_chip,
                                    resample_vertices)
from model_backend.core.errors import InvalidArgumentError
from model_backend.core.prompts import VisualPrompt


def test_square_unit_pads_centred_and_uses_two_decimals():
    f = CoordinateFrame(Convention.SQUARE_UNIT, 800, 400)  # padded to 800x800, 200 px above and below
    assert f.format_prompt(VisualPrompt.point(400, 0)) == "[0.50, 0.25]"
    assert f.format_prompt(VisualPrompt.box(0, 0, 800, 400)) == "[0.00, 0.25, 1.00, 0.75]"
    assert f.decode_point(0.5, 0.25) == pytest.approx((400, 0))


def test_rel_1000_and_clamping():
    f = CoordinateFrame(Convention.REL_1000, 640, 512)
    assert f.format_prompt(VisualPrompt.box(64, 51.2, 320, 512)) == "[100, 100, 500, 1000]"
    assert f.decode_box(500, 1000, 100, 100) == pytest.approx((64, 51.2, 320, 512))
    assert f.decode_point(1200, -5) == pytest.approx((640, 0))  # clamped into the image


def test_resized_pixels_needs_size_and_maps_back():
    with pytest.raises(InvalidArgumentError):
        CoordinateFrame(Convention.RESIZED_PIXELS, 1000, 500)
    f = CoordinateFrame(Convention.RESIZED_PIXELS, 1000, 500, resized_width=812, resized_height=420)
    assert f.format_prompt(VisualPrompt.point(500, 250)) == "[406, 210]"
    assert f.decode_point(406, 210) == pytest.approx((500, 250))


frames = st.one_of(
    st.builds(lambda c, w, h: CoordinateFrame(c, w, h), st.sampled_from(
        [Convention.CHIP_PIXELS, Convention.SQUARE_UNIT, Convention.REL_1000]),
        st.integers(1, 4096), st.integers(1, 4096)),
    st.builds(lambda w, h, rw, rh: CoordinateFrame(Convention.RESIZED_PIXELS, w, h, rw, rh),
              st.integers(1, 4096), st.integers(1, 4096), st.integers(28, 2048), st.integers(28, 2048)))


@given(frames, st.floats(0, 1), st.floats(0, 1))
def test_round_trip_within_rounding(frame, u, v):
    x, y = u * frame.chip_width, v * frame.chip_height
    mx, my = frame.to_model(x, y)
    rx, ry = frame.round(mx), frame.round(my)
    bx, by = frame.decode_point(float(rx), float(ry))
    # one model unit of rounding, expressed in chip pixels
    sx, _, sy, _ = frame._linear()
    step = {Convention.SQUARE_UNIT: 0.005, Convention.CHIP_PIXELS: 0.05}.get(frame.convention, 0.5)
    assert abs(bx - x) <= step / sx + 1e-9 and abs(by - y) <= step / sy + 1e-9
    assert np.isclose(frame.from_model(mx, my), (x, y), atol=1e-6 * max(frame.chip_width, frame.chip_height)).all()


def test_polygon_encoding_resamples_long_scribbles():
    t = np.linspace(0, 1, 500)
    s = VisualPrompt.scribble(np.column_stack([t * 100, t * 50]).tolist())
    enc = CoordinateFrame(Convention.REL_1000, 100, 50).encode(s, max_vertices=8)
    assert len(enc) == 8 and enc[0] == [0, 0] and enc[-1] == [1000, 1000]


def test_resample_ring_keeps_few_vertices_unchanged():
    ring = np.array([(0, 0), (1, 0), (1, 1)], float)
    assert resample_vertices(ring, 8, closed=True) is ring
    assert len(resample_vertices(np.random.default_rng(0).random((100, 2)), 10, closed=True)) == 10


def test_box_to_crs_polygon_on_rotated_chip():
    a = Affine.from_gdal((1000, 0, -2, 5000, 2, 0))  # 90 degree rotation
    corners = chip_to_crs(box_corners(0, 0, 10, 5), a)
    assert corners.tolist() == [[1000, 5000], [1000, 5020], [990, 5020], [990, 5000]]
    assert np.allclose(crs_to_chip(corners, a), box_corners(0, 0, 10, 5))
