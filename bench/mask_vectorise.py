"""Benchmark: vectorising a segmentation mask on the pixel grid (``geo.masks.mask_polygons``).

A 1024x1024 mask of twelve blobs (discs, each with a hole; seeded, some overlapping) plus 0.1 % random
specks: the time of ``mask_polygons`` exact, with ``min_area_px=16`` (specks dropped) and with
``simplify_px=1.5`` as well, median of N runs in milliseconds, with the polygon, hole and vertex counts.

Usage: .venv/bin/python bench/mask_vectorise.py [--runs N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from model_backend.geo.masks import mask_polygons  # noqa: E402

SIZE = 1024
CASES = {"exact": {}, "min_area_16": {"min_area_px": 16}, "min_area_16_simplify_1.5": {"min_area_px": 16,
                                                                                     "simplify_px": 1.5}}


def blob_mask(size: int = SIZE, blobs: int = 12, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size] + 0.5
    mask = rng.random((size, size)) < 0.001
    for _ in range(blobs):
        row, col = rng.uniform(0.1 * size, 0.9 * size, 2)
        radius = rng.uniform(0.04, 0.12) * size
        distance = np.hypot(rows - row, cols - col)
        mask |= distance <= radius
        mask &= distance > radius * rng.uniform(0.2, 0.5)
    return mask


def measure(mask: np.ndarray, runs: int, **options) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        polygons = mask_polygons(mask, **options)
        times.append(time.perf_counter() - t0)
    rings = [p.exterior for p in polygons] + [r for p in polygons for r in p.interiors]
    return {"median_ms": round(1000 * statistics.median(times), 1), "min_ms": round(1000 * min(times), 1),
            "polygons": len(polygons), "holes": len(rings) - len(polygons),
            "vertices": sum(len(r.coords) - 1 for r in rings)}  # closing vertex not counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", default=os.path.join(HERE, "mask_vectorise_results.json"),
                        help="write the figures to this file")
    args = parser.parse_args()
    mask = blob_mask()
    results = {"mask": {"shape": list(mask.shape), "true_pixels": int(mask.sum())}, "runs": args.runs,
               "cases": {name: measure(mask, args.runs, **options) for name, options in CASES.items()}}
    print(json.dumps(results, indent=2))
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
