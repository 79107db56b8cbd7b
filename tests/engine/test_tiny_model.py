"""model_backend.testing.tiny_model: tiny random Qwen3-VL / Qwen2.5-VL checkpoints, built and loaded offline
through the real ``from_pretrained`` path, then prompted with an image and run through ``generate``."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("torchvision")

from PIL import Image  # noqa: E402

from model_backend.testing import tiny_model  # noqa: E402

FAMILIES = ["qwen3_vl", "qwen2_5_vl"]
MODEL_CLASS = {"qwen3_vl": "Qwen3VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}
PATCH = {"qwen3_vl": 16, "qwen2_5_vl": 14}
ANSWER = '{"bbox_2d": [12, 40, 300, 512], "label": "ship"}'


@pytest.fixture(scope="module", autouse=True)
def offline():
    """No hub access whatsoever: the env vars, and huggingface_hub's flag (read once at its import)."""
    import huggingface_hub.constants as hub_constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="module")
def built(family, offline, tmp_path_factory):
    out = str(tmp_path_factory.mktemp(family))
    assert tiny_model.build_tiny_model(out, family, seed=0) == out
    return out


@pytest.fixture(scope="module")
def loaded(built, family):
    processor = transformers.AutoProcessor.from_pretrained(built)
    model = getattr(transformers, MODEL_CLASS[family]).from_pretrained(built)
    model.eval()
    return processor, model


