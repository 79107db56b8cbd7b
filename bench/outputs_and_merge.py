"""Benchmark (issue 10): merging detections and appending to outputs cost what they should.

1. ``merge_detections`` on 10,000 and 100,000 random boxes (three labels, slightly rotated, about a
   tenth overlapping a neighbour) and on 2,000 and 20,000 copies of one box (a model's repetition loop):
   time and peak traced memory (``tracemalloc``), each in one run of this script. Target: memory O(N):
   the ratio of peaks 100,000 / 10,000 near 10, and the repeated box far below N^2 pairs.
2. GeoPackage append: the time of one append (one question: prompt, answer, detection) to a file that
   already holds 100 and 20,000 answers, median of 15 appends each; target ratio near 1 (the append
   adds in place, it does not rewrite the file).

Usage: .venv/bin/python bench/outputs_and_merge.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model_backend.core.tiling import merge_detections  # noqa: E402

SQUARE = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)


def random_boxes(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    side = 30 * np.sqrt(n)  # density independent of n
    corner = rng.uniform(0, side, (n, 1, 2))
    quads = corner + SQUARE[None] * rng.uniform(10, 40, (n, 1, 2))
    turn = rng.uniform(-0.2, 0.2, n)
    rot = np.stack([np.cos(turn), -np.sin(turn), np.sin(turn), np.cos(turn)], axis=1).reshape(n, 2, 2)
    return corner + np.einsum("kij,knj->kni", rot, quads - corner)


def measure_merge(quads: np.ndarray, labels: list) -> dict:
    tracemalloc.start()
    t0 = time.perf_counter()
    kept = int(merge_detections(quads, labels).sum())
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"boxes": len(quads), "kept": kept, "seconds": round(seconds, 3), "peak_mib": round(peak / 2 ** 20, 1)}


def measure_append(existing: int) -> float:
    from pyproj import CRS
    from shapely.geometry import Point, box

    from model_backend.geo.outputs import Feature, QuestionRecord, write_record

    def record(k: int) -> QuestionRecord:
        r = QuestionRecord(crs=CRS.from_epsg(32618))
        square = box(100000 + k, 2800000, 100100 + k, 2800100)
        r.prompts.append(Feature(square, {"question_id": f"q{k}", "prompt_index": 1, "kind": "box"}))
        r.answers.append(Feature(square, {"answer_id": f"a{k}", "question_id": f"q{k}", "answer": "a ship " * 40}))
        r.detections.append(Feature(Point(100050 + k, 2800050), {"answer_id": f"a{k}", "label": "ship", "rank": 1}))
        return r

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "site.gpkg")
        write_record(out, record(0))
        big = QuestionRecord(crs=CRS.from_epsg(32618))
        for k in range(1, existing):
            one = record(k)
            for name in ("prompts", "answers", "detections"):
                big.layer(name).extend(one.layer(name))
        write_record(out, big)  # filled in one append: many questions in one transaction
        times = []
        for k in range(15):
            t0 = time.perf_counter()
            write_record(out, record(existing + k))
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    results: dict = {"merge": [], "append": {}}
    for n in (10_000, 100_000):
        quads = random_boxes(n)
        labels = np.random.default_rng(1).choice(["car", "ship", "plane"], n).tolist()
        results["merge"].append(dict(measure_merge(quads, labels), case="random"))
    for n in (2_000, 20_000):
        results["merge"].append(dict(measure_merge(np.repeat(SQUARE[None] * 10, n, axis=0), ["ship"] * n),
                                     case="one box repeated"))
    for existing in (100, 20_000):
        results["append"][existing] = round(measure_append(existing), 4)
    random_runs = [m for m in results["merge"] if m["case"] == "random"]
    results["ratios"] = {
        "merge_peak_100k_over_10k": round(random_runs[1]["peak_mib"] / max(random_runs[0]["peak_mib"], 1e-9), 2),
        "merge_time_100k_over_10k": round(random_runs[1]["seconds"] / max(random_runs[0]["seconds"], 1e-9), 2),
        "append_20000_over_100": round(results["append"][20_000] / results["append"][100], 2),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
