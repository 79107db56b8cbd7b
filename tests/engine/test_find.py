"""Tiled grounding (``find``) end to end on real rasters with a scripted OpenAI-compatible server on
loopback: every detection must land where the tile's answer points on the map (tile windows computed
here, independently), and an object answered by two overlapping tiles must come out once."""

import base64
import io
import itertools
import json
import os
import subprocess
import sys
import threading
from collections import Counter

import fiona
import numpy as np
import pytest
import rasterio
import shapely
from PIL import Image
from pyproj import Transformer
from rasterio.vrt import WarpedVRT
from shapely.geometry import box as shapely_box, shape

from conftest import RASTERS
from model_backend.jobs.find import find_objects
from model_backend.models.remote import RemoteEngine
from openai_server import serve, sse_events, stream, url

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, HF_HUB_OFFLINE="1")
REL_BOX = (100, 200, 300, 450)          # the scripted answer, Qwen3-VL 0-1000 coordinates
FIXED = '```json\n[{"bbox_2d": [100, 200, 300, 450], "label": "ship"}]\n```'


def run(*args):
    return subprocess.run([sys.executable, "-m", "model_backend", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=ENV)


def layer(path, name=None):
    with fiona.open(path, layer=name) as src:
        return [(shape(f["geometry"]), dict(f["properties"])) for f in src]


def per_request(answer_for):
    """A server behaviour streaming ``answer_for(k)`` to the k-th request (k = 0, 1, ...)."""
    counter, lock = itertools.count(), threading.Lock()

    def behaviour(handler, body):
        with lock:
            k = next(counter)
        stream(sse_events([answer_for(k)]))(handler, body)
    return behaviour


def offsets(length, window, overlap):
    """Tile offsets along an axis: steps of floor(window * (1 - overlap)), the last tile flush with the end."""
    if length <= window:
        return [0]
    step, out = int(window * (1 - overlap)), [0]
    while out[-1] + window < length:
        out.append(out[-1] + step)
    out[-1] = length - window
    return out


def corners(transform, col_off, row_off, rel, window=512):
    """Map corners (4, 2) of a 0-1000 box answered on the tile at (col_off, row_off) read at full resolution."""
    x0, y0, x1, y1 = (v / 1000 * window for v in rel)
    cols = col_off + np.array([x0, x1, x1, x0])
    rows = row_off + np.array([y0, y0, y1, y1])
    a, b, c, d, e, f = transform[:6]
    return np.column_stack([a * cols + b * rows + c, d * cols + e * rows + f])


def quad(geom):
    return np.array(geom.exterior.coords)[:4]


def assert_same_quads(found, expected):
    """Every found quad matches exactly one expected quad and vice versa (to a micrometre)."""
    assert len(found) == len(expected)
    for e in expected:
        hits = [f for f in found if np.abs(f - e).max() < 1e-6]
        assert len(hits) == 1, f"no detection at {e.tolist()}"


def test_fixed_answer_lands_on_every_tile_of_the_aerial_raster(tmp_path):
    path, out = RASTERS["mercator_aerial"], str(tmp_path / "found.gpkg")
    with serve(stream(sse_events([FIXED]))) as srv:
        r = run("find", path, "ships", "--tile", "512", "--backend", "openai", "--endpoint", url(srv),
                "--model", "scripted", "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["tiles"] == {"total": 25, "done": 25, "skipped_nodata": 0}
    assert summary["detections"] == summary["candidates"] == 25 and summary["labels"] == {"ship": 25}
    assert summary["files"] == [out] and not summary["cancelled"]
    assert set(summary["timings"]) == {"read_s", "model_s", "nms_s", "other_s", "total_s"}
    assert "tile 1 of 25" in r.stderr and "tile 25 of 25" in r.stderr
    assert len(srv.received) == 25
    with rasterio.open(path) as src:
        transform = src.transform
    offs = offsets(2048, 512, 0.15)
    assert offs == [0, 435, 870, 1305, 1536]
    windows = [(c, r) for r in offs for c in offs]
    detections = layer(out, "detections")
    assert_same_quads([quad(g) for g, _ in detections], [corners(transform, c, r, REL_BOX) for c, r in windows])
    assert all(p["label"] == "ship" and p["rank"] == 1 and p["kind"] == "box" for _, p in detections)
    answers = layer(out, "answers")
    assert_same_quads([quad(g) for g, _ in answers], [corners(transform, c, r, (0, 0, 1000, 1000)) for c, r in windows])
    assert len({p["question_id"] for _, p in answers}) == 1
    assert {p["answer_id"] for _, p in answers} == {p["answer_id"] for _, p in detections}
    assert all(p["task"] == "grounding" and p["question"] == "ships" and p["answer"] == FIXED for _, p in answers)


def test_gcp_raster_tiles_through_the_warped_view(tmp_path):
    rel = (100, 200, 150, 250)           # smaller than the shift of the last tiles, so nothing merges
    answer = '[{"bbox_2d": [100, 200, 150, 250], "label": "ship"}]'
    path, out = RASTERS["gcp_grd"], str(tmp_path / "sar.gpkg")
    with serve(stream(sse_events([answer]))) as srv:
        result = find_objects(path, "ships", RemoteEngine(url(srv), "scripted"), tile=512, out=out)
    with rasterio.open(path) as src, WarpedVRT(src, crs=src.gcps[1]) as vrt:
        transform, width, height = vrt.transform, vrt.width, vrt.height
    windows = [(c, r) for r in offsets(height, 512, 0.15) for c in offsets(width, 512, 0.15)]
    assert result.tiles_total == len(windows) == 12 and result.tiles_done == 12
    asked = len(windows) - result.tiles_skipped
    assert len(srv.received) == asked == len(result.detections) > 0
    footprints = [quad(g) for g, _ in layer(out, "answers")]
    expected = {k: corners(transform, c, r, (0, 0, 1000, 1000)) for k, (c, r) in enumerate(windows)}
    tiles = sorted(d.tile for d in result.detections)
    assert_same_quads(footprints, [expected[k] for k in tiles])
    assert_same_quads([quad(g) for g, _ in layer(out, "detections")],
                      [corners(transform, *windows[k], rel) for k in tiles])
    assert all(p["modality"] == "sar" for _, p in layer(out, "answers"))


@pytest.mark.parametrize("name, tile", [("rotated_complex", 64), ("sheared", 256)])
def test_rotated_and_sheared_rasters_map_through_the_tile_affine(name, tile):
    """Tiles are windows of the raster's own (rotated or sheared) pixel grid; a box becomes the
    4 mapped corners, a parallelogram on the map."""
    rel = (100, 200, 150, 250)
    with serve(stream(sse_events(['[{"bbox_2d": [100, 200, 150, 250], "label": "ship"}]']))) as srv:
        result = find_objects(RASTERS[name], "ships", RemoteEngine(url(srv), "scripted"), tile=tile)
    with rasterio.open(RASTERS[name]) as src:
        transform, width, height = src.transform, src.width, src.height
    windows = [(c, r) for r in offsets(height, tile, 0.15) for c in offsets(width, tile, 0.15)]
    assert result.tiles_total == len(windows) and len(result.detections) == len(srv.received) > 0
    found = [np.array(d.geometry.exterior.coords)[:4] for d in result.detections]
    assert_same_quads(found, [corners(transform, *windows[d.tile], rel, tile) for d in result.detections])


def boxes_answer(boxes):
    return json.dumps([{"bbox_2d": list(b), "label": label} for b, label in boxes])


def test_an_object_seen_by_two_overlapping_tiles_is_merged(tmp_path):
    """Tiles of 512 px over the 2048 px aerial raster start at 0, 435, 870, ... . Tile 0 sees A
    (x 400..480) whole and B (x 450..500) whole; tile 1 (x from 435) sees A cut by its left border,
    B whole, and a 'boat' where B is; tile 12 sees C. Expect A, B, boat and C once each."""
    answers = {
        0: [((781, 195, 938, 313), "ship"), ((879, 586, 977, 684), "ship")],            # A, B
        1: [((0, 195, 88, 313), "ship"), ((30, 586, 127, 684), "ship"), ((29, 586, 127, 684), "boat")],
        12: [((254, 254, 449, 449), "ship")],                                             # C
    }
    path, out = RASTERS["mercator_aerial"], str(tmp_path / "merged.gpkg")
    with serve(per_request(lambda k: boxes_answer(answers.get(k, [])))) as srv:
        result = find_objects(path, "ships", RemoteEngine(url(srv), "scripted"), tile=512, out=out)
    assert len(srv.received) == 25 and result.candidates == 6
    with rasterio.open(path) as src:
        transform = src.transform
    expected = [corners(transform, 0, 0, answers[0][0][0]), corners(transform, 0, 0, answers[0][1][0]),
                corners(transform, 435, 0, answers[1][2][0]), corners(transform, 870, 870, answers[12][0][0])]
    detections = layer(out, "detections")
    assert_same_quads([quad(g) for g, _ in detections], expected)
    assert sorted(p["label"] for _, p in detections) == ["boat", "ship", "ship", "ship"]
    assert sorted((d.tile, d.rank) for d in result.detections) == [(0, 1), (0, 2), (1, 3), (12, 1)]


def test_coarser_resolution_reads_larger_windows(tmp_path):
    path, out = RASTERS["mercator_aerial"], str(tmp_path / "coarse.gpkg")
    with serve(stream(sse_events([FIXED]))) as srv:
        result = find_objects(path, "ships", RemoteEngine(url(srv), "scripted"), resolution=0.2, tile=512, out=out)
        sizes = {Image.open(io.BytesIO(base64.b64decode(
            r["body"]["messages"][0]["content"][0]["image_url"]["url"].split(",", 1)[1]))).size
            for r in srv.received}
    assert sizes == {(512, 512)}
    assert result.ground_resolution == pytest.approx((0.2, 0.2), rel=2e-3)     # geodesic metres
    assert result.tiles_total == 9 == len(result.detections)
    answers = {p["answer_id"]: g for g, p in layer(out, "answers")}
    for g, p in layer(out, "detections"):     # each box sits at its 0-1000 position in its tile's footprint
        minx, miny, maxx, maxy = answers[p["answer_id"]].bounds
        x0, y0, x1, y1 = (v / 1000 for v in REL_BOX)
        w, h = maxx - minx, maxy - miny
        expected = (minx + x0 * w, maxy - y1 * h, minx + x1 * w, maxy - y0 * h)
        assert g.bounds == pytest.approx(expected, abs=1e-6)
        assert maxx - minx == pytest.approx(1057 * 0.10009765625)     # round(0.2 m / 0.0969 m * 512) pixels


def test_all_nodata_tiles_are_skipped_without_asking():
    with serve(stream(sse_events(["[]"]))) as srv:
        result = find_objects(RASTERS["sheared"], "ships", RemoteEngine(url(srv), "scripted"), tile=64, overlap=0.0)
    assert result.tiles_skipped > 0 and result.tiles_done == result.tiles_total
    assert len(srv.received) == result.tiles_total - result.tiles_skipped
    assert result.detections == [] and result.report is None


def test_cancel_stops_after_the_tile_in_flight_and_keeps_what_was_done(tmp_path):
    cancel, out = threading.Event(), str(tmp_path / "part.gpkg")

    def progress(done, total, message):
        if done == 2:
            cancel.set()

    with serve(stream(sse_events([FIXED]))) as srv:
        result = find_objects(RASTERS["mercator_aerial"], "ships", RemoteEngine(url(srv), "scripted"), tile=512,
                              out=out, on_progress=progress, cancel=cancel)
    assert result.cancelled and result.tiles_done == 2 and len(srv.received) == 2
    assert len(layer(out, "answers")) == 2 and len(layer(out, "detections")) == 2


def test_extent_in_another_crs_to_shapefile(tmp_path):
    path, out = RASTERS["mercator_aerial"], str(tmp_path / "part.shp")
    with rasterio.open(path) as src:
        left, bottom = src.bounds.left, src.bounds.bottom
    to_geo = Transformer.from_crs("EPSG:3395", "EPSG:4326", always_xy=True)
    lon0, lat0 = to_geo.transform(left + 30, bottom + 40)
    lon1, lat1 = to_geo.transform(left + 100, bottom + 120)
    with serve(stream(sse_events([FIXED]))) as srv:
        r = run("find", path, "ships", "--extent", str(lon0), str(lat0), str(lon1), str(lat1), "--extent-crs",
                "EPSG:4326", "--tile", "256", "--backend", "openai", "--endpoint", url(srv), "--model", "scripted",
                "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    footprints = [g for g, _ in layer(str(tmp_path / "part_answers.shp"))]
    assert len(footprints) == summary["tiles"]["total"] == 16        # 700 x 800 pixels in tiles of 256
    union = shapely_box(*footprints[0].bounds)
    for g in footprints[1:]:
        union = union.union(g)
    pixel = 0.1001
    assert union.bounds == pytest.approx((left + 30, bottom + 40, left + 100, bottom + 120), abs=pixel)
    assert summary["candidates"] == 16
    assert len(layer(str(tmp_path / "part_detections.shp"))) == summary["detections"] <= 16


@pytest.mark.parametrize("args, message", [
    (["", "--out", "o.gpkg"], "question is empty"),
    (["ships", "--out", "o.txt"], ".gpkg or .shp"),
    (["ships", "--overlap", "0.95", "--out", "o.gpkg"], "overlap"),
    (["ships", "--tile", "10", "--out", "o.gpkg"], "tile size"),
    (["ships", "--resolution", "-1", "--out", "o.gpkg"], "resolution"),
    (["ships", "--extent-crs", "EPSG:4326", "--out", "o.gpkg"], "--extent-crs goes with --extent"),
    (["ships", "--extent", "0", "0", "1", "1", "--out", "o.gpkg"], "extent lies outside"),
    (["ships", "--extent", "0", "0", "1", "1", "--extent-crs", "EPSG:999999", "--out", "o.gpkg"], "unknown CRS"),
    (["ships", "--out", "no/such/folder/o.gpkg"], "does not exist"),
])
def test_find_bad_input_exits_2_before_loading_a_model(tmp_path, args, message):
    args = [a if not a.startswith(("o.", "no/")) else str(tmp_path / a) for a in args]
    r = run("find", RASTERS["mercator_aerial"], *args, "--model", "earthgptx-test/not-there")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not os.listdir(tmp_path)


def test_find_on_a_missing_raster_exits_2(tmp_path):
    r = run("find", str(tmp_path / "none.tif"), "ships", "--out", str(tmp_path / "o.gpkg"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_ctrl_c_writes_the_tiles_already_answered(tmp_path):
    """A real SIGINT to a running ``find``: it exits 130 and the output holds every tile answered."""
    import signal
    import time

    def slow(handler, body):
        time.sleep(0.2)
        stream(sse_events([FIXED]))(handler, body)

    out = str(tmp_path / "found.gpkg")
    with serve(slow) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "model_backend", "find", RASTERS["mercator_aerial"], "ships",
                                 "--tile", "512", "--backend", "openai", "--endpoint", url(srv), "--model", "scripted",
                                 "--concurrency", "1", "--out", out], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                text=True)
        while len(srv.received) < 5:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] and 4 <= summary["tiles"]["done"] < 25 and "Interrupted after" in stderr
    assert len(layer(out, "answers")) == summary["tiles"]["done"] == len(layer(out, "detections"))


def _counting(latency, fail_at=None):
    """A behaviour answering FIXED after ``latency`` seconds, counting requests in flight at once;
    the ``fail_at``-th request (0-based) gets HTTP 500."""
    state = {"now": 0, "most": 0, "seen": 0}
    lock = threading.Lock()

    def behaviour(handler, body):
        with lock:
            k = state["seen"]
            state["seen"] += 1
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            if handler.server.stopping.wait(latency):
                return
            if k == fail_at:
                data = b'{"error": {"message": "engine died"}}'
                handler.send_response(500)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
                return
            stream(sse_events([FIXED]))(handler, body)
        finally:
            with lock:
                state["now"] -= 1
    behaviour.state = state
    return behaviour


def test_concurrency_keeps_several_tile_questions_in_flight_and_answers_each_tile_once(tmp_path):
    out = str(tmp_path / "found.gpkg")
    behaviour = _counting(0.2)
    with serve(behaviour) as srv:
        result = find_objects(RASTERS["mercator_aerial"], "ships", RemoteEngine(url(srv), "scripted"), tile=512,
                              out=out, concurrency=4)
    answers = layer(out, "answers")
    assert behaviour.state["most"] == 4 and len(srv.received) == result.tiles_done == result.tiles_total == 25
    assert len({a[0].wkt for a in answers}) == len(answers) == 25           # each tile once
    assert result.timings["other_s"] >= 0


def test_tiles_spread_over_several_endpoints_least_busy_first(tmp_path):
    out = str(tmp_path / "found.gpkg")
    with serve(_counting(0.1)) as one, serve(_counting(0.1)) as two:
        r = run("find", RASTERS["mercator_aerial"], "ships", "--tile", "512", "--backend", "openai", "--endpoint",
                url(one), "--endpoint", url(two), "--model", "scripted", "--concurrency", "4", "--out", out)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["concurrency"] == 4
    assert len(one.received) + len(two.received) == 25 and len(one.received) >= 6 and len(two.received) >= 6
    assert len(layer(out, "answers")) == 25


def test_a_tile_that_fails_ends_the_search_after_writing_what_was_answered(tmp_path):
    out = str(tmp_path / "found.gpkg")
    with serve(_counting(0.05, fail_at=5)) as srv:
        r = run("find", RASTERS["mercator_aerial"], "ships", "--tile", "512", "--backend", "openai", "--endpoint",
                url(srv), "--model", "scripted", "--concurrency", "2", "--out", out)
    assert r.returncode == 2 and "engine died" in r.stderr and "Traceback" not in r.stderr
    written = len(layer(out, "answers"))
    # five tiles were answered before the failing sixth question; with two in flight, the question
    # beside it may be stopped by the failure (at most the tiles in flight are lost)
    assert f"the {written} tile answer(s) before it were written" in r.stderr and 4 <= written <= 6


def test_a_local_model_answers_one_tile_at_a_time_whatever_the_concurrency(tmp_path):
    from model_backend.models.loading import LoadPolicy
    from model_backend.models.local import LocalEngine
    from model_backend.testing.tiny_model import build_tiny_model

    engine = LocalEngine(build_tiny_model(str(tmp_path / "tiny"), "qwen3_vl"), LoadPolicy("cpu", "fp32"))
    inside = {"now": 0, "most": 0}
    ask = engine.ask

    def counted(*args, **kwargs):
        inside["now"] += 1
        inside["most"] = max(inside["most"], inside["now"])
        try:
            return ask(*args, **kwargs)
        finally:
            inside["now"] -= 1
    engine.ask = counted
    result = find_objects(RASTERS["utm_landsat"], "ships", engine, tile=256, max_new_tokens=4, concurrency=4)
    engine.close()
    assert inside["most"] == 1 and result.tiles_done == result.tiles_total > 1


def test_a_killed_search_kept_every_tile_it_answered_and_resume_asks_each_remaining_tile_once(tmp_path):
    """kill -9 part-way: the GeoPackage holds the tiles answered, with their detections; --resume asks
    only the others, every tile ends answered exactly once and the detections are merged over all."""
    import signal
    import time

    out = str(tmp_path / "found.gpkg")
    args = ["find", RASTERS["mercator_aerial"], "ships", "--tile", "512", "--backend", "openai", "--model", "scripted",
            "--concurrency", "2", "--out", out]
    with serve(_counting(0.15)) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "model_backend", *args, "--endpoint", url(srv)], cwd=ROOT,
                                env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len(srv.received) < 8:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    answered = layer(out, "answers")
    assert 4 <= len(answered) < 25 and len(layer(out, "detections")) == len(answered)
    with serve(_counting(0.01)) as srv:
        r = run(*args, "--endpoint", url(srv), "--resume")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["resumed_tiles"] == len(answered) and len(srv.received) == 25 - len(answered)
    final = layer(out, "answers")
    assert len(final) == 25 and len({g.wkt for g, _ in final}) == 25              # each tile exactly once
    assert len({p["question_id"] for _, p in final}) == 1
    assert len(layer(out, "detections")) == 25 and f"resuming: {len(answered)} of 25" in r.stderr
    with serve(_counting(0.01)) as srv:                                          # nothing left: nothing asked
        again = run(*args, "--endpoint", url(srv), "--resume")
        assert again.returncode == 0 and len(srv.received) == 0 and len(layer(out, "detections")) == 25
    valid = subprocess.run(["/usr/bin/python3", "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py",
                            out], capture_output=True, text=True)
    assert valid.returncode == 0, valid.stdout + valid.stderr                     # rows deleted, index kept


def test_resume_needs_a_geopackage_and_other_settings_start_a_new_run(tmp_path):
    r = run("find", RASTERS["mercator_aerial"], "ships", "--backend", "openai", "--endpoint", "http://127.0.0.1:9/v1",
            "--model", "m", "--resume", "--out", str(tmp_path / "found.shp"))
    assert r.returncode == 2 and "--resume needs the GeoPackage output" in r.stderr
    out = str(tmp_path / "found.gpkg")
    with serve(_counting(0.0)) as srv:
        first = run("find", RASTERS["mercator_aerial"], "ships", "--tile", "1024", "--backend", "openai",
                    "--endpoint", url(srv), "--model", "m", "--out", out)
        other = run("find", RASTERS["mercator_aerial"], "ships", "--tile", "512", "--backend", "openai",
                    "--endpoint", url(srv), "--model", "m", "--resume", "--out", out)
    assert first.returncode == 0 and other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["resumed_tiles"] == 0
    assert len(srv.received) == json.loads(first.stdout)["tiles"]["total"] + 25


def test_an_unexpected_engine_failure_ends_the_search_like_any_other(tmp_path):
    """An engine that raises something other than EarthGPTXError (a RuntimeError from a library) stops
    the questions in flight, writes what was answered, and is one line, not a traceback."""
    from model_backend.core.errors import EarthGPTXError

    class Failing(RemoteEngine):
        def ask(self, request, on_text=None, cancel=None, on_reasoning=None):
            with lock:
                calls.append(1)
                if len(calls) == 4:
                    raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")
            return super().ask(request, on_text, cancel, on_reasoning)

    calls, lock, out = [], threading.Lock(), str(tmp_path / "found.gpkg")
    with serve(_counting(0.05)) as srv:
        with pytest.raises(EarthGPTXError, match=r"asking tile \d+ failed: RuntimeError: CUDA error: an illegal "
                                                 r"memory access was encountered \(the \d+ tile answer"):
            find_objects(RASTERS["mercator_aerial"], "ships", Failing(url(srv), "scripted"), tile=512, out=out,
                         concurrency=2)
    assert 2 <= len(layer(out, "answers")) <= 4 and len(calls) < 10


def test_several_rasters_and_a_raster_list_go_to_one_output(tmp_path):
    listing = tmp_path / "scenes.txt"
    listing.write_text(f"# two scenes\n{RASTERS['utm_landsat']}\n\n{RASTERS['gcp_grd']}\n")
    out = str(tmp_path / "found.gpkg")
    with serve(_counting(0.0)) as srv:
        r = run("find", RASTERS["mercator_aerial"], f"@{listing}", "ships", "--tile", "512", "--backend", "openai",
                "--endpoint", url(srv), "--model", "scripted", "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    rasters = [s["raster"] for s in summary["rasters"]]
    assert rasters == [RASTERS["mercator_aerial"], RASTERS["utm_landsat"], RASTERS["gcp_grd"]]
    answers = layer(out, "answers")
    by_raster = Counter(p["raster_source"] for _, p in answers)
    assert [by_raster[x] for x in rasters] == [s["tiles"]["done"] - s["tiles"]["skipped_nodata"]
                                               for s in summary["rasters"]]
    assert len(srv.received) == len(answers) and summary["files"] == [out]
    assert len({p["question_id"] for _, p in answers}) == 3              # one search per raster
    empty = tmp_path / "none.txt"
    empty.write_text("# nothing\n")
    r = run("find", f"@{empty}", "ships", "--backend", "openai", "--endpoint", "http://127.0.0.1:9/v1", "--model",
            "m", "--out", out)
    assert r.returncode == 2 and "no raster to search" in r.stderr


def test_a_local_model_asked_tiles_in_batches_answers_as_one_at_a_time(tmp_path):
    """--batch-size 4: one left-padded generate per four tiles (of several sizes: the last row and
    column are narrower); greedy, so every tile's answer is the one it gets alone."""
    from model_backend.testing.tiny_model import build_tiny_model

    tiny = build_tiny_model(str(tmp_path / "tiny"), "qwen3_vl")
    texts = {}
    for batch in (1, 4, "auto"):
        out = str(tmp_path / f"b{batch}.gpkg")
        r = run("find", RASTERS["utm_landsat"], "ships", "--tile", "320", "--model", tiny, "--device", "cpu",
                "--quantization", "fp32", "--max-new-tokens", "8", "--batch-size", str(batch), "--out", out)
        assert r.returncode == 0, r.stderr
        chosen = json.loads(r.stdout)["batch_size"]
        if batch == "auto":  # a tiny model in gigabytes of free RAM: the cap
            assert chosen == 16 and "--batch-size auto: 16 tile(s) per generate" in r.stderr
        else:
            assert chosen == batch
        texts[batch] = {g.wkt: p["answer"] for g, p in layer(out, "answers")}
    assert len(texts[1]) > 4 and texts[4] == texts[1] and texts["auto"] == texts[1]
    r = run("find", RASTERS["utm_landsat"], "ships", "--model", tiny, "--batch-size", "many", "--out",
            str(tmp_path / "x.gpkg"))
    assert r.returncode == 2 and "expected a whole number or auto" in r.stderr and not (tmp_path / "x.gpkg").exists()


# -- outlines (--masks) ------------------------------------------------------------------------------

VALIDATE_GPKG = "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py"
#: tiles 0 (x 0..512) and 1 (x 435..947) of the aerial raster in tiles of 512: A (x 400..480) whole on
#: tile 0 and cut on tile 1 (the two detections merge); L (x 400..600), wider than the overlap, cut on both
#: (the detections do not merge: the outlines join across the border); a boat where L is cut on tile 1
#: (another label: never joined); C alone on tile 12
CUT_OBJECTS = {
    0: [((781, 195, 938, 313), "ship"), ((781, 586, 1000, 684), "ship")],                # A, L
    1: [((0, 195, 88, 313), "ship"), ((0, 586, 322, 684), "ship"), ((0, 586, 322, 684), "boat")],
    12: [((254, 254, 449, 449), "ship")],                                               # C
}


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory):
    from model_backend.testing.tiny_model import build_tiny_model
    from model_backend.testing.tiny_sam import build_tiny_sam

    built = {"sam2": build_tiny_sam(str(tmp_path_factory.mktemp("sam2")), "sam2")}
    built["qwen"] = build_tiny_model(str(tmp_path_factory.mktemp("qwen")), "qwen3_vl")   # a VLM, no segmenter
    return built


def box_masked(folder):
    """The tiny SAM 2.1 in ``folder``, loaded, its masks (noise) replaced by each prompt's box, so that
    outlines land where the detections are."""
    from model_backend.models.loading import LoadPolicy
    from model_backend.models.segmentation import SegmentEngine

    engine = SegmentEngine(folder, LoadPolicy("cpu", "fp32"))
    segment = engine.segment

    def boxes(image, prompts, phrase=None, threshold=0.5):
        masks = segment(image, prompts, phrase, threshold)
        for m in masks:
            x0, y0, x1, y1 = (int(round(v)) for v in m.prompt.box)
            m.mask = np.zeros_like(m.mask)
            m.mask[y0:y1, x0:x1] = True
        return masks
    engine.segment = boxes
    return engine


def assert_valid_gpkg(path):
    valid = subprocess.run(["/usr/bin/python3", VALIDATE_GPKG, path], capture_output=True, text=True)
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_outlines_of_an_object_on_two_tiles_are_joined_into_one(tiny_sam, tmp_path):
    """One outline per object: A's two (merged detections) as one, L's two halves (detections not merged)
    as one, the boat and C alone; each outline points at a kept detection; a run cancelled after tile 0
    and resumed ends with the same outlines."""
    path, out = RASTERS["mercator_aerial"], str(tmp_path / "masks.gpkg")
    segmenter = box_masked(tiny_sam["sam2"])

    def search(target, first_tile=0, **kwargs):     # one tile question at a time, in tile order
        with serve(per_request(lambda k: boxes_answer(CUT_OBJECTS.get(first_tile + k, [])))) as srv:
            return find_objects(path, "ships", RemoteEngine(url(srv), "scripted"), tile=512, out=target,
                                segmenter=segmenter, **kwargs)

    result = search(out)
    assert result.candidates == 6 and len(result.detections) == 5 and result.mask_candidates == 6
    assert result.summary()["masks"] == 4 and "masks_s" in result.timings
    masks, detections = layer(out, "masks"), layer(out, "detections")
    assert len(masks) == 4 and len(detections) == 5
    kept = {(p["answer_id"], p["rank"]): (g, p) for g, p in detections}
    assert len({(p["answer_id"], p["rank"]) for _, p in masks}) == 4
    assert all((p["answer_id"], p["rank"]) in kept and p["label"] == kept[p["answer_id"], p["rank"]][1]["label"]
               and p["prompt_kind"] == "detection" for _, p in masks)
    with rasterio.open(path) as src:
        transform = src.transform

    def part(col, rel):           # a box on the tile at (col, 0) on whole chip pixels (its mask), raster CRS
        q = corners(transform, col, 0, [round(v * 0.512) / 0.512 for v in rel])
        return shapely_box(*q.min(0), *q.max(0))

    only = {0: part(0, (0, 0, 1000, 1000)).difference(part(435, (0, 0, 1000, 1000))),
            1: part(435, (0, 0, 1000, 1000)).difference(part(0, (0, 0, 1000, 1000)))}
    assert Counter(p["label"] for _, p in masks) == {"ship": 3, "boat": 1}
    (tile0_id,) = {p["answer_id"] for g, p in layer(out, "answers") if g.centroid.within(only[0])}
    (a_outline, a_props), (l_outline, l_props) = sorted(((g, p) for g, p in masks if p["answer_id"] == tile0_id),
                                                        key=lambda m: m[1]["rank"])
    for outline, props, k in ((a_outline, a_props, 0), (l_outline, l_props, 1)):
        parts = [part(0, CUT_OBJECTS[0][k][0]), part(435, CUT_OBJECTS[1][k][0])]
        assert outline.geom_type == "MultiPolygon" and outline.is_valid and props["rank"] == k + 1
        assert outline.area >= max(p.area for p in parts) - 1e-6
        assert outline.area == pytest.approx(shapely.union_all(parts).area)   # the union
        assert all(outline.buffer(1e-6).contains(p) for p in parts)
        assert props["area_m2"] > 0
    assert l_outline.intersects(only[0]) and l_outline.intersects(only[1])   # across the border
    assert l_outline.area > 1.5 * part(0, CUT_OBJECTS[0][1][0]).area
    assert_valid_gpkg(out)
    resumed = str(tmp_path / "resumed.gpkg")
    cancel = threading.Event()
    first = search(resumed, cancel=cancel, on_progress=lambda done, total, message: done == 1 and cancel.set())
    assert first.cancelled and first.tiles_done == 1 and len(layer(resumed, "masks")) == 2
    assert search(resumed, first_tile=1, resume=True).mask_candidates == 2 + 4

    def rows(features):
        return sorted((p["label"], p["rank"], round(g.area, 3), round(p["area_m2"], 3), round(p["score"], 4))
                      for g, p in features)
    assert rows(layer(resumed, "masks")) == rows(masks)
    assert_valid_gpkg(resumed)
    segmenter.close()


def test_find_masks_killed_and_resumed_outlines_every_detection_once(tiny_sam, tmp_path):
    """kill -9 part-way through ``find --masks`` (the tiny SAM 2.1, noise masks): every tile written has
    its outlines; --resume outlines only the others, and the output ends with one outline per detection."""
    import signal
    import time

    out = str(tmp_path / "found.gpkg")
    args = ["find", RASTERS["mercator_aerial"], "ships", "--resolution", "0.3", "--tile", "512", "--backend",
            "openai", "--model", "scripted", "--concurrency", "1", "--masks", "--segmenter", tiny_sam["sam2"],
            "--segmenter-device", "cpu", "--simplify", "1", "--min-area", "100", "--out", out]     # 4 tiles
    with serve(_counting(0.05)) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "model_backend", *args, "--endpoint", url(srv)], cwd=ROOT,
                                env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len(srv.received) < 3:          # one tile at a time: the first two are written
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    answered = {p["answer_id"] for _, p in layer(out, "answers")}
    partial = layer(out, "masks")
    assert 2 <= len(answered) < 4 and {p["answer_id"] for _, p in partial} == answered and len(partial) == len(answered)
    with serve(_counting(0.01)) as srv:
        r = run(*args, "--endpoint", url(srv), "--resume")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert len(srv.received) == 4 - len(answered) and summary["resumed_tiles"] == len(answered)
    assert summary["detections"] == summary["masks"] == 4 and "4 outline(s) (joined from 4 per tile)" in r.stderr
    masks, detections = layer(out, "masks"), layer(out, "detections")
    assert sorted((p["answer_id"], p["rank"]) for _, p in masks) == sorted((p["answer_id"], p["rank"])
                                                                           for _, p in detections)
    assert all(g.geom_type == "MultiPolygon" and p["area_m2"] > 0 for g, p in masks)
    assert_valid_gpkg(out)
    with serve(_counting(0.01)) as srv:                       # nothing left: the outlines stay as they are
        again = run(*args, "--endpoint", url(srv), "--resume")
    assert again.returncode == 0 and len(srv.received) == 0
    assert sorted((p["answer_id"], p["rank"], round(g.area, 6)) for g, p in layer(out, "masks")) == \
        sorted((p["answer_id"], p["rank"], round(g.area, 6)) for g, p in masks)


