"""Benchmark: tiled grounding (``find``) costs little around the model, and its memory does not grow
with the raster.

1. Overhead: ``find_objects`` over the 3000x3000 benchmark raster in 1024-pixel tiles (16 tiles) with
   the tiny random Qwen3-VL (``LocalEngine``, CPU, fp32, a few new tokens): pixel reads, tiling,
   mapping, merging and writing the GeoPackage (``read_s + nms_s + other_s``) against the engine's time
   (``model_s``). Target (issue 6): at most 10 %. The tiny model costs far less per tile than a real
   one, so this is the harsh case.
2. Peak memory: ``find_objects`` over the whole 30000x30000 raster (1225 tiles, full resolution, a
   full pass) and the whole 3000x3000 one (16 tiles), each in a fresh process, writing a GeoPackage;
   the process's peak resident memory (Linux VmHWM, reset just before the search) and its rise over
   the memory after imports. The engine here is a scripted ``Engine`` subclass that answers three
   boxes per tile without a model (through the real answer parser): the subject is the memory of
   tiling, reading, merging and writing, which a model would only shift by a constant. Target: ratio
   large/small at most 1.5x.
3. Merging: ``merge_detections`` on 5,000 random boxes (three labels, some overlapping) over a
   3000-unit square, median of 7 runs.

The rasters are those of ``bench/chip_read.py`` (built once in bench/cache/ by its ``build()``).
Usage: python bench/tiled_grounding.py [--runs N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from chip_read import build  # noqa: E402
from model_backend.tiling import merge_detections  # noqa: E402

TILE = 1024
TOKENS = 8

MEMORY = r"""
import json, os, sys, tempfile, time
sys.path.insert(0, {root!r})
from model_backend.encoding import Convention, CoordinateFrame
from model_backend.engine import Engine, finish_answer
from model_backend.families import family
from model_backend.find import find_objects
from model_backend.interface import AnswerMeta

ANSWER = ('[{{"bbox_2d": [100, 200, 300, 450], "label": "car"}}, {{"bbox_2d": [880, 10, 1000, 90], "label": "car"}},'
          ' {{"bbox_2d": [500, 500, 560, 540], "label": "truck"}}]')

class ScriptedEngine(Engine):
    family = family("qwen3_vl")
    def ask(self, request, on_text=None, cancel=None):
        h, w = request.image.shape[:2]
        return finish_answer(ANSWER, self.family, CoordinateFrame(Convention.REL_1000, w, h),
                             AnswerMeta(model_id="scripted", backend="scripted"))
    def describe(self):
        return {{"model_id": "scripted"}}

def status_kib(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

out = os.path.join(tempfile.mkdtemp(prefix="earthgptx-bench-"), "found.gpkg")
base = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak-RSS mark (VmHWM) to the current RSS
    fh.write("5")
t0 = time.perf_counter()
result = find_objects({path!r}, "cars", ScriptedEngine(), tile={tile}, out=out)
elapsed = time.perf_counter() - t0
peak = status_kib("VmHWM")
print(json.dumps(dict(seconds=elapsed, peak_mib=peak / 1024, rise_mib=(peak - base) / 1024, tiles=result.tiles_total,
                      candidates=result.candidates, detections=len(result.detections), timings=result.timings,
                      gpkg_mib=os.path.getsize(out) / 2**20)))
"""


def overhead(path: str, runs: int) -> list:
    from model_backend.find import find_objects
    from model_backend.loading import LoadPolicy
    from model_backend.local_engine import LocalEngine
    from model_backend.testing.tiny_model import build_tiny_model

    engine = LocalEngine(build_tiny_model(tempfile.mkdtemp(prefix="earthgptx-bench-"), "qwen3_vl"),
                         LoadPolicy(device="cpu", quantization="fp32"))
    folder = tempfile.mkdtemp(prefix="earthgptx-bench-")
    out = []
    for k in range(runs + 1):  # the first run warms up the model and GDAL
        result = find_objects(path, "cars", engine, tile=TILE, max_new_tokens=TOKENS,
                              out=os.path.join(folder, f"run{k}.gpkg"))
        if k:
            out.append(result)
    engine.close()
    return out


def memory(path: str) -> dict:
    code = MEMORY.format(root=ROOT, path=path, tile=TILE)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def merging(runs: int) -> dict:
    rng = np.random.default_rng(0)
    n = 5000
    corner = rng.uniform(0, 3000, (n, 1, 2))
    quads = corner + np.array([(0, 0), (1, 0), (1, 1), (0, 1)], float)[None] * rng.uniform(10, 60, (n, 1, 2))
    labels = rng.choice(["car", "truck", "ship"], n).tolist()
    times, kept = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        kept = int(merge_detections(quads, labels).sum())
        times.append(time.perf_counter() - t0)
    return {"boxes": n, "kept": kept, "median_s": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of the overhead measurement (default 3)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    small, large = build(3000), build(30000)

    runs = overhead(small, args.runs)
    ratios = [(r.timings["total_s"] - r.timings["model_s"]) / r.timings["model_s"] for r in runs]
    print(f"1. overhead, tiny Qwen3-VL on CPU fp32, {runs[0].tiles_total} tiles of {TILE}x{TILE} over 3000x3000, "
          f"{TOKENS} new tokens, {args.runs} runs after a warm-up")
    print(f"{'run':>4}{'model s':>10}{'read s':>9}{'nms s':>9}{'other s':>9}{'overhead':>10}")
    for k, (r, ratio) in enumerate(zip(runs, ratios), start=1):
        t = r.timings
        print(f"{k:>4}{t['model_s']:>10.2f}{t['read_s']:>9.3f}{t['nms_s']:>9.4f}{t['other_s']:>9.3f}{ratio:>9.1%}")
    print(f"  overhead / model time, median: {statistics.median(ratios):.1%} (target <= 10%)")

    mem = {"small": memory(small), "large": memory(large)}
    print("\n2. peak memory, scripted engine (3 boxes per tile), full pass at full resolution, fresh processes")
    print(f"{'raster':<14}{'tiles':>7}{'boxes':>8}{'kept':>7}{'seconds':>9}{'peak MiB':>10}{'rise MiB':>10}")
    for name, size in (("small", 3000), ("large", 30000)):
        m = mem[name]
        print(f"{name + ' ' + str(size):<14}{m['tiles']:>7}{m['candidates']:>8}{m['detections']:>7}"
              f"{m['seconds']:>9.1f}{m['peak_mib']:>10.1f}{m['rise_mib']:>10.1f}")
    peak_ratio = mem["large"]["peak_mib"] / mem["small"]["peak_mib"]
    print(f"  peak memory large/small: {peak_ratio:.2f}x (target <= 1.5x)")

    nms = merging(7)
    print(f"\n3. merging {nms['boxes']} boxes: {nms['median_s'] * 1000:.0f} ms (median of 7), {nms['kept']} kept")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"overhead": {"runs": [r.timings for r in runs], "ratios": ratios,
                                    "median_ratio": statistics.median(ratios)},
                       "memory": mem, "peak_ratio": peak_ratio, "merging": nms}, fh, indent=2)


if __name__ == "__main__":
    main()
