"""Build a tiny, randomly initialised Qwen3-VL / Qwen2.5-VL / Qwen3.5 checkpoint, fully offline.

    python -m model_backend.testing.tiny_model OUT_DIR --family qwen3_vl|qwen2_5_vl|qwen3_5|qwen3_5_moe [--seed N]
    python -m model_backend.testing.tiny_model OUT_DIR --family sam2|sam|sam3 [--seed N]   # see tiny_sam.py

The directory it writes loads through the real path, with ``HF_HUB_OFFLINE=1``::

    AutoProcessor.from_pretrained(OUT_DIR)
    Qwen3VLForConditionalGeneration.from_pretrained(OUT_DIR)      # or Qwen2_5_VL..., Qwen3_5...
    AutoConfig / AutoModelForImageTextToText.from_pretrained(OUT_DIR)

What is in it:

* ``config.json``: the family's config with tiny dims (text hidden 64, 2 layers, 4 heads / 2 kv heads,
  head_dim 16; vision tower depth 2, hidden 64) but the real vision geometry (patch 16 / merge 2 /
  temporal 2 for Qwen3-VL and Qwen3.5, patch 14 / merge 2 / temporal 2 for Qwen2.5-VL) and token ids
  that match the tokenizer. Qwen3.5's two text layers are one Gated DeltaNet (linear attention) and one
  full-attention layer, as its real 3:1 pattern alternates them; ``qwen3_5_moe`` has, in each, a mixture of
  four experts (two per token) beside a shared expert.
* ``model.safetensors``: float32 weights drawn from ``torch.manual_seed(seed)`` (same seed, same weights).
* ``tokenizer.json`` / ``tokenizer_config.json``: a byte-level BPE trained here, with the ``tokenizers``
  library, on a small built-in corpus (English, digits, JSON punctuation), wrapped in ``Qwen2Tokenizer``
  (the class both families use) and followed by the family's special tokens.
* ``processor_config.json`` (image and video processor settings) and ``chat_template.jinja`` (a template
  written for this module: ``<|im_start|>role\\n...<|im_end|>\\n``, images as
  ``<|vision_start|><|image_pad|><|vision_end|>``, ``add_generation_prompt`` supported; for Qwen3.5 the
  generation prompt opens a ``<think>`` block unless ``enable_thinking`` is false, when it writes an empty
  one, as the real Qwen3.5 templates do).
* ``generation_config.json``: eos = [<|im_end|>, <|endoftext|>], pad = <|endoftext|>, greedy.

The model's answers are noise, of course: this is for exercising loading, prompting, preprocessing,
generation and decoding without the real weights. At generation time pass everything the processor
returns (``**inputs``), in particular ``mm_token_type_ids``: without it M-RoPE positions are wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

FAMILIES = ("qwen3_vl", "qwen2_5_vl", "qwen3_5", "qwen3_5_moe")
SAM_FAMILIES = ("sam2", "sam", "sam3")  # segmentation models, built by ``tiny_sam.build_tiny_sam``

# --- tokenizer ---------------------------------------------------------------------------------------

# Added after the trained BPE vocabulary, in this order (as in the real Qwen vocabularies, where they
# follow the byte-level BPE merges). ``special`` ones are skipped by ``decode(skip_special_tokens=True)``.
_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
_PLAIN_ADDED_TOKENS = {
    "qwen2_5_vl": ("<tool_call>", "</tool_call>"),
    "qwen3_vl": ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"),
    "qwen3_5": ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"),
}
_PLAIN_ADDED_TOKENS["qwen3_5_moe"] = _PLAIN_ADDED_TOKENS["qwen3_5"]
# Total vocabulary (trained BPE + added tokens) the trainer aims at; the corpus is big enough to reach it.
_TARGET_VOCAB = 1024

_SENTENCES = (
    "You are a helpful assistant for remote sensing imagery.",
    "Describe this image in detail.",
    "Locate every ship in the image and output the bounding boxes in JSON format.",
    "Detect all the airplanes and report their coordinates.",
    "Find the storage tanks near the harbour and give one box per tank.",
    "Output the point of each vehicle as a JSON list.",
    "Is there a bridge over the river? Answer yes or no.",
    "How many buildings are visible in this satellite image?",
    "The image shows an airport with two runways, a terminal and several parked planes.",
    "A large cargo ship is docked at the port, next to three smaller boats.",
    "The scene is a dense urban area with roads, houses, trees and a sports field.",
    "There is a roundabout at the centre of the image and a parking lot to the north.",
    "Farmland covers most of the chip; a small lake lies in the south east corner.",
    "The optical image was captured by a satellite at a resolution of 0.5 metres per pixel.",
    "This synthetic aperture radar image shows bright returns from the ships at sea.",
    "The infrared image highlights warm objects such as people, cars and engines.",
    "Please answer with a short sentence.",
    "The region contains a ground track field, a tennis court and a basketball court.",
    "Wind turbines stand in a row along the ridge of the hill.",
    "Clouds cover part of the image, so some objects may be hidden.",
    "No objects of that class were found in the image.",
    "Sure, here is the result in JSON format.",
)
_LABELS = (
    "ship", "plane", "airplane", "vehicle", "car", "truck", "bus", "boat", "harbor", "harbour",
    "bridge", "building", "house", "road", "river", "lake", "tree", "field", "storage tank",
    "tennis court", "basketball court", "ground track field", "roundabout", "runway", "airport",
    "dam", "chimney", "wind turbine", "person", "swimming pool", "parking lot", "stadium", "train",
)


def _corpus() -> list[str]:
    """English, digits and JSON punctuation; fixed (independent of the weight seed)."""
    rng = random.Random(20240617)
    lines = list(_SENTENCES) * 4
    for i in range(1500):
        label = rng.choice(_LABELS)
        x1, y1 = rng.randint(0, 900), rng.randint(0, 900)
        x2, y2 = x1 + rng.randint(1, 120), y1 + rng.randint(1, 120)
        kind = i % 4
        if kind == 0:
            lines.append(json.dumps({"bbox_2d": [x1, y1, x2, y2], "label": label}))
        elif kind == 1:
            lines.append(json.dumps({"point_2d": [x1, y1], "label": label}))
        elif kind == 2:
            objs = [{"bbox_2d": [x1, y1, x2, y2], "label": label},
                    {"bbox_2d": [y1, x1, y2, x2], "label": rng.choice(_LABELS)}]
            lines.append("```json\n" + json.dumps(objs, indent=2) + "\n```")
        else:
            lines.append(f"There are {rng.randint(0, 40)} {label}s in the image, "
                         f"the largest at ({x1}, {y1}), ({x2}, {y2}).")
    lines.append("0123456789 ,.:;!?()[]{}\"'-_/ \n\t")
    return lines


def _train_tokenizer(family: str):
    """A byte-level BPE trained here, wrapped in the families' tokenizer class (``Qwen2Tokenizer``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    added = len(_SPECIAL_TOKENS) + len(_PLAIN_ADDED_TOKENS[family])
    # The same normaliser / pre-tokeniser / decoder that Qwen2Tokenizer rebuilds around vocab + merges on
    # load, so that the merges learnt here are the ones that apply.
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=_TARGET_VOCAB - added, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    bpe.train_from_iterator(_corpus(), trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]

    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=32768)
    tok.add_special_tokens({"extra_special_tokens": list(_SPECIAL_TOKENS[1:])})
    tok.add_tokens(list(_PLAIN_ADDED_TOKENS[family]))
    tok.eos_token = "<|im_end|>"  # as in the instruct checkpoints; pad stays <|endoftext|>
    ids = tok.convert_tokens_to_ids(list(_SPECIAL_TOKENS))
    base = len(vocab)
    if ids != list(range(base, base + len(_SPECIAL_TOKENS))):
        raise RuntimeError(f"special token ids not contiguous after the BPE vocabulary: {ids}")
    return tok


