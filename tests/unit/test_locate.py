"""From a geometry in any CRS to raster pixels, a chip and chip pixels, and back, on real rasters."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from osgeo import gdal
from pyproj import CRS, Transformer
from shapely.geometry import Point

from conftest import RASTERS
from model_backend.core.chip_plan import ChipSettings
from model_backend.geo.crs import parse_crs
from model_backend.core.encoding import Convention, CoordinateFrame, box_corners
from model_backend.core.errors import (AllNodataError, InvalidCRSError, InvalidPromptError, PromptOutsideRasterError)
from model_backend.geo.geometry import parse_wkt, prompt_from_geometry
from model_backend.geo.locate import chip_shape_to_crs, locate_prompt, read_scene
from model_backend.core.prompts import PromptKind, VisualPrompt
from model_backend.geo.raster import RasterSource

gdal.UseExceptions()
WGS84 = CRS.from_epsg(4326)


def _gdal_pixel_and_wgs84(path, col, row):
    """GDAL's forward transform of (col, row) to WGS84, and GDAL's inverse of that point back to
    pixels (for GCP rasters the fitted inverse polynomial differs from the forward one)."""
    ds = gdal.Open(path)
    tr = gdal.Transformer(ds, None, [])
    x, y = tr.TransformPoint(0, col, row)[1][:2]
    expected = tr.TransformPoint(1, x, y)[1][:2]
    with RasterSource(path) as src:
        return expected, Transformer.from_crs(src.crs, WGS84, always_xy=True).transform(x, y)


def test_point_in_wgs84_lands_on_gdals_pixel(raster_name):
    path = RASTERS[raster_name]
    with RasterSource(path) as src:
        col, row = src.width * 0.37, src.height * 0.61
    (col, row), (lon, lat) = _gdal_pixel_and_wgs84(path, col, row)
    with RasterSource(path) as src:
        loc = locate_prompt(src, VisualPrompt.point(lon, lat), WGS84, ChipSettings(min_size=64))
        assert not loc.clipped
        # through pyproj to WGS84 and back, the pixel agrees with GDAL's transformer within 1e-6 pixel
        assert abs(loc.pixel_geometry.x - col) < 1e-6 and abs(loc.pixel_geometry.y - row) < 1e-6
        # the chip prompt maps back through the chip affine onto the same raster-CRS point
        x, y = loc.chip.to_crs(np.array(loc.chip_prompt.vertices))[0]
        rc, rr = src.crs_to_raw(x, y)
        assert abs(rc - col) < 1e-6 and abs(rr - row) < 1e-6
        cx, cy = loc.chip_prompt.vertices[0]
        assert 0 <= cx <= loc.chip.width and 0 <= cy <= loc.chip.height


def test_box_in_epsg3857_on_rotated_raster_becomes_4_corner_polygon_in_pixels():
    path = RASTERS["rotated_complex"]
    with RasterSource(path) as src:
        to_3857 = Transformer.from_crs(src.crs, CRS.from_epsg(3857), always_xy=True)
        corners = [src.raw_to_crs(c, r) for c, r in [(60, 50), (140, 50), (140, 120), (60, 120)]]
        xs, ys = to_3857.transform([float(c[0]) for c in corners], [float(c[1]) for c in corners])
        box = VisualPrompt.box(min(xs), min(ys), max(xs), max(ys))
        loc = locate_prompt(src, box, CRS.from_epsg(3857), ChipSettings(min_size=32))
        assert loc.pixel_geometry.geom_type == "Polygon"
        assert len(loc.pixel_geometry.exterior.coords) == 5
        assert loc.chip_prompt.kind is PromptKind.BOX
        # the raster is turned by about 90 degrees: the 3857 box covers the pixel box (80 x 70 px)
        minx, miny, maxx, maxy = loc.pixel_geometry.bounds
        assert minx == pytest.approx(60, abs=2.5) and maxx == pytest.approx(140, abs=2.5)
        assert miny == pytest.approx(50, abs=2.5) and maxy == pytest.approx(120, abs=2.5)


def test_grounded_box_in_chip_maps_to_crs_polygon_and_back():
    """Inverse path: a model box in 0-1000 -> chip pixels -> 4-corner polygon in the raster CRS -> pixels."""
    path = RASTERS["sheared"]
    with RasterSource(path) as src:
        chip = read_scene(src, max_pixels=400 * 400)
        frame = CoordinateFrame(Convention.REL_1000, chip.width, chip.height)
        x1, y1, x2, y2 = frame.decode_box(250, 100, 500, 400)
        ring = chip.to_crs(box_corners(x1, y1, x2, y2))
        cols, rows = src.crs_to_raw(ring[:, 0], ring[:, 1])
        sx, sy = chip.plan.scale
        assert np.allclose(cols, np.array([x1, x2, x2, x1]) * sx, atol=1e-6)
        assert np.allclose(rows, np.array([y1, y1, y2, y2]) * sy, atol=1e-6)
        # in the sheared raster's CRS the box is a parallelogram, not an axis-aligned box
        assert ring[0, 1] != ring[1, 1]


def test_partly_outside_is_clipped_and_says_so():
    path = RASTERS["utm_landsat"]
    with RasterSource(path) as src:
        poly = VisualPrompt.polygon([(-50, 100), (100, 100), (100, 200), (-50, 200)])
        crs_poly = poly.transformed(src.raw_to_crs)
        loc = locate_prompt(src, crs_poly, src.crs, ChipSettings(min_size=16))
        assert loc.clipped
        assert loc.pixel_geometry.bounds == pytest.approx((0, 100, 100, 200))


def test_wholly_outside_is_refused():
    with RasterSource(RASTERS["utm_landsat"]) as src:
        with pytest.raises(PromptOutsideRasterError, match="outside the raster"):
            locate_prompt(src, VisualPrompt.point(2.35, 48.85), WGS84)  # Paris


def test_all_nodata_window_is_refused():
    with RasterSource(RASTERS["utm_landsat"]) as src:
        corner = VisualPrompt.point(*(float(v) for v in src.raw_to_crs(3, 3)))
        with pytest.raises(AllNodataError):
            locate_prompt(src, corner, src.crs, ChipSettings(min_size=8, context=0))


@pytest.mark.parametrize("wkt, message", [
    ("POINT EMPTY", "empty"), ("", "empty"), ("POINT (1 2", "cannot parse"),
    ("POLYGON ((0 0, 2 2, 2 0, 0 2, 0 0))", "not valid|crosses itself"),
    ("MULTIPOINT ((0 0), (1 1))", "one geometry"),
    ("POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 3 2, 3 3, 2 2))", "holes"),
])
def test_bad_geometries(wkt, message):
    with pytest.raises(InvalidPromptError, match=message):
        prompt_from_geometry(parse_wkt(wkt))


def test_bad_crs():
    with pytest.raises(InvalidCRSError, match="unknown CRS"):
        parse_crs("EPSG:999999")


def test_scene_chip_of_gcp_raster_is_north_up_in_wgs84():
    with RasterSource(RASTERS["gcp_grd"]) as src:
        chip = read_scene(src, max_pixels=256 * 256)
        assert chip.affine.is_north_up and chip.width * chip.height <= 256 * 256
        assert 0.5 < chip.valid.mean() < 0.9  # the warped footprint leaves a nodata collar
        assert chip.plan.source_overview == 4


def test_scene_extent_in_another_crs():
    with RasterSource(RASTERS["utm_landsat"]) as src:
        chip = read_scene(src, extent=(-78.0, 24.0, -77.5, 24.5), extent_crs=WGS84)
        assert chip.plan.window.width < src.width and chip.plan.window.height < src.height


@settings(max_examples=40)
@given(st.floats(0.05, 0.95), st.floats(0.05, 0.95), st.floats(0.01, 0.2), st.floats(0.01, 0.2))
def test_box_round_trip_through_chip_and_encodings(u, v, du, dv):
    """A box in the raster CRS -> chip pixels -> 0-1000 -> chip pixels -> CRS lands where it started
    (to within the 0-1000 rounding)."""
    with RasterSource(RASTERS["mercator_aerial"]) as src:
        c1, r1 = u * src.width, v * src.height
        c2, r2 = min(c1 + du * src.width, src.width), min(r1 + dv * src.height, src.height)
        xs, ys = src.raw_to_crs([c1, c2], [r1, r2])
        box = VisualPrompt.box(xs[0], ys[0], xs[1], ys[1])
        loc = locate_prompt(src, box, src.crs, ChipSettings(max_pixels=512 * 512))
        frame = CoordinateFrame(Convention.REL_1000, loc.chip.width, loc.chip.height)
        decoded = frame.decode_box(*frame.encode(loc.chip_prompt))
        ring = loc.chip.to_crs(box_corners(*decoded))
        cols, rows = src.crs_to_raw(ring[:, 0], ring[:, 1])
        tol_c = 0.5 / 1000 * loc.chip.plan.window.width + 1e-6
        tol_r = 0.5 / 1000 * loc.chip.plan.window.height + 1e-6
        assert abs(cols.min() - c1) <= tol_c and abs(cols.max() - c2) <= tol_c
        assert abs(rows.min() - r1) <= tol_r and abs(rows.max() - r2) <= tol_r


def test_point_geometry_kind_conversions():
    assert prompt_from_geometry(Point(1, 2)).kind is PromptKind.POINT
    assert prompt_from_geometry(parse_wkt("LINESTRING (0 0, 1 1, 2 0)")).kind is PromptKind.SCRIBBLE
    assert prompt_from_geometry(parse_wkt("LINESTRING (0 0, 1 1)"), "box").kind is PromptKind.BOX
    with pytest.raises(InvalidPromptError, match="cannot be a polygon"):
        prompt_from_geometry(Point(1, 2), "polygon")


def test_grounded_box_on_rotated_chip_to_wgs84_is_a_4_corner_polygon():
    """Model box (0-1000) -> chip pixels -> raster CRS -> EPSG:4326, each corner as GDAL/osr computes it."""
    from osgeo import osr
    path = RASTERS["rotated_complex"]
    with RasterSource(path) as src:
        chip = read_scene(src)
        frame = CoordinateFrame(Convention.REL_1000, chip.width, chip.height)
        box = VisualPrompt.box(*frame.decode_box(100, 250, 600, 700))
        poly = chip_shape_to_crs(chip, box, WGS84)
        srs = osr.SpatialReference()
        srs.ImportFromWkt(src.crs.to_wkt())
    wgs = osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(srs, wgs)
    gt = gdal.Open(path).GetGeoTransform()
    corners = np.array(poly.exterior.coords)[:4]
    for (cx, cy), (lon, lat) in zip(box.outline(), corners):
        x, y = gdal.ApplyGeoTransform(gt, cx, cy)  # chip = whole raster at full resolution here
        elon, elat = ct.TransformPoint(x, y)[:2]
        assert abs(lon - elon) < 1e-9 and abs(lat - elat) < 1e-9
    # rotated by about 90 degrees: not an axis-aligned box in WGS84
    assert len({round(v, 9) for v in corners[:, 0]}) == 4


@settings(max_examples=40)
@given(st.floats(0.001, 0.999), st.floats(0.001, 0.999))
def test_pixel_wgs84_pixel_round_trip_on_sheared_raster(u, v):
    with RasterSource(RASTERS["sheared"]) as src:
        col, row = u * src.width, v * src.height
        lon, lat = Transformer.from_crs(src.crs, WGS84, always_xy=True).transform(*src.raw_to_crs(col, row))
        loc = locate_prompt(src, VisualPrompt.point(lon, lat), WGS84, ChipSettings(min_size=1024))  # whole raster: never all nodata
        assert abs(loc.pixel_geometry.x - col) < 1e-6 and abs(loc.pixel_geometry.y - row) < 1e-6
