"""Headless reader: pixel <-> CRS agrees with GDAL's own transformer, views match GDAL's warped VRT,
and chip affines point at the pixels they hold."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from osgeo import gdal

from conftest import NO_CRS, NOT_GEOREFERENCED, RASTERS, shared
from model_backend.core.chip_plan import ChipSettings, plan_prompt_chip, plan_scene_chip
from model_backend.core.errors import NoCRSError, UnreadableRasterError, UnsupportedDataError
from model_backend.geo.raster import RasterSource

gdal.UseExceptions()
RNG = np.random.default_rng(20261127)


def _read_band1(path):
    ds = gdal.Open(path)  # keep the dataset alive while its band is read
    return ds.GetRasterBand(1).ReadAsArray()


def _gdal_points(path, cols, rows):
    ds = gdal.Open(path)
    tr = gdal.Transformer(ds, None, [])
    fwd = np.array([tr.TransformPoint(0, float(c), float(r))[1][:2] for c, r in zip(cols, rows)])
    back = np.array([tr.TransformPoint(1, float(x), float(y))[1][:2] for x, y in fwd])
    return fwd, back


def _check_against_gdal(path):
    with RasterSource(path) as src:
        cols = RNG.uniform(0, src.width, 200)
        rows = RNG.uniform(0, src.height, 200)
        gdal_xy, gdal_back = _gdal_points(path, cols, rows)
        xs, ys = src.raw_to_crs(cols, rows)
        pixel = min(src.view_affine.pixel_size)
        assert np.abs(xs - gdal_xy[:, 0]).max() < 1e-6 * pixel
        assert np.abs(ys - gdal_xy[:, 1]).max() < 1e-6 * pixel
        c2, r2 = src.crs_to_raw(gdal_xy[:, 0], gdal_xy[:, 1])
        assert np.abs(c2 - gdal_back[:, 0]).max() < 1e-6
        assert np.abs(r2 - gdal_back[:, 1]).max() < 1e-6


def test_pixel_crs_agrees_with_gdal_transformer(raster_name):
    _check_against_gdal(RASTERS[raster_name])


def test_original_rotated_capella_agrees_with_gdal_transformer():
    _check_against_gdal(shared("sar", "capella_sar_vv_rotated.tif"))


@pytest.mark.parametrize("name, georef", [("utm_landsat", "geotransform"), ("rotated_complex", "rotated"),
                                          ("sheared", "rotated"), ("gcp_grd", "gcps"), ("gcp_slc", "gcps")])
def test_georeferencing_kind(name, georef):
    with RasterSource(RASTERS[name]) as src:
        assert src.georeferencing == georef


@pytest.mark.parametrize("name", ["gcp_grd", "gcp_slc"])
def test_gcp_view_is_gdals_warped_vrt(name):
    base = gdal.Open(RASTERS[name])
    ds = gdal.AutoCreateWarpedVRT(base)
    with RasterSource(RASTERS[name]) as src:
        assert src.view_size == (ds.RasterXSize, ds.RasterYSize)
        assert np.allclose(src.view_affine.to_gdal(), ds.GetGeoTransform(), rtol=0, atol=1e-12)


@given(st.floats(0, 1), st.floats(0, 1))
def test_affine_round_trip_on_rotated_raster(u, v):
    with RasterSource(RASTERS["rotated_complex"]) as src:
        col, row = u * src.width, v * src.height
        c2, r2 = src.crs_to_raw(*src.raw_to_crs(col, row))
        assert abs(c2 - col) < 1e-6 and abs(r2 - row) < 1e-6


@pytest.mark.parametrize("name", ["utm_landsat", "rotated_complex", "sheared", "thermal"])
def test_chip_affine_points_at_the_pixels_it_holds(name):
    """Full-resolution chip: pixel centre -> CRS (chip affine) -> raw pixel (GDAL) holds the same value."""
    path = RASTERS[name]
    with RasterSource(path) as src:
        plan = plan_prompt_chip((src.width * 0.3, src.height * 0.4, src.width * 0.5, src.height * 0.6),
                                src.width, src.height, ChipSettings(min_size=64))
        chip_data, _ = src.read_raw(plan, (1,))
        chip_affine = plan.chip_affine(src.view_affine)
        full = _read_band1(path)
    ds = gdal.Open(path)
    tr = gdal.Transformer(ds, None, [])
    jj, ii = RNG.integers(0, plan.out_height, 100), RNG.integers(0, plan.out_width, 100)
    xs, ys = chip_affine.apply(ii + 0.5, jj + 0.5)
    for i, j, x, y in zip(ii, jj, xs, ys):
        col, row = tr.TransformPoint(1, float(x), float(y))[1][:2]
        assert chip_data[0, j, i] == full[int(np.floor(row)), int(np.floor(col))]


def test_gcp_chip_affine_points_at_the_pixels_it_holds():
    """Warped view of a GCP raster: the chip affine, then GDAL's GCP transformer, finds the source pixel
    (nearest-neighbour warp with GDAL's approximate transformer: a small share may differ by a pixel)."""
    path = RASTERS["gcp_grd"]
    with RasterSource(path) as src:
        vw, vh = src.view_size
        plan = plan_scene_chip(vw, vh, max_pixels=vw * vh)
        data, valid = src.read_raw(plan, (1,))
        affine = plan.chip_affine(src.view_affine)
    full = _read_band1(path)
    ds = gdal.Open(path)
    tr = gdal.Transformer(ds, None, [])
    jj, ii = np.nonzero(valid)
    pick = RNG.choice(len(jj), 300, replace=False)
    same = 0
    for j, i in zip(jj[pick], ii[pick]):
        x, y = affine.apply(i + 0.5, j + 0.5)
        col, row = tr.TransformPoint(1, float(x), float(y))[1][:2]
        if 0 <= col < full.shape[1] and 0 <= row < full.shape[0]:
            same += data[0, j, i] == full[int(row), int(col)]
    assert same >= 0.95 * len(pick)


def test_scene_read_uses_overviews_and_keeps_geometry():
    with RasterSource(RASTERS["overviews"]) as src:
        assert src.overviews == (2, 4, 8)
        plan = plan_scene_chip(src.width, src.height, max_pixels=100 * 100, overviews=src.overviews)
        assert plan.source_overview == 4
        data, valid = src.read_raw(plan, (1, 2, 3))
        assert data.shape == (3, plan.out_height, plan.out_width)
        assert plan.out_width * plan.out_height <= 100 * 100
        affine = plan.chip_affine(src.view_affine)
        assert np.allclose(affine.apply(plan.out_width, plan.out_height), src.view_affine.apply(src.width, src.height))


def test_nodata_and_nan_are_masked():
    with RasterSource(RASTERS["sar_db_nodata"]) as src:
        plan = plan_scene_chip(src.width, src.height)
        data, valid = src.read_raw(plan, (1,))
        assert not valid[data[0] == -99].any() and valid.any()
    with RasterSource(RASTERS["nan_sar_db"]) as src:
        chip = src.read_chip(plan_scene_chip(src.width, src.height))
        raw, _ = src.read_raw(chip.plan, (1,))
        assert np.array_equal(~chip.valid, np.isnan(raw[0]))
        assert (chip.image[~chip.valid] == 0).all()


@pytest.mark.parametrize("path, error, message", [
    (NO_CRS, NoCRSError, "no CRS"),
    (NOT_GEOREFERENCED, NoCRSError, "not georeferenced"),
    ("/nonexistent/raster.tif", UnreadableRasterError, "no such file"),
])
def test_bad_rasters_get_typed_errors(path, error, message):
    with pytest.raises(error, match=message):
        RasterSource(path)


def test_non_raster_file_is_unreadable(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("this is not an image")
    with pytest.raises(UnreadableRasterError, match="cannot read"):
        RasterSource(str(bad))


def test_container_without_bands_is_unsupported(tmp_path):
    """A netCDF file with two variables opens with zero bands: the user must pick a subdataset."""
    path = str(tmp_path / "two_variables.nc")
    ds = gdal.GetDriverByName("netCDF").CreateMultiDimensional(path)
    root = ds.GetRootGroup()
    dims = [root.CreateDimension("y", None, None, 4), root.CreateDimension("x", None, None, 5)]
    for name in ("a", "b"):
        root.CreateMDArray(name, dims, gdal.ExtendedDataType.Create(gdal.GDT_Float32)).Write(bytearray(80))
    del root, ds
    with pytest.raises(UnsupportedDataError, match="no raster bands.*subdataset"):
        RasterSource(path)


def _gtiff(path, gcps=None, srs="EPSG:4326", geotransform=None, rpc=None, size=(64, 48)):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size[0], size[1], 1, gdal.GDT_Byte)
    ds.GetRasterBand(1).Fill(7)
    from osgeo import osr
    sr = osr.SpatialReference()
    sr.SetFromUserInput(srs)
    if gcps is not None:
        ds.SetGCPs([gdal.GCP(x, y, 0, col, row) for col, row, x, y in gcps], sr.ExportToWkt())
    elif srs:
        ds.SetProjection(sr.ExportToWkt())
    if geotransform:
        ds.SetGeoTransform(geotransform)
    if rpc:
        ds.SetMetadata(rpc, "RPC")
    ds = None
    return str(path)


def test_a_crs_without_geotransform_or_gcps_is_refused_whatever_the_crs(tmp_path):
    """GDAL would hand out an identity transform: answers would land at (0, 0)-(64, 48) while QGIS
    draws the raster at (0, -48)-(64, 0). Neither is on the map: refused."""
    for srs in ("EPSG:32618", "EPSG:4326"):
        with pytest.raises(NoCRSError, match="CRS but no geotransform or GCPs.*georeference"):
            RasterSource(_gtiff(tmp_path / f"{srs[5:]}.tif", srs=srs))
    rpc = {"LINE_OFF": "24", "SAMP_OFF": "32", "LAT_OFF": "10", "LONG_OFF": "20", "HEIGHT_OFF": "0",
           "LINE_SCALE": "24", "SAMP_SCALE": "32", "LAT_SCALE": "0.1", "LONG_SCALE": "0.1", "HEIGHT_SCALE": "1",
           "LINE_NUM_COEFF": " ".join(["0", "0", "-1"] + ["0"] * 17), "LINE_DEN_COEFF": " ".join(["1"] + ["0"] * 19),
           "SAMP_NUM_COEFF": " ".join(["0", "1"] + ["0"] * 18), "SAMP_DEN_COEFF": " ".join(["1"] + ["0"] * 19)}
    with pytest.raises(NoCRSError, match="RPCs only.*orthorectify"):
        RasterSource(_gtiff(tmp_path / "rpc.tif", rpc=rpc))
    # an explicit identity geotransform is a geotransform: kept
    with RasterSource(_gtiff(tmp_path / "id.tif", srs="EPSG:32618", geotransform=(0, 1, 0, 0, 0, 1))) as src:
        assert src.georeferencing == "geotransform"


@pytest.mark.parametrize("gcps, words", [
    ([(0, 0, 10, 10), (63, 47, 11, 9)], "2 GCP"),
    ([(0, 0, 10, 10), (32, 24, 10.5, 9.0), (64, 48, 11, 9.5)], "one line .* pixel space"),
    ([(0, 0, 10, 10)] * 4, "one line .* pixel space"),
    ([(0, 0, 10, 10), (0, 47, 10, 10), (63, 0, 10, 10), (63, 47, 10, 10)], "one line .* map space"),
    ([(0, 0, 10, 10), (0, 47, float("nan"), 9), (63, 0, 11, 10), (63, 47, 11, 9)], "NaN"),
])
def test_degenerate_gcps_get_a_clear_error(tmp_path, gcps, words):
    with pytest.raises(UnsupportedDataError, match=words):
        RasterSource(_gtiff(tmp_path / "g.tif", gcps=gcps))


def test_gcps_with_a_dataset_crs_too_place_the_raster_by_its_gcps(tmp_path):
    gcps = [(0, 0, 10, 10), (0, 48, 10, 9), (64, 0, 11, 10), (64, 48, 11, 9)]
    path = _gtiff(tmp_path / "g.tif", gcps=gcps)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.SetProjection(ds.GetGCPProjection())
    ds = None
    with RasterSource(path) as src:
        assert src.georeferencing == "gcps"
        xs, ys = src.raw_to_crs(np.array([64.0]), np.array([48.0]))
    assert (xs[0], ys[0]) == pytest.approx((11, 9), abs=1e-6)
