"""Build the derived test rasters into tests/data/derived (see tests/data/PROVENANCE.md).

Run as ``python tests/build_fixtures.py``; rebuilding is skipped for files already present.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import Affine as RioAffine
from rasterio.windows import Window

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DERIVED = os.path.join(DATA, "derived")

# The Capella SAR's rotated geotransform (../shared/data/sar/capella_sar_vv_rotated.tif), GDAL order.
CAPELLA_GT = (593124.119663189, -0.028569629858371578, -2.4998367499198335,
              5749208.249577077, 2.4998367499198335, -0.028569629858371578)
SHEARED_GT = (101985.0, 300.0, 45.0, 2826915.0, -30.0, -300.0)


def _write(name: str, data: np.ndarray, profile: dict) -> None:
    path = os.path.join(DERIVED, name)
    tmp = path + ".tmp.tif"
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
    os.replace(tmp, path)


def rotated_complex() -> None:
    with rasterio.open(os.path.join(DATA, "sar", "slc.tif")) as src:
        data = src.read(1, window=Window(400, 200, 200, 200)).astype(np.complex64)[None]
    _write("rotated_complex.tif", data, dict(driver="GTiff", width=200, height=200, count=1, dtype="complex64",
                                             crs="EPSG:32631", transform=RioAffine.from_gdal(*CAPELLA_GT)))


def sheared() -> None:
    with rasterio.open(os.path.join(DATA, "optical", "RGB.byte.tif")) as src:
        data, profile = src.read(), src.profile
    profile.update(transform=RioAffine.from_gdal(*SHEARED_GT))
    _write("sheared.tif", data, profile)


def nan_sar_db() -> None:
    with rasterio.open(os.path.join(DATA, "sar", "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif")) as src:
        data, profile = src.read(), src.profile
    data = np.where(data == src.nodata, np.nan, data).astype(np.float32)
    profile.update(nodata=None)
    _write("nan_sar_db.tif", data, profile)


def no_crs() -> None:
    with rasterio.open(os.path.join(DATA, "infrared", "LC08_L1TP_016037_20170813_20170814_01_RT_B10.TIF")) as src:
        data, profile = src.read(), src.profile
    profile.update(crs=None)
    _write("no_crs.tif", data, profile)


def overviews() -> None:
    with rasterio.open(os.path.join(DATA, "optical", "RGB.byte.tif")) as src:
        data, profile = src.read(), src.profile
    profile.update(tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    _write("overviews.tif", data, profile)
    with rasterio.open(os.path.join(DERIVED, "overviews.tif"), "r+") as dst:
        dst.build_overviews([2, 4, 8], Resampling.average)


BUILDERS = {
    "rotated_complex.tif": rotated_complex,
    "sheared.tif": sheared,
    "nan_sar_db.tif": nan_sar_db,
    "no_crs.tif": no_crs,
    "overviews.tif": overviews,
}


def build_all() -> str:
    """Build whatever derived raster is missing; returns the folder."""
    os.makedirs(DERIVED, exist_ok=True)
    for name, build in BUILDERS.items():
        if not os.path.exists(os.path.join(DERIVED, name)):
            build()
    return DERIVED


if __name__ == "__main__":
    print(build_all(), file=sys.stderr)
