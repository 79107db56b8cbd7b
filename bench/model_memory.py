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
ROPE3_5 = {"rope_type": "default", "rope_theta": 10_000_000.0, "partial_rotary_factor": 0.25,
           "mrope_section": [11, 11, 10], "mrope_interleaved": True}
QWEN3_5_TEXT = dict(head_dim=256, vocab_size=248320, linear_conv_kernel_dim=4, linear_key_head_dim=128,
                    linear_value_head_dim=128, linear_num_key_heads=16, rope_parameters=ROPE3_5,
                    layer_types=None)  # 3 Gated DeltaNet layers, then one full-attention layer
QWEN3_5_VISION = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
                      spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304)
ARCHITECTURES = {
    # Qwen3.5 (config.json of Qwen/Qwen3.5-0.8B @2fc06364, -2B @15852e8c, -4B @851bf6e8, -9B @c2022362)
    "Qwen3.5-0.8B": ("qwen3_5", dict(QWEN3_5_TEXT, hidden_size=1024, intermediate_size=3584, num_hidden_layers=24,
                                     num_attention_heads=8, num_key_value_heads=2, linear_num_value_heads=16,
                                     tie_word_embeddings=True),
                     dict(QWEN3_5_VISION, depth=12, hidden_size=768, intermediate_size=3072, num_heads=12,
                          out_hidden_size=1024)),
    "Qwen3.5-2B": ("qwen3_5", dict(QWEN3_5_TEXT, hidden_size=2048, intermediate_size=6144, num_hidden_layers=24,
                                   num_attention_heads=8, num_key_value_heads=2, linear_num_value_heads=16,
                                   tie_word_embeddings=True), dict(QWEN3_5_VISION, out_hidden_size=2048)),
    "Qwen3.5-4B": ("qwen3_5", dict(QWEN3_5_TEXT, hidden_size=2560, intermediate_size=9216, num_hidden_layers=32,
                                   num_attention_heads=16, num_key_value_heads=4, linear_num_value_heads=32,
                                   tie_word_embeddings=True), dict(QWEN3_5_VISION, out_hidden_size=2560)),
    "Qwen3.5-9B": ("qwen3_5", dict(QWEN3_5_TEXT, hidden_size=4096, intermediate_size=12288, num_hidden_layers=32,
                                   num_attention_heads=16, num_key_value_heads=4, linear_num_value_heads=32,
                                   tie_word_embeddings=False),
                   dict(QWEN3_5_VISION, depth=27, hidden_size=1152, intermediate_size=4304, out_hidden_size=4096)),
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
    from transformers import Qwen2_5_VLConfig, Qwen3_5Config, Qwen3VLConfig

    print(f"{'model':<26}{'4-bit GiB':>10}{'bf16 GiB':>10}   (weights + 0.5 GiB runtime margin)")
    for name, (family, text, vision) in ARCHITECTURES.items():
        cls = {"qwen3_vl": Qwen3VLConfig, "qwen2_5_vl": Qwen2_5_VLConfig, "qwen3_5": Qwen3_5Config}[family]
        text = {k: v for k, v in text.items() if v is not None}
        config = cls(text_config=text, vision_config=vision, tie_word_embeddings=text.get("tie_word_embeddings", False))
        print(f"{name:<26}{estimate_bytes(config, '4bit') / 2**30:>10.1f}{estimate_bytes(config, 'bf16') / 2**30:>10.1f}")


if __name__ == "__main__":
    main()
