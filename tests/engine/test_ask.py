"""The headless ``ask`` command end to end on real rasters: tiny local models through transformers,
and a scripted OpenAI-compatible server on loopback whose grounded box must land where its
coordinates point on the map."""

import itertools
import json
import os
import subprocess
import sys
import time

import fiona
import numpy as np
import pytest
from shapely.geometry import Point, shape

from conftest import RASTERS
from model_backend.testing.tiny_model import build_tiny_model
from openai_server import serve, sse_events, stream, url

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, HF_HUB_OFFLINE="1")


def run(*args):
    return subprocess.run([sys.executable, "-m", "model_backend", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=ENV)


def layer(path, name):
    with fiona.open(path, layer=name) as src:
        return [(shape(f["geometry"]), dict(f["properties"])) for f in src]


@pytest.fixture(scope="module", params=["qwen3_vl", "qwen2_5_vl", "qwen3_5"])
def tiny(request, tmp_path_factory):
    return build_tiny_model(str(tmp_path_factory.mktemp(request.param)), request.param)


def test_ask_with_tiny_local_model_writes_gpkg_then_appends(tiny, tmp_path):
    out = str(tmp_path / "answers.gpkg")
    args = [RASTERS["utm_landsat"], "What is in region 1?", "--point", "-77.7", "24.3", "--crs", "EPSG:4326",
            "--model", tiny, "--device", "cpu", "--quantization", "fp32", "--max-new-tokens", "8", "--out", out]
    first = run("ask", *args)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["task"] == "region_captioning"
    assert "on cpu in fp32" in first.stderr and "Wrote 1 prompt(s), 1 answer" in first.stderr
    assert result["answer"]["text"] in first.stderr  # streamed on stderr
    prompts = layer(out, "prompts")
    with fiona.open(out, layer="prompts") as src:
        assert "32618" in src.crs_wkt or "UTM zone 18N" in src.crs_wkt
    from pyproj import Transformer
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32618", always_xy=True).transform(-77.7, 24.3)
    assert prompts[0][0].distance(Point(x, y)) < 1e-6
    answers = layer(out, "answers")
    assert answers[0][1]["answer"] == result["answer"]["text"] and answers[0][1]["model"] == tiny
    assert run("ask", *args).returncode == 0
    assert len(layer(out, "answers")) == 2 and len(layer(out, "prompts")) == 2


def test_ask_with_tiny_model_on_gcp_raster_to_shapefile(tiny, tmp_path):
    out = str(tmp_path / "sar.shp")
    r = run("ask", RASTERS["gcp_grd"], "ships", "--task", "grounding", "--box", "76.2", "10.2", "76.4", "10.4",
            "--crs", "EPSG:4326", "--model", tiny, "--device", "cpu", "--quantization", "fp32",
            "--max-new-tokens", "8", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "modality sar" in r.stderr
    answers = layer(str(tmp_path / "sar_answers.shp"), None)
    assert answers[0][1]["task"] == "grounding"
    # the box prompt, as drawn in EPSG:4326 (the GCP raster's CRS)
    assert answers[0][0].bounds == pytest.approx((76.2, 10.2, 76.4, 10.4))


@pytest.mark.parametrize("name", ["rotated_complex", "gcp_grd", "utm_landsat"])
def test_grounded_box_lands_where_the_model_points(name, tmp_path):
    """A scripted server answers a Qwen3-VL grounding box (0-1000); the detection written to the
    GeoPackage is the chip-pixel box mapped through the chip's affine, corner by corner."""
    answer = '```json\n[{"bbox_2d": [100, 200, 300, 450], "label": "ship"}]\n```'
    out = str(tmp_path / "found.gpkg")
    with serve(stream(sse_events([answer[:20], answer[20:]]))) as srv:
        r = run("ask", RASTERS[name], "ships", "--task", "grounding", "--backend", "openai", "--endpoint", url(srv),
                "--model", "scripted", "--max-pixels", "65536", "--out", out)
    assert r.returncode == 0, r.stderr
    scene = json.loads(run("locate", RASTERS[name], "--max-pixels", "65536").stdout)
    w, h = scene["chip_size"]
    a = np.array(scene["chip_affine"])
    cols = np.array([100, 300, 300, 100]) / 1000 * w
    rows = np.array([200, 200, 450, 450]) / 1000 * h
    expected = np.column_stack([a[0] + a[1] * cols + a[2] * rows, a[3] + a[4] * cols + a[5] * rows])
    (geom, props), = layer(out, "detections")
    assert props["label"] == "ship" and props["rank"] == 1 and props["kind"] == "box"
    corners = np.array(geom.exterior.coords)[:4]
    assert np.abs(corners - expected).max() < 1e-9 * max(1.0, np.abs(expected).max())


def test_ask_bad_input_exits_2(tmp_path):
    r = run("ask", RASTERS["utm_landsat"], "", "--task", "vqa", "--backend", "openai", "--endpoint",
            "http://127.0.0.1:9/v1", "--model", "m", "--out", str(tmp_path / "o.gpkg"))
    assert r.returncode == 2 and "question is empty" in r.stderr
    r = run("ask", RASTERS["utm_landsat"], "hi", "--out", str(tmp_path / "o.txt"))
    assert r.returncode == 2 and ".gpkg or .shp" in r.stderr
    r = run("ask", RASTERS["utm_landsat"], "hi", "--model", "earthgptx-test/not-there", "--out", str(tmp_path / "o.gpkg"))
    assert r.returncode == 2 and "hf download" in r.stderr
    assert not os.path.exists(tmp_path / "o.gpkg")


def test_cli_timeout_bounds_a_server_that_only_keeps_alive(tmp_path):
    endless = (": keep-alive\n\n" for _ in itertools.count())
    with serve(stream(endless, delay=0.05)) as srv:
        start = time.monotonic()
        r = run("ask", RASTERS["utm_landsat"], "What is this?", "--backend", "openai", "--endpoint", url(srv),
                "--model", "m", "--timeout", "1", "--out", str(tmp_path / "o.gpkg"))
    assert time.monotonic() - start < 60
    assert r.returncode != 0 and "within 1 s" in r.stderr and "Traceback" not in r.stderr


def test_cli_keeps_a_cut_stream_marked_incomplete_and_says_so(tmp_path):
    out = str(tmp_path / "o.gpkg")
    with serve(stream(sse_events(["a harbour ", "with"], done=False)[:3], chunked=False)) as srv:
        r = run("ask", RASTERS["utm_landsat"], "What is this?", "--backend", "openai", "--endpoint", url(srv),
                "--model", "m", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "ended before the server's end-of-answer marker" in r.stderr
    (_, props), = layer(out, "answers")
    assert props["answer"] == "a harbour with" and props["finish_reason"] == "incomplete"


@pytest.mark.parametrize("size", [(4000, 4), (3, 2000)])
def test_very_elongated_rasters_are_padded_to_what_the_processor_takes(tiny, tmp_path, size):
    """Qwen-VL processors refuse an aspect ratio over 200 (a 4000x4 strip is 1000): the chip is padded."""
    import rasterio
    from rasterio.transform import from_origin

    path = str(tmp_path / "strip.tif")
    w, h = size
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:32618",
                       transform=from_origin(500000, 4000000, 10, 10)) as d:
        d.write(np.random.default_rng(1).integers(0, 255, (3, h, w), dtype=np.uint8))
    out = str(tmp_path / "strip.gpkg")
    r = run("ask", path, "ships", "--task", "grounding", "--model", tiny, "--device", "cpu", "--quantization", "fp32",
            "--max-new-tokens", "4", "--out", out)
    assert r.returncode == 0, r.stderr
    (geom, props), = layer(out, "answers")
    assert geom.bounds == pytest.approx((500000, 4000000 - 10 * h, 500000 + 10 * w, 4000000))


def _echoing(kind):
    """A server that puts the Authorization header it got into its reply, as a careless proxy might."""
    def behaviour(handler, body):
        auth = handler.headers.get("Authorization", "")
        if kind == "401":
            data = json.dumps({"error": {"message": f"bad credentials: {auth}"}}).encode()
            handler.send_response(401)
        elif kind == "html":
            data = f"<html>Proxy says no to {auth}</html>".encode()
            handler.send_response(502)
        else:
            events = {"error_event": 'data: {"error": {"message": "engine failed for %s"}}\n\n' % auth,
                      "malformed": "data: {not json %s\n\n" % auth,
                      "answer": "".join(sse_events(["a harbour"]))}[kind]
            data = events.encode()
            handler.send_response(200)
        handler.send_header("Content-Type", "text/html" if kind == "html" else
                            "application/json" if kind == "401" else "text/event-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return behaviour


@pytest.mark.parametrize("kind", ["401", "html", "error_event", "malformed", "answer"])
def test_the_api_token_appears_in_no_output_message_or_file(tmp_path, kind):
    token = "sk-live-0123456789abcdef"
    out = tmp_path / "o.gpkg"
    with serve(_echoing(kind)) as srv:
        r = subprocess.run([sys.executable, "-m", "model_backend", "ask", RASTERS["utm_landsat"], "What is this?",
                            "--backend", "openai", "--endpoint", url(srv), "--model", "m", "--out", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env=dict(ENV, EARTHGPTX_API_KEY=token + "\r\n"))
    assert (r.returncode == 0) == (kind == "answer"), r.stderr
    assert "Traceback" not in r.stderr
    assert token not in r.stdout + r.stderr
    if kind != "answer":
        assert "[redacted]" in r.stderr                       # the echo was there, and taken out
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
