"""CPU benchmark: what Qwen3.5's Gated DeltaNet layers cost without their optional kernels.

transformers runs Qwen3.5's linear-attention layers through flash-linear-attention (``fla``) and
``causal-conv1d`` when they are installed, and through its PyTorch reference code when not (it says so
once: "correct but much slower"). The backend setup installs neither (they need CUDA builds). This
measures the tiny offline Qwen3.5 (one Gated DeltaNet and one full-attention layer) against the tiny
Qwen3-VL (two full-attention layers, same widths) side by side in one run: prefill and decode speed of
the same 256x256 chip question, and their ratio. The tiny models make the per-layer overhead visible;
full-size figures on a GPU come from ``bench/gpu_decode_4bit.py``.

Usage: python bench/qwen3_5_fallback.py [--tokens 48] [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from model_backend.core.interface import AskRequest, Task  # noqa: E402
from model_backend.models.loading import LoadPolicy  # noqa: E402
from model_backend.models.local import LocalEngine  # noqa: E402
from model_backend.testing.tiny_model import build_tiny_model  # noqa: E402


def measure(family: str, folder: str, tokens: int, repeats: int) -> dict:
    """Median prefill seconds and decode tokens/s of ``repeats`` answers of exactly ``tokens`` tokens."""
    engine = LocalEngine(build_tiny_model(folder, family), LoadPolicy("cpu", "fp32"))
    engine.model.generation_config.min_new_tokens = tokens
    chip = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    request = AskRequest(chip, "Describe the scene.", task=Task.CAPTIONING, max_new_tokens=tokens)
    engine.ask(request)  # warm up
    prefill, decode = [], []
    for _ in range(repeats):
        meta = engine.ask(request).meta
        prefill.append(meta.timings["first_token"])
        decode.append((meta.generated_tokens - 1) / (meta.timings["generate"] - meta.timings["first_token"]))
    engine.close()
    return {"prefill_s": statistics.median(prefill), "decode_tokens_per_s": statistics.median(decode)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # the same thread budget for both, whatever the machine
    with tempfile.TemporaryDirectory(prefix="earthgptx-fallback-") as tmp:
        results = {f: measure(f, os.path.join(tmp, f), args.tokens, args.repeats) for f in ("qwen3_vl", "qwen3_5")}
    figures = {
        "kernels_installed": {m: importlib.util.find_spec(m) is not None for m in ("fla", "causal_conv1d")},
        **{f"{family}_{k}": v for family, r in results.items() for k, v in r.items()},
        "decode_ratio_qwen3_5_over_qwen3_vl": results["qwen3_5"]["decode_tokens_per_s"]
        / results["qwen3_vl"]["decode_tokens_per_s"],
        "prefill_ratio_qwen3_5_over_qwen3_vl": results["qwen3_5"]["prefill_s"] / results["qwen3_vl"]["prefill_s"],
    }
    for k, v in figures.items():
        print(f"{k:<40}{v:.4g}" if isinstance(v, float) else f"{k:<40}{v}")
    if args.json:
        json.dump(figures, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
