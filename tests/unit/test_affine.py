"""Affine maps in GDAL order: inversion, composition and window affines."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from osgeo import gdal

from model_backend.core.affine import Affine

coord = st.floats(-1e6, 1e6, allow_nan=False)
small = st.floats(-50, 50, allow_nan=False).filter(lambda v: abs(v) > 1e-3)


@st.composite
def affines(draw):
    a = Affine(draw(coord), draw(small), draw(st.floats(-20, 20)), draw(coord), draw(st.floats(-20, 20)), draw(small))
    if abs(a.determinant) < 1e-2:
        a = Affine(a.x0, a.dx_dcol, 0.0, a.y0, 0.0, a.dy_drow)
    return a


@given(affines(), st.floats(-1e4, 1e4), st.floats(-1e4, 1e4))
def test_inverse_round_trip(a, col, row):
    x, y = a.apply(col, row)
    c2, r2 = a.inverse().apply(x, y)
    assert abs(c2 - col) < 1e-6 and abs(r2 - row) < 1e-6


@given(affines(), affines(), st.floats(-1e3, 1e3), st.floats(-1e3, 1e3))
def test_composition_applies_right_then_left(a, b, col, row):
    x1, y1 = (a * b).apply(col, row)
    x2, y2 = a.apply(*b.apply(col, row))
    assert np.allclose([x1, y1], [x2, y2], rtol=1e-9, atol=1e-6)


def test_matches_gdal_apply_geotransform():
    gt = (593124.119663189, -0.028569629858371578, -2.4998367499198335,
          5749208.249577077, 2.4998367499198335, -0.028569629858371578)
    a = Affine.from_gdal(gt)
    for col, row in [(0, 0), (10.5, 3.25), (199.99, 200)]:
        assert np.allclose(a.apply(col, row), gdal.ApplyGeoTransform(gt, col, row), atol=1e-9)
    inv = gdal.InvGeoTransform(gt)
    assert np.allclose(a.inverse().to_gdal(), inv, rtol=1e-12, atol=1e-9)


def test_window_affine_maps_chip_corner_to_window_corner():
    a = Affine.from_gdal((100.0, 2.0, 0.5, 200.0, 0.25, -2.0))
    w = a.window_affine(30, 40, 4.0, 4.0)
    assert np.allclose(w.apply(0, 0), a.apply(30, 40))
    assert np.allclose(w.apply(10, 5), a.apply(30 + 40, 40 + 20))


def test_degenerate_transform_cannot_be_inverted():
    with pytest.raises(ValueError, match="degenerate"):
        Affine(0, 1, 1, 0, 1, 1).inverse()


def test_pixel_size_of_rotated_transform():
    a = Affine.from_gdal((0, 0.0, -2.5, 0, 2.5, 0.0))
    assert a.pixel_size == pytest.approx((2.5, 2.5))
    assert not a.is_north_up
