"""CPU benchmark: what N prompts on one chip cost against one prompt, the segmenter's image encoder run
once per chip (``SegmentEngine.segment``).

The segmenter is a SAM 2.1 of transformers' default ``Sam2Config`` (the Hiera-tiny sized encoder, the
smallest, so the least favourable ratio: a larger encoder makes the shared encoding weigh more), with
random weights, at the real 1024x1024 input, loaded through the real loading path from a folder made
offline. Each case is timed end to end (processor, encoder, decoder per prompt, mask post-processing)
on a 1024x1024 chip, side by side in one run: medians of ``--repeats`` runs, and their ratio (target:
10 prompts within 1.3x of one).

Usage: python bench/segment_prompts.py [--prompts 10] [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from model_backend.core.mask_prompts import from_prompt  # noqa: E402
from model_backend.core.prompts import VisualPrompt  # noqa: E402
from model_backend.models.loading import LoadPolicy  # noqa: E402
from model_backend.models.segmentation import SegmentEngine  # noqa: E402
from model_backend.testing.tiny_sam import build_tiny_sam  # noqa: E402


def default_sized_sam2(folder: str) -> str:
    """A folder with the tiny builder's processor and a default-sized random SAM 2.1 model."""
    import torch
    from transformers import Sam2Config, Sam2Model

    build_tiny_sam(folder, "sam2")
    torch.manual_seed(0)
    Sam2Model(Sam2Config()).save_pretrained(folder)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=os.path.join(HERE, "segment_prompts_results.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    chip = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    prompts = []
    for k in range(args.prompts):
        x, y = rng.uniform(100, 900, 2)
        prompts.append(from_prompt(VisualPrompt.point(x, y, k + 1)) if k % 2 else
                       from_prompt(VisualPrompt.box(x - 60, y - 40, x + 60, y + 40, k + 1)))
    with tempfile.TemporaryDirectory() as tmp:
        engine = SegmentEngine(default_sized_sam2(os.path.join(tmp, "sam2")), LoadPolicy("cpu", "fp32"))
        params = sum(p.numel() for p in engine.model.parameters())
        engine.segment(chip, prompts[:1])   # warm-up
        times = {1: [], args.prompts: []}
        for _ in range(args.repeats):
            for n in times:
                t0 = time.perf_counter()
                masks = engine.segment(chip, prompts[:n])
                times[n].append(time.perf_counter() - t0)
                assert len(masks) == n
    one, many = statistics.median(times[1]), statistics.median(times[args.prompts])
    result = {"segmenter": "Sam2Config() defaults, random weights, fp32, CPU", "parameters_m": round(params / 1e6, 1),
              "chip": "1024x1024", "repeats": args.repeats, "seconds_1_prompt": round(one, 3),
              f"seconds_{args.prompts}_prompts": round(many, 3),
              f"ratio_{args.prompts}_to_1": round(many / one, 3), "target_ratio": 1.3}
    print(json.dumps(result, indent=2))
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
