"""The Processing algorithms headless through ``qgis_process`` (as a user runs them in scripts and batch
jobs), with the plugin enabled in a temporary QGIS profile and a tiny model worker."""

import json
import os
import subprocess
import sys

import fiona
import pytest

from conftest import RASTERS
from model_backend.testing.tiny_model import build_tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # Debian's qgis_process wrapper passes an option 3.22 rejects
VALIDATOR = "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("qgis_process")
    (base / "plugins").mkdir()
    (base / "plugins" / "earthgptx").symlink_to(ROOT, target_is_directory=True)
    tiny = build_tiny_model(str(base / "tiny"), "qwen3_vl")
    environ = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(base / "config"), QGIS_PLUGINPATH=str(base / "plugins"),
                   QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1")
    r = subprocess.run([QGIS_PROCESS, "plugins", "enable", "earthgptx"], env=environ, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    ini = base / "config" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    with open(ini, "a") as fh:
        fh.write(f"\n[earthgptx]\nworker_python={sys.executable}\nmodel={tiny}\ndevice=cpu\nquantization=fp32\n"
                 f"max_pixels=65536\n")
    return environ, base


def run(env, algorithm, **params):
    args = [QGIS_PROCESS, "run", f"earthgptx:{algorithm}", "--json"] + [f"--{k}={v}" for k, v in params.items()]
    r = subprocess.run(args, env=env[0], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return json.loads(r.stdout[r.stdout.index("{"):])


def test_algorithms_are_listed(env):
    r = subprocess.run([QGIS_PROCESS, "list"], env=env[0], capture_output=True, text=True, timeout=120)
    assert "earthgptx:askaboutfeatures" in r.stdout and "earthgptx:describescene" in r.stdout


def test_describe_scene_of_a_gcp_raster(env, tmp_path):
    out = str(tmp_path / "scene.gpkg")
    result = run(env, "describescene", INPUT=RASTERS["gcp_grd"], MAX_NEW_TOKENS=6, OUTPUT=out)
    assert result["results"]["OUTPUT"] == out
    with fiona.open(out) as src:
        (f,) = list(src)
        assert f["properties"]["task"] == "captioning" and f["properties"]["modality"] == "sar"
        assert f["properties"]["model"].endswith("tiny") and f["properties"]["finish_reason"] in ("stop", "length")
        minx, miny, maxx, maxy = fiona.bounds(f)  # the chip footprint, in EPSG:4326 over Kerala
        assert 75 < minx < maxx < 79 and 8.5 < miny < maxy < 11.5


def test_ask_about_features_keeps_attributes_and_adds_answers(env, tmp_path):
    features = tmp_path / "sites.geojson"
    import rasterio
    with rasterio.open(RASTERS["utm_landsat"]) as src:
        t = src.transform
    pts = [t * (400, 300), t * (500, 420)]
    poly = [t * (300, 200), t * (360, 200), t * (360, 260), t * (300, 260), t * (300, 200)]
    features.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {
        "name": "urn:ogc:def:crs:EPSG::32618"}}, "features": [
        {"type": "Feature", "properties": {"site": "a"}, "geometry": {"type": "Point", "coordinates": list(pts[0])}},
        {"type": "Feature", "properties": {"site": "b"}, "geometry": {"type": "Point", "coordinates": list(pts[1])}},
        {"type": "Feature", "properties": {"site": "c"}, "geometry": {"type": "Polygon",
                                                                      "coordinates": [[list(p) for p in poly]]}}]}))
    out = str(tmp_path / "answers.gpkg")
    run(env, "askaboutfeatures", INPUT=RASTERS["utm_landsat"], FEATURES=str(features), TASK=0, MAX_NEW_TOKENS=5,
        OUTPUT=out)
    with fiona.open(out) as src:
        rows = [f["properties"] for f in src]
    assert [r["site"] for r in rows] == ["a", "b", "c"]
    assert all(r["task"] == "region_captioning" and r["answer_id"] for r in rows)
    done = subprocess.run(["/usr/bin/python3", VALIDATOR, out], capture_output=True, text=True)   # mixed input
    assert done.returncode == 0, done.stdout + done.stderr


