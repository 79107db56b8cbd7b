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


@pytest.fixture(scope="session", params=["qwen3_vl", "qwen2_5_vl", "qwen3_5", "qwen3_5_moe"])
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
    inputs, frame, _ = engine.encode(req)
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


def _tensors(value, depth=0):
    """Every tensor held by ``value`` (a transformers cache object and its lists, dicts and layers)."""
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 4 and isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v, depth + 1)
    elif depth < 4 and hasattr(value, "__dict__") and not isinstance(value, type):
        for v in vars(value).values():
            yield from _tensors(v, depth + 1)


def test_a_tile_is_estimated_at_least_at_what_its_cache_and_logits_hold(engine):
    """``tile_bytes`` (what ``--batch-size auto`` divides the free memory by) covers the real cache a
    prompt leaves after its prefill, and grows with the tile and the generation budget."""
    import torch

    inputs, _, _ = engine.encode(AskRequest(chip(300, 400), "Find all ships."))
    with torch.inference_mode():
        out = engine.model(**inputs, use_cache=True)
    held = {id(t): t.numel() * t.element_size() for t in _tensors(out.past_key_values)}
    assert sum(held.values()) > 0
    assert engine.tile_bytes(400, 300, 0) >= sum(held.values()) + out.logits[0, -1].numel() * 4
    assert engine.tile_bytes(400, 300, 100) > engine.tile_bytes(400, 300, 0)
    assert engine.tile_bytes(800, 600, 0) > engine.tile_bytes(400, 300, 0)
    one = engine.tile_bytes(512, 512, 64)
    assert engine.batch_size_for(512, 512, 64, free=int(one * 5 / 0.8)) == 5
    assert engine.batch_size_for(512, 512, 64, free=one // 2) == 1
    assert engine.batch_size_for(512, 512, 64, free=one * 1000) == 16


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


@pytest.fixture(scope="module")
def qwen3_5(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return build_tiny_model(str(tmp_path_factory.mktemp("qwen3_5")), "qwen3_5")


@pytest.mark.parametrize("thinking", [False, True])
def test_qwen3_5_is_asked_not_to_think_unless_allowed_and_its_thoughts_stay_apart(qwen3_5, thinking):
    """The tiny Qwen3.5 template opens a <think> block unless enable_thinking is false (as the real 4B/9B
    templates): thinking off, the prompt holds an empty block; on, everything generated before a
    </think> is reasoning, streamed to on_reasoning, never parsed."""
    eng = LocalEngine(qwen3_5, CPU, thinking=thinking)
    try:
        req = AskRequest(chip(), "ships", task=Task.GROUNDING, max_new_tokens=16)
        inputs, _, opened = eng.encode(req)
        prompt = eng.processor.tokenizer.decode(inputs["input_ids"][0])
        assert opened is thinking
        assert prompt.endswith("<think>\n") if thinking else prompt.endswith("<think>\n\n</think>\n\n")
        text, thoughts = [], []
        answer = eng.ask(req, on_text=text.append, on_reasoning=thoughts.append)
        assert "".join(text).strip() == answer.text.strip() and "".join(thoughts).strip() == answer.reasoning
        if thinking:
            assert answer.reasoning and "<think>" not in answer.text and "</think>" not in answer.text
        else:
            assert answer.reasoning == ""
    finally:
        eng.close()


def test_qwen3_5_keeps_its_delta_rule_gates_and_vision_out_of_4bit(qwen3_5):
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText
    from model_backend.models.loading import _count_params, estimate_bytes, skip_modules

    config = AutoConfig.from_pretrained(qwen3_5)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    skip = skip_modules("qwen3_5")
    assert {"visual", "lm_head", "in_proj_a", "in_proj_b"} <= set(skip)
    gates = sum(p.numel() for n, p in model.named_parameters() if "in_proj_a" in n or "in_proj_b" in n)
    assert gates > 0
    assert _count_params(model, torch.nn.Linear, skip)[0] + gates == \
        _count_params(model, torch.nn.Linear, [s for s in skip if not s.startswith("in_proj")])[0]
    assert estimate_bytes(config, "4bit") < estimate_bytes(config, "bf16") < estimate_bytes(config, "fp32")


def test_qwen3_5_moe_keeps_its_shared_expert_gate_out_of_4bit(tmp_path):
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText
    from model_backend.models.loading import _count_params, skip_modules

    config = AutoConfig.from_pretrained(build_tiny_model(str(tmp_path / "moe"), "qwen3_5_moe"))
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    gates = [n for n, m in model.named_modules() if n.endswith("shared_expert_gate")]
    assert gates and all(isinstance(dict(model.named_modules())[n], torch.nn.Linear) for n in gates)
    skip = skip_modules("qwen3_5_moe")
    with_gates = _count_params(model, torch.nn.Linear, [s for s in skip if s != "shared_expert_gate"])[0]
    assert _count_params(model, torch.nn.Linear, skip)[0] < with_gates