def test_find_masks_to_a_shapefile_writes_the_joined_outlines(tiny_sam, tmp_path):
    out = str(tmp_path / "found.shp")
    with serve(per_request(lambda k: boxes_answer(CUT_OBJECTS.get(k, [])))) as srv:
        r = run("find", RASTERS["mercator_aerial"], "ships", "--tile", "512", "--backend", "openai", "--endpoint",
                url(srv), "--model", "scripted", "--concurrency", "1", "--masks", "--segmenter", tiny_sam["sam2"],
                "--segmenter-device", "cpu", "--min-area", "100", "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    masks = layer(str(tmp_path / "found_masks.shp"))
    assert summary["detections"] == 5 and summary["masks"] == len(masks) == 4     # A, L, the boat, C
    assert str(tmp_path / "found_masks.shp") in summary["files"]


@pytest.mark.parametrize("extra, said", [
    (["--min-area", "-1"], "--min-area must be"),
    (["--simplify", "nan"], "--simplify must be"),
    (["--segmenter", "NONE"], "neither a model folder"),
    (["--segmenter", "QWEN"], "is not a segmentation model"),
])
def test_find_masks_bad_options_exit_2_before_loading_a_model(tiny_sam, tmp_path, extra, said):
    extra = [{"NONE": str(tmp_path / "none"), "QWEN": tiny_sam["qwen"]}.get(a, a) for a in extra]
    out = str(tmp_path / "o.gpkg")
    r = run("find", RASTERS["mercator_aerial"], "ships", "--masks", *extra, "--model", "earthgptx-test/not-there",
            "--out", out)
    assert r.returncode == 2 and said in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Loading" not in r.stderr
    assert not os.path.exists(out)