def test_ask_about_features_of_single_and_multi_points_writes_a_conformant_multipoint_layer(env, tmp_path):
    import rasterio
    with rasterio.open(RASTERS["utm_landsat"]) as src:
        t = src.transform
    a, b, c = (list(t * p) for p in [(400, 300), (500, 420), (520, 440)])
    features = tmp_path / "points.geojson"
    features.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {
        "name": "urn:ogc:def:crs:EPSG::32618"}}, "features": [
        {"type": "Feature", "properties": {"site": "a"}, "geometry": {"type": "Point", "coordinates": a}},
        {"type": "Feature", "properties": {"site": "bc"}, "geometry": {"type": "MultiPoint", "coordinates": [b, c]}}]}))
    out = str(tmp_path / "answers.gpkg")
    run(env, "askaboutfeatures", INPUT=RASTERS["utm_landsat"], FEATURES=str(features), TASK=0, MAX_NEW_TOKENS=3,
        OUTPUT=out)
    with fiona.open(out) as src:
        assert src.schema["geometry"] == "MultiPoint" and [f["properties"]["site"] for f in src] == ["a", "bc"]
    done = subprocess.run(["/usr/bin/python3", VALIDATOR, out], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ask_about_mixed_features_into_a_shapefile_is_refused_before_the_model(env, tmp_path):
    features = tmp_path / "mixed.geojson"
    features.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-77.7, 24.3]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "LineString",
                                                           "coordinates": [[-77.7, 24.3], [-77.6, 24.4]]}}]}))
    out = tmp_path / "answers.shp"
    r = subprocess.run([QGIS_PROCESS, "run", "earthgptx:askaboutfeatures", f"--INPUT={RASTERS['utm_landsat']}",
                        f"--FEATURES={features}", "--TASK=0", f"--OUTPUT={out}"], env=env[0], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0 and "write the answers to a GeoPackage" in r.stdout + r.stderr
    assert not out.exists()


def expected_tiles(path, tile, overlap, resolution=None, extent=None, extent_crs=None):
    """The tile count of ``find`` for the same request (the worker runs the same search)."""
    from pyproj import CRS
    from model_backend.geo.raster import RasterSource
    from model_backend.jobs.find import plan_find_tiles
    with RasterSource(path) as src:
        grid, _ = plan_find_tiles(src, resolution, extent, CRS.from_user_input(extent_crs) if extent_crs else None,
                                  tile, overlap)
        return len(grid)


def footprints(out):
    with fiona.open(out, layer="answers") as src:
        return [tuple(round(v, 3) for v in fiona.bounds(f)) for f in src]


def test_find_objects_over_tiles_written_as_it_goes_and_resumed(env, tmp_path):
    """Find objects runs the worker's tiled search: every tile answered once into the GeoPackage; a run
    that lost its last tiles (as a crash would) is completed by Resume, asking only those."""
    import sqlite3

    out = str(tmp_path / "found.gpkg")
    path = RASTERS["mercator_aerial"]
    args = [QGIS_PROCESS, "run", "earthgptx:findobjects", f"--INPUT={path}", "--PHRASE=cars", "--TILE=512",
            "--OVERLAP=0.1", "--RESOLUTION=0.25", "--MAX_NEW_TOKENS=4", f"--OUTPUT={out}"]
    r = subprocess.run(args, env=env[0], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    log = r.stdout + r.stderr
    n = expected_tiles(path, 512, 0.1, 0.25)
    assert n > 2 and f"{n} tiles of 512x512 pixels" in log and "100 - done" in log
    assert f"{n} tiles of {n} answered (0 resumed" in log and "1 tile(s) per call" in log
    with fiona.open(out, layer="detections") as src:
        assert src.schema["properties"].keys() >= {"answer_id", "label", "rank", "kind"}
    first = footprints(out)
    assert len(first) == n == len(set(first))
    with sqlite3.connect(out) as db:   # the last two tiles were in flight when the run died
        gone = [row[0] for row in db.execute("SELECT answer_id FROM answers ORDER BY fid DESC LIMIT 2")]
        db.executemany("DELETE FROM detections WHERE answer_id = ?", [(g,) for g in gone])
        db.executemany("DELETE FROM answers WHERE answer_id = ?", [(g,) for g in gone])
    r = subprocess.run(args + ["--RESUME=true"], env=env[0], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"{n} tiles of {n} answered ({n - 2} resumed" in r.stdout + r.stderr
    assert sorted(footprints(out)) == sorted(first)
    r = subprocess.run(["/usr/bin/python3", VALIDATOR, out], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_find_objects_over_an_extent_and_its_refusals_before_the_model(env, tmp_path):
    path = RASTERS["mercator_aerial"]
    extent = (13467600, 1631900, 13467650, 1631950)
    r = subprocess.run([QGIS_PROCESS, "run", "earthgptx:findobjects", f"--INPUT={path}", "--PHRASE=cars",
                        "--TILE=256", "--MAX_NEW_TOKENS=2", f"--OUTPUT={tmp_path / 'x.gpkg'}",
                        f"--EXTENT={extent[0]},{extent[2]},{extent[1]},{extent[3]} [EPSG:3395]"],
                       env=env[0], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    n = expected_tiles(path, 256, 0.15, extent=extent, extent_crs="EPSG:3395")
    assert n > 1 and f"{n} tiles of 256x256 pixels" in r.stdout + r.stderr
    shp = tmp_path / "found.shp"
    for extra, said in ((["--RESUME=true", f"--OUTPUT={shp}"], "needs the GeoPackage output"),
                        ([f"--OUTPUT={tmp_path / 'no' / 'x.gpkg'}"], "does not exist"),
                        (["--EXTENT=0,1,0,1 [EPSG:4326]", f"--OUTPUT={tmp_path / 'y.gpkg'}"],
                         "the extent lies outside the raster")):
        r = subprocess.run([QGIS_PROCESS, "run", "earthgptx:findobjects", f"--INPUT={path}", "--PHRASE=cars",
                            *extra], env=env[0], capture_output=True, text=True, timeout=300)
        log = r.stdout + r.stderr
        assert r.returncode != 0 and said in log and "Model:" not in log, log[-2000:]


def test_segment_objects_outlines_each_point_and_refuses_nothing_to_outline(env, tmp_path):
    from model_backend.testing.tiny_sam import build_tiny_sam
    import rasterio
    sam2 = build_tiny_sam(str(tmp_path / "sam2"), "sam2")
    with rasterio.open(RASTERS["utm_landsat"]) as src:
        t = src.transform
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {
        "name": "urn:ogc:def:crs:EPSG::32618"}}, "features": [
        {"type": "Feature", "properties": {"site": s}, "geometry": {"type": "Point", "coordinates": list(t * xy)}}
        for s, xy in (("a", (400, 300)), ("b", (120, 560)))]}))
    out = str(tmp_path / "outlines.gpkg")
    run(env, "segmentobjects", INPUT=RASTERS["utm_landsat"], PROMPTS=str(points), SEGMENTER=sam2, OUTPUT=out)
    with fiona.open(out) as src:
        rows = [(f["properties"], f["geometry"]["type"]) for f in src]
        assert "UTM zone 18N" in src.crs_wkt
    assert len(rows) == 2 and sorted(p["prompt_index"] for p, _ in rows) == [0, 1]   # the features' ids
    for props, kind in rows:
        assert kind == "MultiPolygon" and props["prompt_kind"] == "point"
        assert props["area_m2"] > 0 and 0 <= props["score"] <= 1 and props["model"] == sam2
        assert len({p["question_id"] for p, _ in rows}) == 1
    r = subprocess.run([QGIS_PROCESS, "run", "earthgptx:segmentobjects", f"--INPUT={RASTERS['utm_landsat']}",
                        f"--OUTPUT={tmp_path / 'none.gpkg'}"], env=env[0], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Nothing to outline" in r.stdout + r.stderr and not (tmp_path / "none.gpkg").exists()
