"""Shared test fixtures: data paths, derived rasters, hypothesis profile.

Tiers: ``tests/unit`` (no QGIS, no torch), ``tests/engine`` (tiny models, worker processes),
``tests/qgis`` (QGIS in this process). With ``EARTHGPTX_TEST_TIER=unit`` (``make test-fast``) torch,
transformers and QGIS cannot be imported, so a unit test that needs them fails instead of passing slowly.
"""

from __future__ import annotations

import importlib
import os
import sys

if os.environ.get("EARTHGPTX_TEST_TIER") == "unit":
    for _blocked in ("torch", "transformers", "qgis"):
        sys.modules[_blocked] = None  # type: ignore[assignment]

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import build_fixtures  # noqa: E402

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
DATA = os.path.join(TESTS, "data")
SHARED_DATA = os.path.abspath(os.path.join(TESTS, "..", "..", "shared", "data"))

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

DERIVED = build_fixtures.build_all()

RASTERS = {
    "utm_landsat": os.path.join(DATA, "optical", "RGB.byte.tif"),
    "mercator_aerial": os.path.join(DATA, "optical", "5b90f92da0d7280005fab355_4310.tif"),
    "sar_db_nodata": os.path.join(DATA, "sar", "S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif"),
    "gcp_grd": os.path.join(DATA, "sar", "S1A_IW_GRDH_20180716_iw-vv.tiff"),
    "gcp_slc": os.path.join(DATA, "sar", "slc.tif"),
    "thermal": os.path.join(DATA, "infrared", "LC08_L1TP_016037_20170813_20170814_01_RT_B10.TIF"),
    "rotated_complex": os.path.join(DERIVED, "rotated_complex.tif"),
    "sheared": os.path.join(DERIVED, "sheared.tif"),
    "nan_sar_db": os.path.join(DERIVED, "nan_sar_db.tif"),
    "overviews": os.path.join(DERIVED, "overviews.tif"),
}
NO_CRS = os.path.join(DERIVED, "no_crs.tif")
NOT_GEOREFERENCED = os.path.join(DATA, "infrared", "hit_uav", "0_100_30_0_03307.jpg")


def shared(*parts: str) -> str:
    """A path in ../shared/data; the test is skipped (saying so) when that folder is absent."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"local check only: {path} is not present")
    return path


@pytest.fixture(params=sorted(RASTERS))
def raster_name(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def plugin_package(tmp_path_factory):
    """The repository imported as the package ``earthgptx``, as QGIS imports the plugin (the repository
    root is the plugin folder). One import for the whole session, so classes stay the same objects."""
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "earthgptx").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(folder))
    yield importlib.import_module("earthgptx")
    sys.path.remove(str(folder))
