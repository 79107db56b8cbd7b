"""What is checked before a model loads (issue 10): a damaged model folder, options out of range, a
raster that cannot be placed, a chip too large for memory. Each is one line, exit 2, and no model
is loaded (the CLI says "loading" when it loads one)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import NO_CRS, RASTERS
from model_backend.core.errors import InsufficientMemoryError, ModelNotFoundError
from model_backend.geo.raster import check_memory_for
from model_backend.models.loading import check_model_folder
from model_backend.testing.tiny_model import build_tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(str(tmp_path_factory.mktemp("tiny")), "qwen3_vl")


def ask(model, *extra, raster=RASTERS["utm_landsat"], out="/tmp/unused-never-written.gpkg"):
    return subprocess.run([sys.executable, "-m", "model_backend", "ask", raster, "What is this?", "--model", model,
                           "--device", "cpu", "--quantization", "fp32", "--max-new-tokens", "4", *extra, "--out", out],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))


def _weights(folder):
    return os.path.join(folder, "model.safetensors")



def _damage_config(folder):
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write('{"model_type": "qwen3_vl", ')


def _config_without_type(folder):
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"architectures": ["X"]}, f)


def _cut_header(folder):
    os.truncate(_weights(folder), 100)


def _cut_data(folder):
    path = _weights(folder)
    os.truncate(path, os.path.getsize(path) - 1000)


def _missing_shard(folder):
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": {"a": "model.safetensors",
                                                  "b": "model-00002-of-00002.safetensors"}}, f)


def _no_weights(folder):
    os.remove(_weights(folder))


def _garbage_header(folder):
    path = _weights(folder)
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(b"\xff\xfe not json")


@pytest.mark.parametrize("damage, words", [
    (_damage_config, "config.json is not valid JSON"),
    (_config_without_type, "config.json names no model_type"),
    (_cut_header, "model.safetensors is cut short"),
    (_cut_data, "model.safetensors is cut short"),
    (_garbage_header, "model.safetensors has a damaged header"),
    (_missing_shard, "model-00002-of-00002.safetensors is missing"),
    (_no_weights, "holds no weights"),
])
def test_a_damaged_model_folder_is_refused_before_loading(tiny, tmp_path, damage, words):
    folder = str(tmp_path / "model")
    shutil.copytree(tiny, folder)
    check_model_folder(folder)                               # whole: accepted
    damage(folder)
    with pytest.raises(ModelNotFoundError, match=words):
        check_model_folder(folder)
    r = ask(folder)
    assert r.returncode == 2 and words in r.stderr and "download it again" in r.stderr
    assert "Traceback" not in r.stderr and "loading" not in r.stderr.lower()
    assert len(r.stderr.strip().splitlines()) <= 2              # the chip line, then the error


@pytest.mark.parametrize("extra, words", [
    (("--max-new-tokens", "0"), "max_new_tokens must be 1..32768"),
    (("--max-pixels", "1000000000000"), "pixel budget must be at most"),
    (("--context", "nan"), "context margin"),
])
def test_options_out_of_range_are_refused_before_loading(tiny, extra, words):
    r = ask(tiny, *extra)
    assert r.returncode == 2 and words in r.stderr and "loading" not in r.stderr.lower()


def test_a_raster_that_cannot_be_placed_is_refused_before_loading(tiny):
    r = ask(tiny, raster=NO_CRS)
    assert r.returncode == 2 and "no CRS" in r.stderr and "loading" not in r.stderr.lower()


def test_a_chip_too_large_for_the_memory_is_refused():
    with pytest.raises(InsufficientMemoryError, match="lower the pixel budget"):
        check_memory_for((4096, 8192, 8192), np.dtype("float64"))
    check_memory_for((3, 1024, 1024), np.dtype("uint16"))      # an ordinary chip fits


def test_a_prompt_outside_the_raster_is_refused_before_any_model_loads(tiny, tmp_path):
    out = str(tmp_path / "never.gpkg")
    r = ask(tiny, "--point", "2.35", "48.85", "--crs", "EPSG:4326", out=out)   # Paris, on a Bahamas scene
    assert r.returncode == 2 and "outside the raster" in r.stderr and "loading" not in r.stderr.lower()
    assert len(r.stderr.strip().splitlines()) == 1 and not os.path.exists(out)
