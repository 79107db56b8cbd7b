"""Benchmark: tiled search against an OpenAI-compatible server that takes a fixed time per request,
with 1 and with N tile questions in flight, side by side in one run (loopback, stdlib server).

The same raster and tiles each time (the 2048x2048 aerial test raster in 512-pixel tiles: 25 tiles);
prints seconds, tiles/s and the speed-up of each concurrency over 1, and checks that every tile was
answered exactly once. Then the cost of writing as the search goes: the same search at concurrency 1
into a GeoPackage (each tile committed when it is answered, the merge replacing the detections at the
end) against no output at all. The server answers every request with one box after ``--latency`` seconds, as
a server with room for many requests at once would (vLLM batches them). Last, the tiny local model on
the CPU asked 4 tiles per ``generate`` against one at a time.

Usage: python bench/find_throughput.py [--latency 0.3] [--concurrency 1 4 8] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from model_backend.jobs.find import find_objects  # noqa: E402
from model_backend.models.remote import RemoteEngine  # noqa: E402
from openai_server import serve, sse_events, stream, url  # noqa: E402

RASTER = os.path.join(ROOT, "tests", "data", "optical", "5b90f92da0d7280005fab355_4310.tif")
ANSWER = '[{"bbox_2d": [100, 200, 300, 450], "label": "car"}]'


def slow(latency: float):
    def behaviour(handler, body):
        if not handler.server.stopping.wait(latency):
            stream(sse_events([ANSWER]))(handler, body)
    return behaviour


def local_batches() -> dict:
    """The tiny Qwen3-VL on the CPU over the Landsat test raster in 320-pixel tiles: batch 4 against 1."""
    from model_backend.models.loading import LoadPolicy
    from model_backend.models.local import LocalEngine
    from model_backend.testing.tiny_model import build_tiny_model

    raster = os.path.join(ROOT, "tests", "data", "optical", "RGB.byte.tif")
    with tempfile.TemporaryDirectory() as tmp:
        engine = LocalEngine(build_tiny_model(os.path.join(tmp, "tiny"), "qwen3_vl"), LoadPolicy("cpu", "fp32"))
        engine.model.generation_config.min_new_tokens = 16   # the same answer length in both
        seconds = {}
        for batch in (1, 4, 1, 4):                              # interleaved, the second of each kept
            t0 = time.perf_counter()
            result = find_objects(raster, "ships", engine, tile=320, max_new_tokens=16, batch_size=batch)
            seconds[batch] = time.perf_counter() - t0
        engine.close()
    return {"tiles": result.tiles_total, "batch_1_s": seconds[1], "batch_4_s": seconds[4],
            "ratio": seconds[4] / seconds[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.3, help="seconds the server takes per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = {"latency_s": args.latency, "runs": {}}
    with serve(slow(args.latency)) as srv, tempfile.TemporaryDirectory() as tmp:
        for n in args.concurrency:
            before = len(srv.received)
            t0 = time.perf_counter()
            result = find_objects(RASTER, "cars", RemoteEngine(url(srv), "bench"), tile=512,
                                  out=os.path.join(tmp, f"c{n}.gpkg"), concurrency=n)
            seconds = time.perf_counter() - t0
            asked = len(srv.received) - before
            assert asked == result.tiles_done == result.tiles_total, (asked, result.tiles_done)
            figures["runs"][n] = {"seconds": seconds, "tiles": result.tiles_total,
                                  "tiles_per_s": result.tiles_total / seconds}
        timed = {}
        for label, out in (("no output", None), ("GeoPackage, a commit per tile", os.path.join(tmp, "w.gpkg"))):
            t0 = time.perf_counter()
            find_objects(RASTER, "cars", RemoteEngine(url(srv), "bench"), tile=512, out=out, concurrency=1)
            timed[label] = time.perf_counter() - t0
        figures["writing"] = {**timed, "ratio": timed["GeoPackage, a commit per tile"] / timed["no output"]}
    figures["batches"] = local_batches()
    base = figures["runs"][args.concurrency[0]]["seconds"]
    for n, run in figures["runs"].items():
        run["time_ratio_to_first"] = run["seconds"] / base
        print(f"concurrency {n:>3}: {run['seconds']:.2f} s for {run['tiles']} tiles, {run['tiles_per_s']:.1f} tiles/s, "
              f"{run['time_ratio_to_first']:.3f}x the time of concurrency {args.concurrency[0]}")
    print(f"writing as it goes: {figures['writing']['ratio']:.3f}x the time of the same search with no output")
    b = figures["batches"]
    print(f"tiny local model on the CPU, {b['tiles']} tiles: batch 4 takes {b['ratio']:.3f}x the time of batch 1 "
          f"({b['batch_4_s']:.2f} s against {b['batch_1_s']:.2f} s)")
    if args.json:
        json.dump(figures, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
