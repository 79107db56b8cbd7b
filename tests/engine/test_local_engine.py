"""The local engine through the real transformers path, with tiny random-initialised models built
offline: loading policy, processor and chat template, streamed generate, cancel, parse, memory checks."""

import json
import os
import threading

import numpy as np
import pytest

from model_backend.core.encoding import Convention
from model_backend.core.errors import InsufficientMemoryError, InvalidArgumentError, ModelNotFoundError
from model_backend.core.interface import AskRequest, Task
from model_backend.models.loading import LoadPolicy, plan_load, resolve_source
from model_backend.models.local import LocalEngine
from model_backend.core.prompts import VisualPrompt
from model_backend.testing.tiny_model import build_tiny_model

CPU = LoadPolicy(device="cpu", quantization="fp32")
RNG = np.random.default_rng(3)


@pytest.fixture(scope="session", params=["qwen3_vl", "qwen2_5_vl"])
def engine(request, tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = build_tiny_model(str(tmp_path_factory.mktemp(request.param)), request.param)
    messages = []
    eng = LocalEngine(folder, CPU, on_status=messages.append)
    eng.status_messages = messages
    yield eng
    eng.close()


def chip(h=300, w=400):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_load_announces_device_and_precision(engine):
    assert any("on cpu in fp32" in m for m in engine.status_messages)
    d = engine.describe()
    assert d["device"] == "cpu" and d["quantization"] == "fp32" and d["family"] == engine.family.name


def test_ask_streams_and_reports_metadata(engine):
    pieces = []
    req = AskRequest(chip(), "Describe region 1.", (VisualPrompt.box(40, 30, 200, 180),), Task.REGION_CAPTIONING,
                     max_new_tokens=12)
    answer = engine.ask(req, on_text=pieces.append)
    assert "".join(pieces) == answer.text
    m = answer.meta
    assert m.generated_tokens <= 12 and m.prompt_tokens > 50 and m.backend == "local"
    assert m.finish_reason in ("stop", "length")
    assert set(m.timings) == {"encode", "first_token", "generate", "total"}
    assert 0 < m.timings["generate"] <= m.timings["total"]


def test_image_tokens_and_coordinate_frame_match_the_processor(engine):
    req = AskRequest(chip(333, 517), "What is this?", (VisualPrompt.point(100, 50),), Task.VQA)
    inputs, frame = engine.encode(req)
    grid = inputs["image_grid_thw"][0].tolist()
    merge = engine.processor.image_processor.merge_size
    n_image_tokens = int((inputs["input_ids"] == engine.model.config.image_token_id).sum())
    assert n_image_tokens == grid[0] * grid[1] * grid[2] // merge ** 2
    if engine.family.name == "qwen2_5_vl":
        patch = engine.processor.image_processor.patch_size
        assert frame.convention is Convention.RESIZED_PIXELS
        assert (frame.resized_width, frame.resized_height) == (grid[2] * patch, grid[1] * patch)
    else:
        assert frame.convention is Convention.REL_1000
    text = engine.processor.tokenizer.decode(inputs["input_ids"][0])
    assert frame.format_prompt(req.prompts[0]) in text  # the prompt is written as coordinates too


def test_cancel_stops_generation(engine):
    cancel = threading.Event()
    pieces = []

    def on_text(t):
        pieces.append(t)
        cancel.set()

    answer = engine.ask(AskRequest(chip(), "Tell me everything.", max_new_tokens=200), on_text=on_text, cancel=cancel)
    assert answer.meta.finish_reason == "cancelled"
    assert answer.meta.generated_tokens < 20


def test_missing_models_get_clear_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="hf download earthgptx-test/not-there"):
        resolve_source("earthgptx-test/not-there")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="config.json is missing"):
        resolve_source(str(tmp_path / "empty"))


def test_model_too_large_for_this_machine_is_refused_before_loading(tmp_path):
    """A Qwen3-VL config far larger than this machine's memory (no weights exist): refused from the
    estimate alone."""
    folder = build_tiny_model(str(tmp_path / "tiny"), "qwen3_vl")
    config = json.load(open(os.path.join(folder, "config.json")))
    text = config["text_config"]
    text.update(hidden_size=8192, intermediate_size=29568, num_hidden_layers=160, num_attention_heads=64,
                num_key_value_heads=8, head_dim=128)
    rope = text.get("rope_parameters") or text.get("rope_scaling")
    rope["mrope_section"] = [24, 20, 20]
    json.dump(config, open(os.path.join(folder, "config.json"), "w"))
    with pytest.raises(InsufficientMemoryError, match=r"needs about \d+\.\d GiB on cpu in bf16"):
        plan_load(folder, LoadPolicy(device="cpu"))


def test_policy_refuses_impossible_choices(tmp_path):
    folder = build_tiny_model(str(tmp_path / "tiny"), "qwen2_5_vl")
    with pytest.raises(InvalidArgumentError, match="no CUDA GPU"):
        plan_load(folder, LoadPolicy(device="cuda"))
    with pytest.raises(InvalidArgumentError, match="quantization must be"):
        LoadPolicy(quantization="int3")
    plan = plan_load(folder, LoadPolicy())
    assert plan.device == "cpu" and plan.quantization == "bf16" and "No CUDA GPU found" in plan.announcement
    plan = plan_load(folder, LoadPolicy(quantization="4bit"))
    assert "bitsandbytes CPU 4-bit, as asked" in plan.announcement
