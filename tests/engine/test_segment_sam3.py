"""SAM 3 with drawn prompts, through the tiny random SAM 3 checkpoint: points, boxes and regions answered
by its tracker (loaded the first time prompts come, the image encoded once per call), a phrase by its
detector, both in one call, and the ``segment`` command outlining a point; SAM 2.1 and SAM still refuse a
phrase."""

import json
import os
import subprocess
import sys

import fiona
import numpy as np
import pytest

from conftest import RASTERS
from model_backend.core.errors import InvalidArgumentError
from model_backend.core.mask_prompts import MaskPrompt
from model_backend.geo.raster import RasterSource
from model_backend.models.loading import LoadPolicy
from model_backend.models.segmentation import SegmentEngine
from model_backend.testing.tiny_sam import build_tiny_sam

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, HF_HUB_OFFLINE="1")
HEIGHT, WIDTH = 200, 300
PROMPTS = [MaskPrompt("point", 1, ((150.0, 60.0),), (1,)),
           MaskPrompt("box", 2, box=(100.0, 40.0, 180.0, 80.0)),
           MaskPrompt("polygon", 3, ((120.0, 130.0), (140.0, 150.0), (260.0, 180.0)), (1, 1, 0),
                      box=(100.0, 120.0, 280.0, 190.0))]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return {family: build_tiny_sam(str(tmp_path_factory.mktemp(family)), family) for family in ("sam3", "sam2", "sam")}


@pytest.fixture
def sam3(tiny):
    """A fresh SAM 3 engine: the tracker not loaded yet."""
    engine = SegmentEngine(tiny["sam3"], LoadPolicy("cpu", "fp32"))
    yield engine
    engine.close()


def _image():
    """An RGB uint8 (H, W, 3) chip: noise and a bright rectangle."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[40:80, 100:180] = 250
    return image


def _count_encodings(engine):
    """Wrap the tracker's ``get_image_embeddings`` on the instance (the real one still runs); returns the
    list that gets one entry per call."""
    tracker = engine.tracker[0]
    calls, real = [], tracker.get_image_embeddings

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    tracker.get_image_embeddings = counted
    return calls


def test_drawn_prompts_give_one_mask_each_of_the_chip_size(sam3):
    masks = sam3.segment(_image(), PROMPTS)
    assert [m.prompt for m in masks] == PROMPTS
    for m in masks:
        assert m.mask.shape == (HEIGHT, WIDTH) and m.mask.dtype == bool
        assert 0.0 <= m.score <= 1.0
    tracker = sam3.tracker[0]
    assert tracker.vision_encoder.backbone is sam3.model.vision_encoder.backbone   # one copy of the backbone
    assert next(tracker.parameters()).dtype == sam3.dtype


def test_the_image_is_encoded_once_per_call_whatever_the_number_of_prompts(sam3):
    sam3.segment(_image(), PROMPTS[:1])        # loads the tracker
    calls = _count_encodings(sam3)
    sam3.segment(_image(), PROMPTS)
    assert len(calls) == 1
    sam3.segment(_image(), PROMPTS[1:2])
    assert len(calls) == 2


def test_prompts_and_a_phrase_in_one_call(sam3):
    masks = sam3.segment(_image(), PROMPTS, "ships", threshold=0.0)
    assert [m.prompt for m in masks[:len(PROMPTS)]] == PROMPTS
    found = masks[len(PROMPTS):]
    assert found and all(m.prompt.kind == "phrase" and m.prompt.label == "ships" for m in found)
    assert [m.prompt.index for m in found] == list(range(1, len(found) + 1))
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    assert all(m.mask.shape == (HEIGHT, WIDTH) for m in masks)


def test_a_phrase_alone_never_loads_the_tracker(sam3):
    found = sam3.segment(_image(), [], "ships", threshold=0.0)
    assert found and all(m.prompt.kind == "phrase" for m in found)
    assert sam3.tracker is None


@pytest.mark.parametrize("family", ["sam2", "sam"])
def test_sam2_and_sam_still_refuse_a_phrase(tiny, family):
    engine = SegmentEngine(tiny[family], LoadPolicy("cpu", "fp32"))
    with pytest.raises(InvalidArgumentError, match="a phrase needs a SAM 3 model") as refused:
        engine.segment(_image(), PROMPTS, "ships")
    assert len(str(refused.value).splitlines()) == 1
    assert engine.tracker is None


def test_segment_command_outlines_a_point_with_sam3(tiny, tmp_path):
    raster = RASTERS["utm_landsat"]
    with RasterSource(raster) as src:
        (x,), (y,) = src.view_affine.apply([200.0], [150.0])
    out = str(tmp_path / "m.gpkg")
    r = subprocess.run([sys.executable, "-m", "model_backend", "segment", raster, "--point", str(x), str(y),
                        "--model", tiny["sam3"], "--device", "cpu", "--out", out],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["segmenter"]["family"] == "sam3"
    assert [m["prompt_kind"] for m in summary["masks"]] == ["point"] and summary["empty"] == 0
    (outline,) = [f["properties"] for f in fiona.open(out, layer="masks")]
    assert outline["prompt_index"] == 1 and 0.0 <= outline["score"] <= 1.0 and outline["area_m2"] > 0
