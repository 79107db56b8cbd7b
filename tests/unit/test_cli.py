"""The ``locate`` command: JSON on success; exit status 2 and one line on stderr for bad input."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from conftest import NO_CRS, NOT_GEOREFERENCED, RASTERS, SHARED_DATA

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    return subprocess.run([sys.executable, "-m", "model_backend", "locate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # reading the PNG back
def test_locate_prints_the_contract_fields(tmp_path):
    png = tmp_path / "chip.png"
    r = run(RASTERS["utm_landsat"], "--geometry", "POLYGON ((-77.9 24.1, -77.6 24.1, -77.6 24.4, -77.9 24.4, -77.9 24.1))",
            "--crs", "EPSG:4326", "--chip-png", str(png))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["pixel_geometry"].startswith("POLYGON ((")
    assert set(out["window"]) == {"col_off", "row_off", "width", "height"}
    assert len(out["chip_affine"]) == 6 and out["chip_crs"] == "EPSG:32618"
    assert out["overview_factor"] == 1.0 and out["clipped"] is False
    assert out["modality"] == "optical"
    with rasterio.open(png) as img:
        marked = img.read()
    assert marked.shape[0] == 3 and (marked.shape[2], marked.shape[1]) == tuple(out["chip_size"])


def test_pixel_budget_and_context_options():
    r = run(RASTERS["mercator_aerial"], "--geometry", "POINT (13467600 1631950)", "--crs", "EPSG:3395",
            "--context", "0", "--min-size", "2048", "--max-pixels", "65536")
    out = json.loads(r.stdout)
    assert out["window"]["width"] == 2048 and out["chip_size"] == [256, 256]
    assert out["overview_factor"] == 8.0


def test_scene_chip_without_geometry():
    out = json.loads(run(RASTERS["gcp_grd"], "--max-pixels", "10000").stdout)
    assert out["prompt"] is None and out["window_space"] == "warped_vrt"
    assert out["chip_size"][0] * out["chip_size"][1] <= 10000


def test_partly_outside_is_reported():
    r = run(RASTERS["thermal"], "--geometry", "LINESTRING (400000 3700000, 520000 3700000)", "--crs", "EPSG:32617")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["clipped"] is True


@pytest.mark.parametrize("args, message", [
    ((RASTERS["utm_landsat"], "--geometry", "POINT (2.35 48.85)", "--crs", "EPSG:4326"), "outside the raster"),
    ((RASTERS["utm_landsat"], "--geometry", "POINT (1 2)", "--crs", "EPSG:999999"), "unknown CRS"),
    ((RASTERS["utm_landsat"], "--geometry", "POINT (1 2", "--crs", "EPSG:4326"), "cannot parse"),
    ((RASTERS["utm_landsat"], "--geometry", "POLYGON ((0 0, 2 2, 2 0, 0 2, 0 0))"), "not valid"),
    ((NO_CRS, "--geometry", "POINT (1 2)", "--crs", "EPSG:4326"), "no CRS"),
    ((NOT_GEOREFERENCED, "--geometry", "POINT (1 2)", "--crs", "EPSG:4326"), "not georeferenced"),
    (("/no/such.tif", "--geometry", "POINT (1 2)", "--crs", "EPSG:4326"), "no such file"),
    ((RASTERS["utm_landsat"], "--geometry", "POINT (-77.7 24.3)", "--crs", "EPSG:4326", "--context", "-1"), "context"),
    ((RASTERS["utm_landsat"], "--bogus"), "unrecognized arguments"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def _georeferenced_shared_rasters():
    paths = []
    for folder in ("optical", "sar", "infrared"):
        paths += sorted(glob.glob(os.path.join(SHARED_DATA, folder, "*")))
    sidecars = (".aux.xml", ".ovr", ".msk")  # GDAL's own files beside a raster, not rasters
    return [p for p in paths if os.path.isfile(p) and not p.endswith(sidecars)]


@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="local check only: ../shared/data is not present")
@pytest.mark.parametrize("path", _georeferenced_shared_rasters(), ids=os.path.basename)
def test_locate_on_every_shared_raster(path):
    """Every georeferenced file of ../shared/data locates a point at its centre; the others are refused
    with a clear message."""
    scene = run(path)
    if scene.returncode == 2:
        assert "not georeferenced" in scene.stderr
        return
    assert scene.returncode == 0, scene.stderr
    info = json.loads(scene.stdout)
    view = info["raster"]["view"]
    a = np.array(view["affine"])
    cx, cy = view["width"] / 2, view["height"] / 2
    x, y = a[0] + a[1] * cx + a[2] * cy, a[3] + a[4] * cx + a[5] * cy
    r = run(path, "--geometry", f"POINT ({x!r} {y!r})", "--crs", info["raster"]["crs"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["clipped"] is False


def test_locate_refuses_a_crs_without_geotransform_with_exit_2(tmp_path):
    path = str(tmp_path / "crs_only.tif")
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs="EPSG:32618") as d:
        d.write(np.zeros((1, 64, 64), np.uint8))
    r = run(path)
    assert r.returncode == 2 and "CRS but no geotransform or GCPs" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