# --- chat template -----------------------------------------------------------------------------------

# Written for this module. Content is a string or a list of items {"type": "text"|"image"|"video", ...};
# an item carrying an "image"/"image_url"/"url"/"path" key without a type is taken as an image.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}\n"
    "{%- if message['content'] is string -%}\n"
    "{{- message['content'] -}}\n"
    "{%- elif message['content'] is not none -%}\n"
    "{%- for item in message['content'] -%}\n"
    "{%- if item['type'] == 'image' or (item['type'] is not defined and ('image' in item or 'image_url' in item)) -%}\n"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}\n"
    "{%- elif item['type'] == 'video' or (item['type'] is not defined and 'video' in item) -%}\n"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}\n"
    "{%- elif item['type'] == 'text' or 'text' in item -%}\n"
    "{{- item['text'] -}}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- endif -%}\n"
    "{{- '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "{{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}\n"
)
# Qwen3.5's generation prompt: thinking unless enable_thinking is false (as the 4B and 9B templates)
THINKING_CHAT_TEMPLATE = CHAT_TEMPLATE + (
    "{%- if add_generation_prompt -%}\n"
    "{%- if enable_thinking is defined and enable_thinking is false -%}\n"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}\n"
    "{%- else -%}\n"
    "{{- '<think>\\n' -}}\n"
    "{%- endif -%}\n"
    "{%- endif -%}\n"
)

