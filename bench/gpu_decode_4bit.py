"""GPU benchmark: the default model's architecture (Qwen3.5-4B; ``--arch qwen3_vl_4b`` for the previous
default, Qwen3-VL-4B-Instruct) at full size with random weights, loaded through the project's own 4-bit
path, asked about a 1024x1024 chip.

Prints peak VRAM (after loading, and during the answer), prefill time, decode tokens/s, and the
ratio of decode speed to the memory-bandwidth roofline (bytes that must be read per decoded token:
the language model's weights as stored, lm_head, the KV cache of the full-attention layers and the
recurrent state of Qwen3.5's Gated DeltaNet layers, divided into the GPU's memory bandwidth).
Weights cannot be downloaded on the device machine, so the model is random-initialised from the
published configuration (below), saved, and loaded like a real checkpoint; the tokenizer and processor
come from the tiny test model with the real image geometry (patch 16, merge 2).

Usage (needs CUDA; ``--smoke`` runs a tiny version on the CPU to check the script itself):
    python bench/gpu_decode_4bit.py [--arch qwen3_5_4b|qwen3_vl_4b] [--tokens 256] [--bandwidth-gbs N]
        [--json OUT] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from model_backend.core.interface import AskRequest, Task  # noqa: E402
from model_backend.models.loading import LoadPolicy  # noqa: E402
from model_backend.models.local import LocalEngine  # noqa: E402
from model_backend.core.prompts import VisualPrompt  # noqa: E402
from model_backend.testing.tiny_model import build_tiny_model  # noqa: E402

# Qwen3-VL-4B-Instruct's published architecture (config.json of the checkpoint)
QWEN3_VL_4B_TEXT = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                        num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=262144,
                        rms_norm_eps=1e-6, hidden_act="silu", tie_word_embeddings=True,
                        rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0,
                                         "mrope_section": [24, 20, 20], "mrope_interleaved": True})
QWEN3_VL_4B_VISION = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, in_channels=3,
                          patch_size=16, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=2560,
                          num_position_embeddings=2304, deepstack_visual_indexes=[5, 11, 17],
                          hidden_act="gelu_pytorch_tanh")
# Qwen3.5-4B's published architecture (config.json of Qwen/Qwen3.5-4B @851bf6e8; its MTP head is not
# loaded by transformers and left out)
QWEN3_5_4B_TEXT = dict(hidden_size=2560, intermediate_size=9216, num_hidden_layers=32, num_attention_heads=16,
                       num_key_value_heads=4, head_dim=256, vocab_size=248320, max_position_embeddings=262144,
                       rms_norm_eps=1e-6, hidden_act="silu", tie_word_embeddings=True, attention_bias=False,
                       layer_types=["linear_attention"] * 3 + ["full_attention"], linear_conv_kernel_dim=4,
                       linear_key_head_dim=128, linear_num_key_heads=16, linear_num_value_heads=32,
                       linear_value_head_dim=128,
                       rope_parameters={"rope_type": "default", "rope_theta": 10_000_000.0,
                                        "partial_rotary_factor": 0.25, "mrope_section": [11, 11, 10],
                                        "mrope_interleaved": True})
QWEN3_5_4B_TEXT["layer_types"] = QWEN3_5_4B_TEXT["layer_types"] * 8
QWEN3_5_4B_VISION = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, in_channels=3,
                         patch_size=16, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=2560,
                         num_position_embeddings=2304, hidden_act="gelu_pytorch_tanh")
#: --arch: (tiny family for the tokenizer and processor, config class, model class, text, vision, label)
ARCHS = {
    "qwen3_5_4b": ("qwen3_5", "Qwen3_5Config", "Qwen3_5ForConditionalGeneration", QWEN3_5_4B_TEXT,
                   QWEN3_5_4B_VISION, "Qwen3.5-4B"),
    "qwen3_vl_4b": ("qwen3_vl", "Qwen3VLConfig", "Qwen3VLForConditionalGeneration", QWEN3_VL_4B_TEXT,
                    QWEN3_VL_4B_VISION, "Qwen3-VL-4B-Instruct"),
}
#: memory bandwidth in GB/s by device name (datasheet figures)
BANDWIDTH_GBS = {"H200": 4800, "H100 NVL": 3900, "H100 PCIe": 2000, "H100": 3350, "A100-SXM4-80GB": 2039,
                 "A100": 1555, "L40S": 864, "RTX 4090": 1008}


def build_checkpoint(folder: str, arch: str, smoke: bool) -> str:
    """Random-initialised full-size ``arch`` (or a tiny one with ``smoke``) saved in ``folder``, with the
    tiny model's tokenizer and processor (real patch geometry, a 1024x1024 chip allowed)."""
    import torch
    import transformers
    from transformers import AutoConfig

    family, config_class, model_class, text_dims, vision, _ = ARCHS[arch]
    build_tiny_model(folder, family)
    tiny = AutoConfig.from_pretrained(folder)
    if not smoke:
        ids = {k: getattr(tiny, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                              "vision_end_token_id")}
        text = dict(text_dims, bos_token_id=tiny.text_config.bos_token_id,
                    eos_token_id=tiny.text_config.eos_token_id, pad_token_id=tiny.text_config.pad_token_id)
        config = getattr(transformers, config_class)(text_config=text, vision_config=vision, tie_word_embeddings=True,
                                                     **ids)
        with torch.device("cuda"):
            model = getattr(transformers, model_class)._from_config(config, dtype=torch.bfloat16)
        model.generation_config.eos_token_id = tiny.text_config.eos_token_id
        model.save_pretrained(folder)
        del model
        torch.cuda.empty_cache()
    path = os.path.join(folder, "processor_config.json")
    processor = json.load(open(path))
    processor["image_processor"]["size"]["longest_edge"] = 1024 * 1024  # a 1024x1024 chip: 64x64 patches
    json.dump(processor, open(path, "w"))
    return folder


