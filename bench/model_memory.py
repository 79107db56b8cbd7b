"""Memory the loader estimates for the supported models, from their architectures (no weights).

Runs ``model_backend.models.loading.estimate_bytes`` (the same estimate that refuses a model that does not
fit) on each architecture below, as published in the checkpoints' config.json, and prints a table.
Usage: python bench/model_memory.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model_backend.models.loading import estimate_bytes  # noqa: E402

QWEN3_VISION = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
                    spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                    deepstack_visual_indexes=[5, 11, 17])
ROPE3 = {"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20], "mrope_interleaved": True}
ARCHITECTURES = {
    "Qwen3-VL-2B-Instruct": ("qwen3_vl", dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                                              num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                                              vocab_size=151936, tie_word_embeddings=True, rope_parameters=ROPE3),
                             dict(QWEN3_VISION, out_hidden_size=2048)),
    "Qwen3-VL-4B-Instruct": ("qwen3_vl", dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                                              num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                                              vocab_size=151936, tie_word_embeddings=True, rope_parameters=ROPE3),
                             dict(QWEN3_VISION, out_hidden_size=2560)),
    "Qwen3-VL-8B-Instruct": ("qwen3_vl", dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                                              num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                                              vocab_size=151936, tie_word_embeddings=False, rope_parameters=ROPE3),
                             dict(QWEN3_VISION, depth=27, hidden_size=1152, intermediate_size=4304,
                                  out_hidden_size=4096, deepstack_visual_indexes=[8, 16, 24])),
    "Qwen2.5-VL-7B-Instruct": ("qwen2_5_vl", dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                                  num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                                                  rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                                   "mrope_section": [16, 24, 24]}),
                               dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                                    spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                                    out_hidden_size=3584, fullatt_block_indexes=[7, 15, 23, 31])),
}


def main() -> None:
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    print(f"{'model':<26}{'4-bit GiB':>10}{'bf16 GiB':>10}   (weights + 0.5 GiB runtime margin)")
    for name, (family, text, vision) in ARCHITECTURES.items():
        cls = Qwen3VLConfig if family == "qwen3_vl" else Qwen2_5_VLConfig
        config = cls(text_config=text, vision_config=vision, tie_word_embeddings=text.get("tie_word_embeddings", False))
        print(f"{name:<26}{estimate_bytes(config, '4bit') / 2**30:>10.1f}{estimate_bytes(config, 'bf16') / 2**30:>10.1f}")


if __name__ == "__main__":
    main()