# --- geometry per family -----------------------------------------------------------------------------

_MAX_PATCHES = 1024  # a 1024x1024 chip is resized to at most this many patches (before the 2x2 merge)

_GEOMETRY = {
    # patch size, image mean/std (Qwen3-VL uses 0.5; Qwen2.5-VL the CLIP statistics)
    "qwen3_vl": {"patch_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    "qwen2_5_vl": {"patch_size": 14, "mean": [0.48145466, 0.4578275, 0.40821073],
                   "std": [0.26862954, 0.26130258, 0.27577711]},
    "qwen3_5": {"patch_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
}
_GEOMETRY["qwen3_5_moe"] = _GEOMETRY["qwen3_5"]
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2


def pixel_limits(family: str) -> tuple[int, int]:
    """(min_pixels, max_pixels) of the image processor: at least 2x2 merged tokens, at most 1024 patches."""
    patch = _GEOMETRY[family]["patch_size"]
    factor = patch * MERGE_SIZE
    return 4 * factor * factor, _MAX_PATCHES * patch * patch


def _processor(family: str, tok):
    from transformers import Qwen2VLImageProcessor

    patch = _GEOMETRY[family]["patch_size"]
    min_pixels, max_pixels = pixel_limits(family)
    common = dict(patch_size=patch, merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE,
                  image_mean=_GEOMETRY[family]["mean"], image_std=_GEOMETRY[family]["std"])
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
                                            **common)
    if family in ("qwen3_vl", "qwen3_5", "qwen3_5_moe"):  # Qwen3.5 reads images through Qwen3-VL's processor
        from transformers import Qwen3VLProcessor, Qwen3VLVideoProcessor

        # Qwen3-VL's video budget is for the whole clip (split between frames).
        video_processor = Qwen3VLVideoProcessor(
            size={"shortest_edge": min_pixels, "longest_edge": 8 * max_pixels}, max_video_tokens=1024,
        cap_pixels_per_frame=True, **common)
        return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tok, video_processor=video_processor,
                                chat_template=_template(family))
    from transformers import Qwen2_5_VLProcessor, Qwen2VLVideoProcessor

    video_processor = Qwen2VLVideoProcessor(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, max_video_tokens=4096,
        cap_pixels_per_frame=True, **common)
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tok, video_processor=video_processor,
                               chat_template=_template(family))


# --- model config ------------------------------------------------------------------------------------

_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=8192, rms_norm_eps=1e-6, hidden_act="silu")
_VISION = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, in_channels=3,
               spatial_merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE,
               out_hidden_size=_TEXT["hidden_size"])


