"""Build a tiny, randomly initialised EarthGPT-X checkpoint, offline (for tests and demos).

    python -m model_backend.models.earthgptx.tiny OUT_DIR [--seed N]

Image 64 x 64; DINOv2 patch 8, width 32, 2 layers (64 tokens); ConvNeXt 4 stages 8/16/24/32 (2 x 2 = 4
cells); spatial-aware ViT patch 8, width 32, depth 2, 4 prompt channels; fusion width 32, 1 layer; LLM a
Qwen2 of width 64, 2 layers. Tokenizer: the byte-level BPE trained offline by
``model_backend.testing.tiny_model`` plus ``<image>``, ``<p>``, ``</p>``. About 2 MB.
"""

from __future__ import annotations

import argparse
import os
import sys

TINY_IMAGE = 64


def tiny_config(tokenizer):
    from transformers import ConvNextConfig, Dinov2Config, Qwen2Config

    from .configuration import EarthGPTXConfig

    eot, im_end = tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.convert_tokens_to_ids("<|im_end|>")
    text = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                       pad_token_id=eot, bos_token_id=eot, eos_token_id=im_end, tie_word_embeddings=False,
                       initializer_range=0.2)  # frozen lm_head able to give peaked logits (see docstring)
    return EarthGPTXConfig(
        dinov2_config=Dinov2Config(image_size=TINY_IMAGE, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, mlp_ratio=2),
        convnext_config=ConvNextConfig(image_size=TINY_IMAGE, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
        spatial_config={"image_size": TINY_IMAGE, "patch_size": 8, "depth": 2, "width": 32, "heads": 2,
                        "mlp_ratio": 2.0, "max_prompts": 4},
        hybrid_fusion_config={"width": 32, "heads": 2, "layers": 1, "mlp_ratio": 2.0},
        text_config=text, image_size=TINY_IMAGE, image_token_id=tokenizer.convert_tokens_to_ids("<image>"))


def tiny_tokenizer():
    from ...testing.tiny_model import _train_tokenizer

    tok = _train_tokenizer("qwen3_vl")
    tok.add_special_tokens({"extra_special_tokens": list(tok.extra_special_tokens or []) + ["<image>"]})
    tok.add_tokens(["<p>", "</p>"])  # plain tokens: kept by decode(skip_special_tokens=True)
    return tok


def build_tiny_earthgptx(out_dir: str, seed: int = 0) -> str:
    """Write a tiny random EarthGPT-X (model, tokenizer, processor, generation config) to ``out_dir``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import GenerationConfig

    from . import EarthGPTXForConditionalGeneration, EarthGPTXProcessor

    tok = tiny_tokenizer()
    config = tiny_config(tok)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EarthGPTXForConditionalGeneration(config)
    eot, im_end = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config = GenerationConfig(bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot,
                                               do_sample=False)
    processor = EarthGPTXProcessor(tok, image_size=config.image_size, num_visual_tokens=config.num_visual_tokens,
                                   max_prompts=config.spatial_config["max_prompts"])
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_backend.models.earthgptx.tiny",
                                     description="Write a tiny random EarthGPT-X checkpoint (offline, for tests).")
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_earthgptx(args.out_dir, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
