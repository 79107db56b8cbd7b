"""A tiny native EarthGPT-X behind the same runtime as the Qwen adapters: the worker process and the
headless ``ask`` command on a real raster (the model itself is tested in test_earthgptx_model.py)."""

import json
import os
import subprocess
import sys

import fiona
import numpy as np
import pytest

from conftest import RASTERS
from model_backend.models.earthgptx.tiny import build_tiny_earthgptx
from model_backend.core.interface import AskRequest, Task
from model_backend.core.prompts import VisualPrompt
from model_backend.worker.client import WorkerClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return build_tiny_earthgptx(str(tmp_path_factory.mktemp("earthgptx") / "tiny"), seed=0)


def test_worker_loads_and_answers_with_native_earthgptx(tiny):
    client = WorkerClient(python=sys.executable, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    client.start()
    try:
        model = client.load(model=tiny, device="cpu", quantization="fp32", timeout=120)
        assert model["family"] == "earthgptx"
        chip = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
        pieces = []
        answer = client.ask(AskRequest(chip, "", (VisualPrompt.box(10, 20, 60, 70), VisualPrompt.point(100, 40, 2)),
                                       Task.RELATION, max_new_tokens=6), on_text=pieces.append, timeout=120)
        assert "".join(pieces) == answer.text and answer.meta.backend == "local"
        assert 1 <= answer.meta.generated_tokens <= 6
    finally:
        client.shutdown()


def test_ask_command_with_native_earthgptx_writes_a_geopackage(tiny, tmp_path):
    out = str(tmp_path / "native.gpkg")
    r = subprocess.run([sys.executable, "-m", "model_backend", "ask", RASTERS["thermal"], "What is in region 1?",
                        "--box", "500000", "3600000", "560000", "3660000", "--crs", "EPSG:32617", "--model", tiny,
                        "--device", "cpu", "--quantization", "fp32", "--max-new-tokens", "6", "--out", out],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["answer"]["meta"]["model_id"] == tiny
    with fiona.open(out, layer="answers") as src:
        (f,) = list(src)
    assert f["properties"]["modality"] == "infrared" and f["properties"]["task"] == "region_captioning"