def _config(family: str, tok):
    ids = {t: tok.convert_tokens_to_ids(t) for t in _SPECIAL_TOKENS}
    eot, im_end = ids["<|endoftext|>"], ids["<|im_end|>"]
    token_ids = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                     vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    head_dim = _TEXT["hidden_size"] // _TEXT["num_attention_heads"]  # 16
    patch = _GEOMETRY[family]["patch_size"]
    if family == "qwen3_vl":
        from transformers import Qwen3VLConfig

        text = dict(_TEXT, vocab_size=len(tok), head_dim=head_dim,  # head_dim defaults to 128 otherwise
                    # mrope_section sums to head_dim / 2 (real: [24, 20, 20] for head_dim 128); interleaved
                    rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0,
                                     "mrope_section": [4, 2, 2], "mrope_interleaved": True},
                    pad_token_id=eot, bos_token_id=eot, eos_token_id=im_end, attention_bias=False,
                    tie_word_embeddings=False, dtype="float32")
        vision = dict(_VISION, patch_size=patch, hidden_act="gelu_pytorch_tanh",
                      num_position_embeddings=32 * 32,  # a perfect square (real: 48 * 48)
                      deepstack_visual_indexes=[0, 1])  # below the depth (2); <= text layers
        return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                             dtype="float32", **token_ids)
    if family in ("qwen3_5", "qwen3_5_moe"):
        from transformers import Qwen3_5Config, Qwen3_5MoeConfig

        # partial rotary 0.25 of head_dim 32: 8 rotary dims, mrope_section sums to 4 (real: [11, 11, 10])
        text = dict(_TEXT, vocab_size=len(tok), head_dim=32, layer_types=["linear_attention", "full_attention"],
                    linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=16,
                    linear_num_key_heads=2, linear_num_value_heads=4,
                    rope_parameters={"rope_type": "default", "rope_theta": 10_000_000.0, "partial_rotary_factor": 0.25,
                                     "mrope_section": [2, 1, 1], "mrope_interleaved": True},
                    pad_token_id=eot, bos_token_id=eot, eos_token_id=im_end, attention_bias=False,
                    tie_word_embeddings=False, dtype="float32")
        vision = dict(_VISION, patch_size=patch, hidden_act="gelu_pytorch_tanh", num_position_embeddings=32 * 32)
        if family == "qwen3_5_moe":
            text.update(moe_intermediate_size=32, shared_expert_intermediate_size=32, num_experts=4,
                        num_experts_per_tok=2)
        cls = Qwen3_5MoeConfig if family == "qwen3_5_moe" else Qwen3_5Config
        return cls(text_config=text, vision_config=vision, tie_word_embeddings=False, dtype="float32", **token_ids)
    from transformers import Qwen2_5_VLConfig

    text = dict(_TEXT, vocab_size=len(tok),
                # head_dim is hidden / heads = 16 here; mrope_section sums to 8 (real: [16, 24, 24])
                rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]},
                use_sliding_window=False, max_window_layers=_TEXT["num_hidden_layers"],
                pad_token_id=eot, bos_token_id=eot, eos_token_id=im_end, dtype="float32")
    vision = dict(_VISION, patch_size=patch, hidden_act="silu", tokens_per_second=2,
                  window_size=patch * MERGE_SIZE * 4,  # 112 px: 4x4 merged tokens per window (as real)
                  fullatt_block_indexes=[1])  # last block full attention, first windowed
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False,
                            dtype="float32", **token_ids)


def _model_class(family: str):
    import transformers

    return getattr(transformers, {"qwen3_vl": "Qwen3VLForConditionalGeneration",
                                  "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
                                  "qwen3_5": "Qwen3_5ForConditionalGeneration",
                                  "qwen3_5_moe": "Qwen3_5MoeForConditionalGeneration"}[family])


def _template(family: str) -> str:
    return THINKING_CHAT_TEMPLATE if family.startswith("qwen3_5") else CHAT_TEMPLATE


# --- build -------------------------------------------------------------------------------------------

def build_tiny_model(out_dir: str, family: str, seed: int = 0) -> str:
    """Write a tiny random ``family`` checkpoint (model, tokenizer, processors, chat template) to ``out_dir``.

    Returns ``out_dir``. Offline; a few MB; same ``seed``, same weights (the tokenizer never depends on
    the seed)."""
    if family in SAM_FAMILIES:
        from .tiny_sam import build_tiny_sam

        return build_tiny_sam(out_dir, family, seed)
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES + SAM_FAMILIES}, not {family!r}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import GenerationConfig

    tok = _train_tokenizer(family)
    tok.chat_template = _template(family)
    processor = _processor(family, tok)
    config = _config(family, tok)

    eot, im_end = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    generation_config = GenerationConfig(bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot,
                                         do_sample=False)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model_class(family)(config)
    model.eval()
    model.generation_config = generation_config

    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_backend.testing.tiny_model",
                                     description="Write a tiny random Qwen-VL / Qwen3.5 / SAM checkpoint (offline, "
                                                 "for tests).")
    parser.add_argument("out_dir")
    parser.add_argument("--family", choices=FAMILIES + SAM_FAMILIES, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_model(args.out_dir, args.family, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
