"""Masks -> polygons (model_backend.geo.masks): exact on the pixel grid, the same polygons as GDAL's own
gdal.Polygonize through a rotated or sheared geotransform, speck removal, simplification, areas in m²."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import CRS
from rasterio import features
from shapely.geometry import Polygon, box

from model_backend.core.affine import Affine
from model_backend.core.errors import InvalidArgumentError
from model_backend.geo.masks import area_m2, mask_polygons, polygons_to_crs

SYSTEM_PYTHON = "/usr/bin/python3"
#: run by the system Python (GDAL's own bindings): the mask as a band of a MEM dataset with the given
#: geotransform, polygonized with itself as mask band and GDAL's default (4-connected); WKT of value 1
GDAL_POLYGONIZE = """
import json, sys
from osgeo import gdal, ogr
gdal.UseExceptions()
job = json.load(sys.stdin)
ds = gdal.GetDriverByName("MEM").Create("", job["width"], job["height"], 1, gdal.GDT_Byte)
ds.SetGeoTransform(job["geotransform"])
band = ds.GetRasterBand(1)
band.WriteRaster(0, 0, job["width"], job["height"], bytes.fromhex(job["pixels"]))
driver = ogr.GetDriverByName("MEM") or ogr.GetDriverByName("Memory")
store = driver.CreateDataSource("out")  # kept: a layer dies with its data source
layer = store.CreateLayer("polygons")
layer.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
gdal.Polygonize(band, band, layer, 0, [])
print(json.dumps([f.GetGeometryRef().ExportToWkt() for f in layer if f.GetField(0) == 1]))
"""


def _disc(shape, centre, radius) -> np.ndarray:
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    return (rows + 0.5 - centre[0]) ** 2 + (cols + 0.5 - centre[1]) ** 2 <= radius ** 2


def random_mask(seed: int, shape=(310, 270)) -> np.ndarray:
    """Rings (discs with a hole), rectangles on all four edges and a corner, and 1 % random specks.
    Not square, so that a swap of rows and columns shows."""
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < 0.01
    for _ in range(8):
        centre, radius = rng.uniform(20, np.array(shape) - 20), rng.uniform(8, 30)
        mask |= _disc(shape, centre, radius)
        mask &= ~_disc(shape, centre, radius * rng.uniform(0.2, 0.6))
    h, w = shape
    mask[:12, 40:90] = mask[h - 9:, 100:130] = mask[60:75, :5] = mask[150:170, w - 3:] = mask[h - 4:, w - 4:] = True
    return mask


def rasterised(polygons, shape) -> np.ndarray:
    if not polygons:
        return np.zeros(shape, bool)
    return features.rasterize([(p, 1) for p in polygons], out_shape=shape, transform=rasterio.Affine.identity(),
                              all_touched=False, fill=0, dtype="uint8").astype(bool)


def ring_mask() -> np.ndarray:
    mask = np.zeros((20, 30), bool)
    mask[3:15, 5:25] = True
    mask[6:10, 9:20] = False
    return mask


def _coords(polygon: Polygon) -> np.ndarray:
    return np.concatenate([np.asarray(polygon.exterior.coords)] + [np.asarray(r.coords) for r in polygon.interiors])


MASKS = {"random_1": random_mask(1), "random_2": random_mask(2),
         "noise": np.random.default_rng(3).random((64, 80)) < 0.5,  # holes and components touching at corners
         "full": np.ones((7, 9), bool), "ring": ring_mask()}


@pytest.mark.parametrize("name", sorted(MASKS))
def test_polygons_lie_on_the_pixel_grid_and_rasterise_back_to_the_mask(name):
    mask = MASKS[name]
    polygons = mask_polygons(mask)
    assert polygons and all(isinstance(p, Polygon) and p.is_valid for p in polygons)
    for p in polygons:
        coords = _coords(p)
        assert np.array_equal(coords, np.round(coords))
        assert coords[:, 0].min() >= 0 and coords[:, 0].max() <= mask.shape[1]  # x = column
        assert coords[:, 1].min() >= 0 and coords[:, 1].max() <= mask.shape[0]  # y = row
    np.testing.assert_array_equal(rasterised(polygons, mask.shape), mask)
    assert sum(p.area for p in polygons) == mask.sum()
    assert shapely.union_all(polygons).area == mask.sum()  # no overlaps
    areas = [p.area for p in polygons]
    assert areas == sorted(areas, reverse=True)


def test_random_masks_have_several_components_with_holes_and_edge_regions():
    mask = MASKS["random_1"]
    polygons = mask_polygons(mask, min_area_px=50)
    assert len(polygons) >= 8 and sum(len(p.interiors) for p in polygons) >= 4
    bounds = np.array([p.bounds for p in polygons])
    assert bounds[:, 0].min() == 0 and bounds[:, 1].min() == 0
    assert bounds[:, 2].max() == mask.shape[1] and bounds[:, 3].max() == mask.shape[0]


def test_a_ring_is_one_polygon_with_one_hole():
    (polygon,) = mask_polygons(ring_mask())
    assert polygon.exterior.equals(box(5, 3, 25, 15).exterior)
    assert len(polygon.interiors) == 1 and Polygon(polygon.interiors[0]).equals(box(9, 6, 20, 10))
    assert polygon.area == 12 * 20 - 4 * 11


def test_components_are_4_connected_and_integer_masks_are_accepted():
    mask = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], np.uint8)  # a diagonal touch: two components
    polygons = mask_polygons(mask)
    assert [p.area for p in polygons] == [2.0, 1.0]
    assert polygons[0].equals(box(1, 1, 3, 2)) and polygons[1].equals(box(0, 0, 1, 1))
    assert [p.wkt for p in mask_polygons(mask.astype(bool))] == [p.wkt for p in polygons]
    assert mask_polygons(np.zeros((4, 5), bool)) == []


def test_polygons_to_crs_maps_every_vertex_through_the_affine():
    affine = Affine.from_gdal((431000.5, 8.5, 3.0, 4420000.25, 2.0, -9.5))
    pixel = mask_polygons(ring_mask())
    (mapped,) = polygons_to_crs(pixel, affine.apply)
    expected = np.column_stack(affine.apply(_coords(pixel[0])[:, 0], _coords(pixel[0])[:, 1]))
    np.testing.assert_array_equal(_coords(mapped), expected)
    assert len(mapped.interiors) == 1
    assert mapped.area == pytest.approx(pixel[0].area * abs(affine.determinant), rel=1e-12)
    assert polygons_to_crs([], affine.apply) == []


def _gdal_polygonize(mask: np.ndarray, affine: Affine) -> list:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "from osgeo import gdal, ogr"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{SYSTEM_PYTHON} cannot import osgeo (python3-gdal is not installed)")
    job = {"width": mask.shape[1], "height": mask.shape[0], "geotransform": list(affine.to_gdal()),
           "pixels": mask.astype(np.uint8).tobytes().hex()}
    done = subprocess.run([SYSTEM_PYTHON, "-c", GDAL_POLYGONIZE], input=json.dumps(job), capture_output=True,
                          text=True, check=True, timeout=120)
    return [shapely.from_wkt(text) for text in json.loads(done.stdout)]


def _canonical_pixels(polygons, affine: Affine) -> list:
    """CRS polygons back in pixel space, each vertex checked to be a pixel corner, in normal form."""
    inverse = affine.inverse()
    pixel = polygons_to_crs(polygons, inverse.apply)
    for p in pixel:
        coords = _coords(p)
        assert np.abs(coords - np.round(coords)).max() < 1e-6
    return sorted(shapely.normalize(shapely.transform(p, np.round)).wkt for p in pixel)


@pytest.mark.parametrize("geotransform", [
    (431000.5, 10 * np.cos(np.radians(30)), 10 * np.sin(np.radians(30)),
     4420000.25, 10 * np.sin(np.radians(30)), -10 * np.cos(np.radians(30))),  # rotated by 30°
    (-3.25, 0.0003, 0.0001, 51.5, -0.00005, -0.0002),  # sheared, in degrees
], ids=["rotated", "sheared"])
@pytest.mark.parametrize("name", ["random_1", "noise"])
def test_same_polygons_as_gdal_polygonize(name, geotransform):
    mask, affine = MASKS[name], Affine.from_gdal(geotransform)
    gdal_polygons = _gdal_polygonize(mask, affine)
    ours = polygons_to_crs(mask_polygons(mask), affine.apply)
    assert len(ours) == len(gdal_polygons)
    ours_union, gdal_union = shapely.union_all(ours), shapely.union_all(gdal_polygons)
    assert ours_union.symmetric_difference(gdal_union).area <= 1e-9 * gdal_union.area
    assert _canonical_pixels(ours, affine) == _canonical_pixels(gdal_polygons, affine)


def test_min_area_drops_specks_and_keeps_holes():
    mask = np.zeros((40, 50), bool)
    mask[5:25, 5:25] = True
    mask[10, 10] = False  # a one-pixel hole in the big component
    mask[30, 30] = True  # a speck of one pixel
    mask[30:32, 40] = True  # a speck of two pixels
    mask[35:37, 2:4] = True  # four pixels: kept at min_area_px=4
    assert [p.area for p in mask_polygons(mask)] == [399.0, 4.0, 2.0, 1.0]
    kept = mask_polygons(mask, min_area_px=4)
    assert [p.area for p in kept] == [399.0, 4.0]
    assert len(kept[0].interiors) == 1 and Polygon(kept[0].interiors[0]).equals(box(10, 10, 11, 11))
    assert mask_polygons(mask, min_area_px=1000) == []


@pytest.mark.parametrize("tolerance", [0.75, 1.5, 4.0])
def test_simplify_reduces_vertices_within_the_tolerance(tolerance):
    mask = _disc((120, 100), (60, 50), 40) & ~_disc((120, 100), (60, 50), 15)
    (exact,) = mask_polygons(mask)
    (simple,) = mask_polygons(mask, simplify_px=tolerance)
    assert simple.is_valid and len(simple.interiors) == 1
    assert len(_coords(simple)) < len(_coords(exact))
    assert simple.hausdorff_distance(exact) <= tolerance
    assert set(map(tuple, _coords(simple))) <= set(map(tuple, _coords(exact)))  # a subset of pixel corners
    assert mask_polygons(mask, simplify_px=0)[0].equals_exact(exact, 0)


def test_simplify_keeps_every_component_and_hole_valid():
    mask = MASKS["random_1"]
    exact, simple = mask_polygons(mask), mask_polygons(mask, simplify_px=3.0)
    assert len(simple) == len(exact)
    assert all(s.is_valid and not s.is_empty and len(s.interiors) == len(e.interiors) for s, e in zip(simple, exact))


def test_area_of_a_one_degree_cell_at_the_equator():
    assert area_m2(box(0, 0, 1, 1), CRS.from_epsg(4326)) == pytest.approx(1.2308e10, rel=0.005)
    # orientation and holes: a reversed ring counts as positive, a hole is subtracted
    cell = Polygon(box(0, 0, 1, 1).exterior.coords[::-1], [box(0.25, 0.25, 0.75, 0.75).exterior.coords])
    assert area_m2(cell, CRS.from_epsg(4326)) == pytest.approx(0.75 * area_m2(box(0, 0, 1, 1), CRS.from_epsg(4326)),
                                                              rel=1e-3)


def test_area_in_projected_crss_is_ground_area_in_square_metres():
    """Geodesic: UTM's scale factor (0.9996 on the central meridian) and Web Mercator's 1/cos² of the
    latitude do not enter the area."""
    utm = CRS.from_epsg(32631)
    assert area_m2(box(500000, 4000000, 500100, 4000100), utm) == pytest.approx(1e4 / 0.9996 ** 2, rel=2e-5)
    r, y60 = 6378137.0, 8399737.89   # Web Mercator's sphere; the northing of 60 N
    lat = [2 * math.atan(math.exp(y / r)) - math.pi / 2 for y in (y60, y60 + 100)]
    a, e2 = 6378137.0, 0.00669437999014   # the WGS 84 ellipsoid: meridian and prime-vertical radii M, N
    phi = sum(lat) / 2
    w = 1 - e2 * math.sin(phi) ** 2
    ground = a * (1 - e2) / w ** 1.5 * (lat[1] - lat[0]) * a / w ** 0.5 * math.cos(phi) * 100 / r
    assert ground == pytest.approx(2500.0, rel=0.01)   # about a quarter of the map's 10,000 m²
    assert area_m2(box(0, y60, 100, y60 + 100), CRS.from_epsg(3857)) == pytest.approx(ground, rel=1e-6)
    foot = 1200 / 3937  # the US survey foot in metres; Long Island's Lambert zone scales within 1e-4
    square_feet = box(1e6, 2e5, 1e6 + 100, 2e5 + 100)
    assert area_m2(square_feet, CRS.from_epsg(2263)) == pytest.approx(1e4 * foot ** 2, rel=2e-4)
    multi = shapely.MultiPolygon([box(500000, 4e6, 500010, 4e6 + 10), box(500020, 4e6, 500030, 4e6 + 5)])
    assert area_m2(multi, utm) == pytest.approx(150.0 / 0.9996 ** 2, rel=2e-5)


def test_pixel_polygons_to_area_through_a_chip_affine():
    mask = ring_mask()
    affine = Affine.from_gdal((500000.0, 8.0, 6.0, 4000000.0, 6.0, -8.0))  # 10 m pixels, rotated
    (polygon,) = polygons_to_crs(mask_polygons(mask), affine.apply)
    assert area_m2(polygon, CRS.from_epsg(32631)) == pytest.approx(mask.sum() * 100.0 / 0.9996 ** 2, rel=1e-4)


@pytest.mark.parametrize("mask, message", [
    (np.zeros(5, bool), "must be 2-D"),
    (np.zeros((2, 3, 4), bool), "must be 2-D"),
    (np.zeros((0, 4), bool), "mask is empty"),
    (np.full((3, 3), 0.7), "thresholded first"),
    (np.array([[0, 1], [2, 1]]), "only 0 and 1"),
    (np.array([[0, -1]], np.int8), "only 0 and 1"),
    (np.array([["a", "b"]]), "bool or integer 0/1"),
])
def test_bad_masks_are_refused(mask, message):
    with pytest.raises(InvalidArgumentError, match=message) as caught:
        mask_polygons(mask)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("keyword, value", [("min_area_px", -1.0), ("min_area_px", float("nan")),
                                            ("simplify_px", -0.5), ("simplify_px", float("nan")),
                                            ("simplify_px", float("inf"))])
def test_bad_options_are_refused(keyword, value):
    with pytest.raises(InvalidArgumentError, match=f"{keyword} must be a finite number >= 0, got {value}"):
        mask_polygons(ring_mask(), **{keyword: value})


@pytest.mark.parametrize("crs", [CRS.from_epsg(4978),
                                 CRS.from_wkt('LOCAL_CS["grid",LOCAL_DATUM["d",0],UNIT["metre",1],'
                                              'AXIS["X",EAST],AXIS["Y",NORTH]]')])
def test_area_in_a_crs_without_a_ground_area_is_refused(crs):
    with pytest.raises(InvalidArgumentError, match="needs a geographic or projected CRS, got the"):
        area_m2(box(0, 0, 1, 1), crs)
