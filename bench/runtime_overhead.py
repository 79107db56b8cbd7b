"""Benchmark: what the runtime adds around the model, with a tiny random Qwen3-VL on the CPU.

1. Engine overhead: ``LocalEngine.ask`` (marks, prompt text, chat template, processor, streamed
   generate with the cancel check, decoding, parsing) against bare ``model.generate`` on the same,
   already processed inputs, for several answer lengths (the length is forced with
   ``min_new_tokens`` on both sides). Target (issue 3): at most 1.15x. Image I/O is excluded: the chip
   is an array in memory for both. With the tiny model a token costs about 1.5 ms, so the fixed cost
   of preparing a question weighs far more than with a real model (tens of ms per token).
2. Worker round trip: ``WorkerClient.ask`` (JSON lines over pipes, the chip as a .npy file, token
   events) against ``LocalEngine.ask`` in-process on the same request, natural answer length on both
   sides (greedy decoding: the same tokens). Target: at most 50 ms per ask.

The sides of each comparison run alternately in one process; medians of N runs.
Usage: python bench/runtime_overhead.py [--runs N] [--chip PX] [--json OUT]
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

from model_backend.core.interface import AskRequest, Task  # noqa: E402
from model_backend.models.loading import LoadPolicy  # noqa: E402
from model_backend.models.local import LocalEngine  # noqa: E402
from model_backend.core.prompts import VisualPrompt  # noqa: E402
from model_backend.testing.tiny_model import build_tiny_model  # noqa: E402
from model_backend.worker.client import WorkerClient  # noqa: E402

LENGTHS = (32, 64, 128, 256)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--chip", type=int, default=512, help="chip side in pixels (default 512)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    import torch

    folder = build_tiny_model(tempfile.mkdtemp(prefix="earthgptx-bench-"), "qwen3_vl")
    engine = LocalEngine(folder, LoadPolicy(device="cpu", quantization="fp32"))
    chip = np.random.default_rng(0).integers(0, 256, (args.chip, args.chip, 3), dtype=np.uint8)

    def request(tokens: int) -> AskRequest:
        return AskRequest(chip, "What is in region 1?", (VisualPrompt.box(50, 60, 200, 220),), Task.VQA,
                          max_new_tokens=tokens)

    print(f"tiny Qwen3-VL, CPU fp32, chip {args.chip}x{args.chip}, median of {args.runs} runs")
    print(f"{'new tokens':>10}{'bare ms':>10}{'engine ms':>11}{'ratio':>8}")
    overhead = {}
    for tokens in LENGTHS:
        req = request(tokens)
        inputs, _, _ = engine.encode(req)
        engine.model.generation_config.min_new_tokens = tokens

        def bare():
            with torch.inference_mode():
                engine.model.generate(**inputs, max_new_tokens=tokens, do_sample=False)

        def full():
            assert engine.ask(req, on_text=lambda t: None).meta.generated_tokens == tokens

        bare(), full()
        b, f = [], []
        for _ in range(args.runs):
            b.append(timed(bare))
            f.append(timed(full))
        mb, mf = statistics.median(b), statistics.median(f)
        overhead[tokens] = {"bare_ms": mb * 1000, "engine_ms": mf * 1000, "ratio": mf / mb}
        print(f"{tokens:>10}{mb * 1000:>10.1f}{mf * 1000:>11.1f}{mf / mb:>8.3f}")
    engine.model.generation_config.min_new_tokens = None

    client = WorkerClient()
    client.start()
    client.load(model=folder, device="cpu", quantization="fp32")
    req = request(64)
    local_tokens = engine.ask(req).meta.generated_tokens
    remote_tokens = client.ask(req).meta.generated_tokens
    assert local_tokens == remote_tokens, (local_tokens, remote_tokens)
    w, e = [], []
    for _ in range(args.runs):
        w.append(timed(lambda: client.ask(req, on_text=lambda t: None)))
        e.append(timed(lambda: engine.ask(req, on_text=lambda t: None)))
    client.shutdown()
    mw, me = statistics.median(w), statistics.median(e)
    round_trip_ms = (mw - me) * 1000
    print(f"worker ask {mw * 1000:.1f} ms vs in-process {me * 1000:.1f} ms ({local_tokens} tokens): "
          f"round trip overhead {round_trip_ms:.1f} ms per ask (target <= 50)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"runs": args.runs, "chip": args.chip, "engine_vs_bare": overhead,
                       "worker_ms": mw * 1000, "in_process_ms": me * 1000, "worker_round_trip_ms": round_trip_ms},
                      fh, indent=2)


if __name__ == "__main__":
    main()