def _image(height=200, width=300, seed=0):
    """A real-ish RGB chip: smooth gradients plus noise and a bright rectangle."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    arr = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    arr[40:80, 100:180] = 250
    return Image.fromarray(arr, "RGB")


def _messages(image):
    return [
        {"role": "system", "content": "You are a helpful assistant for remote sensing imagery."},
        {"role": "user", "content": [{"type": "image", "image": image},
                                     {"type": "text", "text": "Locate every ship in the image."}]},
    ]


def _prompt_inputs(processor, image):
    text = processor.apply_chat_template(_messages(image), add_generation_prompt=True, tokenize=False)
    return text, processor(text=[text], images=[image], return_tensors="pt")


def _dir_size(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def test_built_directory_is_small_and_complete(built):
    assert _dir_size(built) < 10 * 1024 * 1024
    names = set(os.listdir(built))
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "chat_template.jinja"):
        assert name in names, names
    assert {"processor_config.json", "preprocessor_config.json"} & names, names


def test_config_matches_tokenizer_and_processor(built, loaded, family):
    processor, model = loaded
    config = transformers.AutoConfig.from_pretrained(built)
    assert config.model_type == family
    tok = processor.tokenizer
    assert config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>") == processor.image_token_id
    assert config.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>") == processor.video_token_id
    assert config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert config.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    text, vision = config.text_config, config.vision_config
    assert text.vocab_size == len(tok)
    assert 300 <= len(tok) <= 1100
    assert text.hidden_size == 64 and text.num_hidden_layers == 2
    assert text.pad_token_id == tok.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token == "<|im_end|>"

    gen = model.generation_config
    assert gen.do_sample is False
    assert tok.convert_tokens_to_ids("<|im_end|>") in list(gen.eos_token_id)
    assert gen.pad_token_id == tok.pad_token_id

    # Vision geometry: the real patch sizes, the processors agree with the tower.
    assert vision.patch_size == PATCH[family]
    assert vision.spatial_merge_size == 2 and vision.temporal_patch_size == 2
    for proc in (processor.image_processor, processor.video_processor):
        assert proc.patch_size == vision.patch_size
        assert proc.merge_size == vision.spatial_merge_size
        assert proc.temporal_patch_size == vision.temporal_patch_size
    assert vision.depth == 2
    assert vision.out_hidden_size == text.hidden_size

    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert head_dim == text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    if family == "qwen3_vl":
        assert text.head_dim == 16
        assert all(0 <= i < vision.depth for i in vision.deepstack_visual_indexes)
        assert len(vision.deepstack_visual_indexes) <= text.num_hidden_layers
        assert math.isqrt(vision.num_position_embeddings) ** 2 == vision.num_position_embeddings
    else:
        assert all(0 <= i < vision.depth for i in vision.fullatt_block_indexes)
        assert vision.window_size % (vision.patch_size * vision.spatial_merge_size) == 0

    # max_pixels: a 1024x1024 chip becomes at most 1024 patches before merging.
    min_pixels, max_pixels = tiny_model.pixel_limits(family)
    size = processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (min_pixels, max_pixels)
    assert max_pixels == 1024 * PATCH[family] ** 2


def test_auto_classes_resolve(built, family):
    model = transformers.AutoModelForImageTextToText.from_pretrained(built)
    assert type(model).__name__ == MODEL_CLASS[family]
    processor = transformers.AutoProcessor.from_pretrained(built)
    assert type(processor.tokenizer).__name__ == "Qwen2Tokenizer"


def test_tokenizer_handles_json_answers(loaded):
    tok = loaded[0].tokenizer
    ids = tok(ANSWER, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == ANSWER
    assert len(ids) < len(ANSWER) * 0.8  # merges learnt: not one token per byte
    # Words from the corpus are single tokens; digits are split one by one (as in Qwen).
    assert len(tok(" ship", add_special_tokens=False)["input_ids"]) == 1
    assert len(tok("512", add_special_tokens=False)["input_ids"]) == 3
    for special in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|box_start|>"):
        assert tok(special, add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids(special)]
    wrapped = tok("<|im_start|>assistant\n" + ANSWER + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(wrapped, skip_special_tokens=True) == "assistant\n" + ANSWER


def test_chat_template_renders_images_and_generation_prompt(loaded):
    processor = loaded[0]
    image = _image()
    text = processor.apply_chat_template(_messages(image), add_generation_prompt=True, tokenize=False)
    assert text == ("<|im_start|>system\nYou are a helpful assistant for remote sensing imagery.<|im_end|>\n"
                    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
                    "Locate every ship in the image.<|im_end|>\n<|im_start|>assistant\n")
    history = _messages(image) + [{"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}]
    text = processor.apply_chat_template(history, add_generation_prompt=False, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n" + ANSWER + "<|im_end|>\n")
    # The tokenizer carries the same template (text-only use).
    plain = processor.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}],
                                                    add_generation_prompt=True, tokenize=False)
    assert plain == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_image_prompt_generates(loaded, family):
    processor, model = loaded
    image = _image()
    _, inputs = _prompt_inputs(processor, image)
    grid = inputs["image_grid_thw"]
    assert grid.shape == (1, 3)
    merge = processor.image_processor.merge_size
    n_pad = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_pad == int(grid.prod()) // merge**2
    assert inputs["pixel_values"].shape[0] == int(grid.prod())
    assert "mm_token_type_ids" in inputs  # must reach generate (M-RoPE positions)
    assert int(inputs["mm_token_type_ids"].sum()) == n_pad

    # The tokenize=True path gives the same ids.
    direct = processor.apply_chat_template(_messages(image), add_generation_prompt=True, tokenize=True,
                                           return_dict=True, return_tensors="pt")
    assert torch.equal(direct["input_ids"], inputs["input_ids"])

    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    new = out[0, prompt_len:].tolist()
    assert torch.equal(out[0, :prompt_len], inputs["input_ids"][0])
    eos = set(model.generation_config.eos_token_id)
    assert len(new) == 8 or (1 <= len(new) < 8 and new[-1] in eos)
    assert all(0 <= t < len(processor.tokenizer) for t in new)
    assert isinstance(processor.decode(new, skip_special_tokens=True), str)
    assert len(processor.batch_decode(out[:, prompt_len:], skip_special_tokens=True)) == 1

    # Greedy decoding is deterministic.
    with torch.no_grad():
        again = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert torch.equal(out, again)


def test_large_chip_is_capped_at_1024_patches(loaded):
    processor = loaded[0]
    big = Image.fromarray(np.zeros((1024, 1024, 3), np.uint8))
    grid = processor.image_processor(images=[big], return_tensors="pt")["image_grid_thw"]
    assert int(grid.prod()) <= 1024


def test_same_seed_same_weights(built, family, tmp_path):
    from safetensors.torch import load_file

    again = tiny_model.build_tiny_model(str(tmp_path / "same"), family, seed=0)
    other = tiny_model.build_tiny_model(str(tmp_path / "other"), family, seed=1)
    a = load_file(os.path.join(built, "model.safetensors"))
    b = load_file(os.path.join(again, "model.safetensors"))
    c = load_file(os.path.join(other, "model.safetensors"))
    assert a.keys() == b.keys() == c.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    emb = next(k for k in a if k.endswith("embed_tokens.weight"))
    assert not torch.equal(a[emb], c[emb])
    # The tokenizer does not depend on the seed.
    with open(os.path.join(built, "tokenizer.json"), encoding="utf-8") as f1, \
            open(os.path.join(other, "tokenizer.json"), encoding="utf-8") as f2:
        assert json.load(f1) == json.load(f2)


def test_save_pretrained_round_trip(loaded, family, tmp_path):
    processor, model = loaded
    out = str(tmp_path / "resaved")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    processor2 = transformers.AutoProcessor.from_pretrained(out)
    model2 = getattr(transformers, MODEL_CLASS[family]).from_pretrained(out)
    model2.eval()
    state, state2 = model.state_dict(), model2.state_dict()
    assert state.keys() == state2.keys()
    for key in state:
        assert torch.equal(state[key], state2[key]), key
    assert processor2.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert processor2.chat_template == processor.chat_template
    assert processor2.image_processor.size == processor.image_processor.size

    image = _image(seed=1)
    _, inputs = _prompt_inputs(processor, image)
    _, inputs2 = _prompt_inputs(processor2, image)
    assert torch.equal(inputs["input_ids"], inputs2["input_ids"])
    assert torch.equal(inputs["pixel_values"], inputs2["pixel_values"])
    with torch.no_grad():
        a = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        b = model2.generate(**inputs2, max_new_tokens=4, do_sample=False)
    assert torch.equal(a, b)


def test_cli(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert tiny_model.main([out, "--family", "qwen2_5_vl", "--seed", "2"]) == 0
    assert capsys.readouterr().out.strip().endswith(out)
    config = transformers.AutoConfig.from_pretrained(out)
    assert config.model_type == "qwen2_5_vl"
    with pytest.raises(SystemExit):
        tiny_model.main([out, "--family", "llava"])
    with pytest.raises(ValueError):
        tiny_model.build_tiny_model(out, "llava")
