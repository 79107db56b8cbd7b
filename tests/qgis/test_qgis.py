"""Against real QGIS (pytest-qgis, headless): QGIS shows GCP-only and rotated rasters on the grid the
spatial core plans on, transforms as pyproj does, reads the pixels the chip affine names, and loads the
plugin skeleton."""

import gc
import os

import numpy as np
import pytest
from pyproj import Transformer
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject,
                       QgsRasterLayer, QgsRectangle)

from conftest import RASTERS, shared
from model_backend.core.chip_plan import ChipSettings, plan_prompt_chip
from model_backend.geo.raster import RasterSource

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def layer_of(qgis_new_project):
    """Open a raster as QGIS does; layers join the project so none outlives it (QGIS 3.22 exit crash)."""
    def make(path):
        layer = QgsRasterLayer(path, os.path.basename(path), "gdal")
        assert layer.isValid(), path
        QgsProject.instance().addMapLayer(layer)
        return layer
    yield make
    QgsProject.instance().removeAllMapLayers()
    gc.collect()


@pytest.mark.parametrize("name", ["gcp_grd", "gcp_slc"])
def test_qgis_shows_gcp_raster_on_our_warped_view(layer_of, name):
    layer = layer_of(RASTERS[name])
    with RasterSource(RASTERS[name]) as src:
        vw, vh = src.view_size
        a = src.view_affine
    assert (layer.width(), layer.height()) == (vw, vh)
    e = layer.extent()
    assert e.xMinimum() == pytest.approx(a.x0, abs=1e-9) and e.yMaximum() == pytest.approx(a.y0, abs=1e-9)
    assert e.xMaximum() == pytest.approx(a.x0 + vw * a.dx_dcol, abs=1e-9)
    assert e.yMinimum() == pytest.approx(a.y0 + vh * a.dy_drow, abs=1e-9)


@pytest.mark.parametrize("path", [RASTERS["rotated_complex"], RASTERS["sheared"], "capella"])
def test_qgis_warps_rotated_raster_around_our_exact_footprint(layer_of, path):
    if path == "capella":
        path = shared("sar", "capella_sar_vv_rotated.tif")
    layer = layer_of(path)
    with RasterSource(path) as src:
        xs, ys = src.raw_to_crs([0, src.width, src.width, 0], [0, 0, src.height, src.height])
    e = layer.extent()
    # GDAL's suggested warp grid starts at the footprint's corner and rounds its size to whole pixels
    px, py = layer.rasterUnitsPerPixelX(), layer.rasterUnitsPerPixelY()
    assert e.xMinimum() == pytest.approx(xs.min(), abs=1e-6) and e.yMaximum() == pytest.approx(ys.max(), abs=1e-6)
    assert abs(e.xMaximum() - xs.max()) < px and abs(e.yMinimum() - ys.min()) < py


def test_qgis_and_pyproj_transform_alike(qgis_new_project):
    src, dst = QgsCoordinateReferenceSystem("EPSG:3857"), QgsCoordinateReferenceSystem("EPSG:32618")
    qt = QgsCoordinateTransform(src, dst, QgsProject.instance())
    pt = Transformer.from_crs("EPSG:3857", "EPSG:32618", always_xy=True)
    for x, y in [(-8640000.0, 2790000.0), (-8600000.5, 2830000.25)]:
        q = qt.transform(QgsPointXY(x, y))
        px, py = pt.transform(x, y)
        assert abs(q.x() - px) < 1e-6 and abs(q.y() - py) < 1e-6


def test_provider_block_at_planned_chip_equals_our_read(layer_of):
    """The plugin reads chips through the data provider: same window, same pixels."""
    layer = layer_of(RASTERS["utm_landsat"])
    with RasterSource(RASTERS["utm_landsat"]) as src:
        plan = plan_prompt_chip((300, 200, 420, 330), src.width, src.height, ChipSettings(min_size=64))
        ours, _ = src.read_raw(plan, (1,))
        a = plan.chip_affine(src.view_affine)
    x0, y0 = a.apply(0, 0)
    x1, y1 = a.apply(plan.out_width, plan.out_height)
    block = layer.dataProvider().block(1, QgsRectangle(x0, y1, x1, y0), plan.out_width, plan.out_height)
    theirs = np.frombuffer(bytes(block.data()), dtype=np.uint8).reshape(plan.out_height, plan.out_width)
    assert np.array_equal(theirs, ours[0])


def test_plugin_loads_and_unloads(qgis_iface, plugin_package):
    plugin = plugin_package.classFactory(qgis_iface)
    plugin.initGui()
    assert [a.text() for a in plugin.actions] == ["EarthGPT-X", "Settings...", "Backend setup...",
                                                  "About EarthGPT-X"]
    plugin.actions[-1].trigger()
    plugin.toggle_dock(True)
    assert plugin.dock is not None and not plugin.dock.isHidden()
    plugin.unload()
    assert plugin.dock is None
    assert plugin.actions == []