def weight_bytes(module) -> int:
    """Bytes of ``module``'s parameters and buffers as stored (4-bit packed weights count as such),
    plus bitsandbytes quantization state."""
    total = sum(p.numel() * p.element_size() for p in module.parameters())
    total += sum(b.numel() * b.element_size() for b in module.buffers())
    for p in module.parameters():
        state = getattr(p, "quant_state", None)
        if state is not None:
            total += state.absmax.numel() * state.absmax.element_size()
            if getattr(state, "state2", None) is not None:
                total += state.state2.absmax.numel() * state.state2.absmax.element_size()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), default="qwen3_5_4b", help="architecture (default qwen3_5_4b)")
    parser.add_argument("--tokens", type=int, default=256, help="new tokens to decode (forced, default 256)")
    parser.add_argument("--bandwidth-gbs", type=float, help="GPU memory bandwidth (default: from the device name)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU: checks the script only")
    args = parser.parse_args()
    import torch

    if not args.smoke and not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA GPU (use --smoke to check the script on a CPU)")
    folder = tempfile.mkdtemp(prefix="earthgptx-gpu-bench-")
    try:
        t0 = time.perf_counter()
        build_checkpoint(folder, args.arch, args.smoke)
        build_s = time.perf_counter() - t0
        policy = LoadPolicy(device="cpu", quantization="bf16") if args.smoke else LoadPolicy("cuda", "4bit")
        if not args.smoke:
            torch.cuda.reset_peak_memory_stats()
        engine = LocalEngine(folder, policy, on_status=print)
        loaded_peak = torch.cuda.max_memory_allocated() if not args.smoke else 0
        chip = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
        request = AskRequest(chip, "Describe region 1 in detail.", (VisualPrompt.box(300, 280, 520, 610),),
                             Task.REGION_CAPTIONING, max_new_tokens=args.tokens)
        engine.ask(AskRequest(chip, "warm up", max_new_tokens=4))
        engine.model.generation_config.min_new_tokens = args.tokens  # a fixed answer length
        if not args.smoke:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        answer = engine.ask(request)
        meta = answer.meta
        ask_peak = torch.cuda.max_memory_allocated() if not args.smoke else 0
        decode_s = meta.timings["generate"] - meta.timings["first_token"]
        decode_tps = (meta.generated_tokens - 1) / decode_s
        lm = engine.model.model.language_model
        lm_head = engine.model.lm_head
        tied = lm_head.weight.data_ptr() == lm.embed_tokens.weight.data_ptr()
        per_token = weight_bytes(lm) - lm.embed_tokens.weight.numel() * lm.embed_tokens.weight.element_size()
        per_token += lm_head.weight.numel() * lm_head.weight.element_size()  # read whole for every token
        text_cfg = engine.model.config.text_config
        context = meta.prompt_tokens + meta.generated_tokens / 2
        types = getattr(text_cfg, "layer_types", None) or ["full_attention"] * text_cfg.num_hidden_layers
        full, linear = types.count("full_attention"), types.count("linear_attention")
        kv = 2 * full * text_cfg.num_key_value_heads * text_cfg.head_dim * 2 * context
        if linear:  # each Gated DeltaNet layer reads and writes its float32 state once per token
            kv += 2 * linear * text_cfg.linear_num_value_heads * text_cfg.linear_key_head_dim * \
                text_cfg.linear_value_head_dim * 4
        name = "cpu" if args.smoke else torch.cuda.get_device_name(0)
        bandwidth = args.bandwidth_gbs or next((v for k, v in BANDWIDTH_GBS.items() if k in name), None)
        roofline = bandwidth * 1e9 / (per_token + kv) if bandwidth else None
        figures = {
            "device": name, "model": f"{ARCHS[args.arch][5]} architecture, random weights" if not args.smoke
            else f"tiny {ARCHS[args.arch][0]} smoke model", "quantization": engine.plan.quantization,
            "build_seconds": build_s,
            "load_seconds": engine.load_seconds, "peak_vram_after_load_gib": loaded_peak / 2 ** 30,
            "peak_vram_during_ask_gib": ask_peak / 2 ** 30, "prompt_tokens": meta.prompt_tokens,
            "generated_tokens": meta.generated_tokens, "prefill_seconds": meta.timings["first_token"],
            "decode_tokens_per_s": decode_tps, "bytes_per_token": per_token + kv, "lm_head_tied": tied,
            "bandwidth_gbs": bandwidth, "roofline_tokens_per_s": roofline,
            "fraction_of_roofline": decode_tps / roofline if roofline else None,
        }
        for k, v in figures.items():
            print(f"{k:<28}{v:.4g}" if isinstance(v, float) else f"{k:<28}{v}")
        if args.json:
            json.dump(figures, open(args.json, "w"), indent=2)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
