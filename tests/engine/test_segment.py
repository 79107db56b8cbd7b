"""Outlines end to end with tiny random segmenters (SAM 2.1, SAM, SAM 3) through the real loading path:
``segment`` on real rasters (north-up, rotated, GCP-only), outlines on the chip's pixel grid that
rasterise back to the model's masks, bad inputs refused before any model loads, and ``ask --masks``
outlining a scripted server's detections."""

import json
import os
import subprocess
import sys

import fiona
import numpy as np
import pytest
import rasterio.features
from shapely.geometry import shape
from shapely.ops import transform as shapely_transform

from conftest import RASTERS
from model_backend.geo.raster import RasterSource
from model_backend.jobs.segment import segment_raster
from model_backend.core.prompts import VisualPrompt
from model_backend.models.loading import LoadPolicy
from model_backend.models.segmentation import SegmentEngine
from model_backend.testing.tiny_sam import build_tiny_sam
from openai_server import serve, sse_events, stream, url

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, HF_HUB_OFFLINE="1")


def run(*args):
    return subprocess.run([sys.executable, "-m", "model_backend", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=ENV)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return {family: build_tiny_sam(str(tmp_path_factory.mktemp(family)), family) for family in ("sam2", "sam", "sam3")}


def _view_prompts(raster, fractions):
    """Prompts at fractions of the raster's read view, in the raster's CRS: a point, a box, an L-shaped polygon."""
    with RasterSource(raster) as src:
        w, h = src.view_size
        to_crs = src.view_affine.apply
    fx, fy = fractions
    (px,), (py,) = to_crs([fx * w], [fy * h])
    corners = [(0.3, 0.3), (0.6, 0.3), (0.6, 0.4), (0.4, 0.4), (0.4, 0.6), (0.3, 0.6)]
    xs, ys = to_crs([c[0] * w for c in corners], [c[1] * h for c in corners])
    bx, by = to_crs([0.5 * w, 0.8 * w], [0.5 * h, 0.7 * h])
    return [VisualPrompt.point(px, py, 1),
            VisualPrompt.box(min(bx), min(by), max(bx), max(by), 2),
            VisualPrompt.polygon(list(zip(xs, ys)), 3)]


@pytest.mark.parametrize("name", ["utm_landsat", "rotated_complex", "gcp_grd"])
def test_outlines_lie_on_the_chip_pixel_grid_and_rasterise_back_to_the_masks(tiny, name, tmp_path):
    engine = SegmentEngine(tiny["sam2"], LoadPolicy("cpu", "fp32"))
    out = str(tmp_path / "masks.gpkg")
    prompts = _view_prompts(RASTERS[name], (0.25, 0.25))
    result = segment_raster(RASTERS[name], prompts, None, engine, out=out)
    chip = result.chip
    assert len(result.masks) == 3 and [m.prompt.index for m in result.masks] == [1, 2, 3]
    to_pixels = chip.affine.inverse().apply
    written = {f["properties"]["prompt_index"]: f for f in fiona.open(out, layer="masks")}
    assert len(written) == 3 - result.empty
    for m in result.masks:
        if not m.mask.any():
            continue
        f = written[m.prompt.index]
        assert f["properties"]["prompt_kind"] == m.prompt.kind and f["properties"]["score"] == pytest.approx(m.score)
        g = shape(f["geometry"])
        pixels = shapely_transform(lambda x, y: tuple(np.asarray(v) for v in to_pixels(np.asarray(x), np.asarray(y))),
                                   g)
        coords = np.concatenate([np.asarray(ring.coords) for poly in pixels.geoms
                                 for ring in [poly.exterior, *poly.interiors]])
        assert np.abs(coords - np.round(coords)).max() < 1e-6       # every vertex a pixel corner
        back = rasterio.features.rasterize([pixels], out_shape=m.mask.shape, transform=rasterio.Affine.identity())
        assert np.array_equal(back.astype(bool), m.mask)            # exactly the model's mask
        assert f["properties"]["area_m2"] > 0
    with fiona.open(out, layer="prompts") as src:
        assert [p["properties"]["kind"] for p in src] == ["point", "box", "polygon"]


def test_segment_command_writes_outlines_and_refuses_bad_input_before_loading(tiny, tmp_path):
    raster = RASTERS["utm_landsat"]
    with RasterSource(raster) as src:
        (x,), (y,) = src.view_affine.apply([200.0], [150.0])
    out = str(tmp_path / "m.shp")
    r = run("segment", raster, "--point", str(x), str(y), "--box", str(x), str(y - 900), str(x + 900), str(y),
            "--model", tiny["sam2"], "--device", "cpu", "--simplify", "1.5", "--min-area", "4", "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["segmenter"]["family"] == "sam2" and len(summary["masks"]) + summary["empty"] == 2
    assert os.path.exists(str(tmp_path / "m_masks.shp"))
    with fiona.open(str(tmp_path / "m_masks.shp")) as src:
        assert {"prompt_idx", "prompt_knd", "area_m2", "score"} <= set(src.schema["properties"])
    bad = [(["--model", tiny["sam2"]], "nothing to outline"),
           (["--point", "0", "0", "--model", tiny["sam2"]], "outside the raster"),
           (["--point", str(x), str(y), "--text", "ships", "--model", tiny["sam2"]], "--text needs a SAM 3 model"),
           (["--point", str(x), str(y), "--model", tiny["sam2"], "--min-area", "-1"], "--min-area must be"),
           (["--point", str(x), str(y), "--model", str(tmp_path / "none")], "neither a model folder"),
           (["--text", "  ", "--model", tiny["sam3"]], "--text is empty")]
    for extra, said in bad:
        target = str(tmp_path / "bad.gpkg")
        r = run("segment", raster, *extra, "--out", target)
        assert r.returncode == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, (extra, r.stderr)
        assert "Loading the segmenter" not in r.stderr and not os.path.exists(target)


def test_sam3_outlines_every_instance_of_a_phrase(tiny, tmp_path):
    out = str(tmp_path / "p.gpkg")
    r = run("segment", RASTERS["utm_landsat"], "--text", "ships", "--model", tiny["sam3"], "--device", "cpu",
            "--out", out)
    assert r.returncode == 0, r.stderr
    masks = json.loads(r.stdout)["masks"]
    assert all(m["prompt_kind"] == "phrase" and m["label"] == "ships" for m in masks)
    assert [m["rank"] for m in masks] == list(range(1, len(masks) + 1))
    assert [m["score"] for m in masks] == sorted((m["score"] for m in masks), reverse=True)


def test_ask_grounding_with_masks_outlines_each_detection(tiny, tmp_path):
    answer = '[{"bbox_2d": [100, 200, 300, 450], "label": "ship"}, {"bbox_2d": [500, 500, 700, 650], "label": "tank"}]'
    out = str(tmp_path / "g.gpkg")
    with serve(stream(sse_events([answer]))) as srv:
        r = run("ask", RASTERS["utm_landsat"], "ships", "--task", "grounding", "--backend", "openai", "--endpoint",
                url(srv), "--model", "scripted", "--masks", "--segmenter", tiny["sam2"], "--segmenter-device", "cpu",
                "--out", out)
    assert r.returncode == 0, r.stderr
    (answer_row,) = [f["properties"] for f in fiona.open(out, layer="answers")]
    masks = [f["properties"] for f in fiona.open(out, layer="masks")]
    assert json.loads(r.stdout)["masks"] == len(masks) and 1 <= len(masks) <= 2
    assert all(m["answer_id"] == answer_row["answer_id"] and m["prompt_kind"] == "detection" for m in masks)
    assert {(m["rank"], m["label"]) for m in masks} <= {(1, "ship"), (2, "tank")}
    r = run("ask", RASTERS["utm_landsat"], "what is this?", "--masks", "--out", str(tmp_path / "x.gpkg"))
    assert r.returncode == 2 and "--masks outlines the detections of --task grounding" in r.stderr
