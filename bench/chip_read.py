"""Benchmark: chip reads cost about the same on a 30000x30000 raster as on a 3000x3000 one.

Builds two tiled (512x512), ZSTD-compressed, 3-band uint8 GeoTIFFs with 2x..64x average overviews
from real Landsat pixels (tests/data/optical/RGB.byte.tif tiled over the grid), cached in
bench/cache/. Then, each measurement in a fresh process (so neither GDAL's block cache nor Python's
heap carries over), times through the project's own code path (RasterSource, chip planning, read and
normalisation):

- prompt chip: a 1024x1024 full-resolution chip around a random point;
- scene chip: the whole raster within a 1024x1024 pixel budget (through overviews);

and records the process's peak resident memory during the read (Linux VmHWM, reset just before it)
and its rise over the resident memory after imports and opening the raster. Prints medians and the large/small ratios side by
side. Targets (issue 2): time and peak memory ratios at most 2x.

With ``--cold`` the OS page cache is dropped before every run (Linux, root), so reads come from disk.

Usage: python bench/chip_read.py [--runs N] [--cold] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(HERE, "cache")
SIZES = {"small": 3000, "large": 30000}
OVERVIEWS = [2, 4, 8, 16, 32, 64]
CHIP = 1024


def build(size: int) -> str:
    """The benchmark raster of ``size`` x ``size`` pixels (built once, then reused)."""
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin

    path = os.path.join(CACHE, f"bench_{size}.tif")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    with rasterio.open(os.path.join(ROOT, "tests", "data", "optical", "RGB.byte.tif")) as src:
        tile = src.read()
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32618",
                   transform=from_origin(100000.0, 3000000.0, 10.0, 10.0), tiled=True, blockxsize=512,
                   blockysize=512, compress="zstd", zstd_level=1, nodata=0, BIGTIFF="YES")
    tmp = path + ".tmp"
    strip = 512
    reps_x = -(-size // tile.shape[2])
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=512):
        with rasterio.open(tmp, "w", **profile) as dst:
            for row in range(0, size, strip):
                h = min(strip, size - row)
                rows = (np.arange(row, row + h) % tile.shape[1])
                block = np.tile(tile[:, rows, :], (1, 1, reps_x))[:, :, :size]
                dst.write(block, window=((row, row + h), (0, size)))
            dst.build_overviews(OVERVIEWS, Resampling.average)
    os.replace(tmp, path)
    return path


MEASURE = r"""
import json, os, random, sys, time
sys.path.insert(0, {root!r})
from model_backend.core.chip_plan import ChipSettings, plan_prompt_chip, plan_scene_chip
from model_backend.geo.raster import RasterSource

def status_kib(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

path, kind, seed = {path!r}, {kind!r}, {seed!r}
src = RasterSource(path)
base = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak-RSS mark (VmHWM) to the current RSS
    fh.write("5")
t0 = time.perf_counter()
if kind == "prompt":
    rnd = random.Random(seed)
    x, y = rnd.uniform(0, src.width), rnd.uniform(0, src.height)
    plan = plan_prompt_chip((x, y, x, y), src.width, src.height, ChipSettings(context=0, min_size={chip}))
else:
    plan = plan_scene_chip(src.width, src.height, max_pixels={chip} * {chip}, overviews=src.overviews)
chip = src.read_chip(plan)
elapsed = time.perf_counter() - t0
peak = status_kib("VmHWM")
src.close()
print(json.dumps(dict(seconds=elapsed, peak_mib=peak / 1024, rise_mib=(peak - base) / 1024,
                      chip=[chip.width, chip.height], overview=plan.source_overview)))
"""


def drop_page_cache() -> None:
    """Empty the OS page cache (Linux, root), so the next read comes from disk."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("1")
    except OSError as exc:
        sys.exit(f"--cold needs root on Linux to drop the page cache: {exc}")


def measure(path: str, kind: str, seed: int, cold: bool) -> dict:
    if cold:
        drop_page_cache()
    code = MEASURE.format(root=ROOT, path=path, kind=kind, seed=seed, chip=CHIP)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh-process runs per measurement (default 7)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--cold", action="store_true", help="drop the OS page cache before every run (root)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    paths = {name: build(size) for name, size in SIZES.items()}
    print(f"rasters ready in {time.perf_counter() - t0:.0f} s: " +
          ", ".join(f"{n} {os.path.getsize(p) / 2**20:.0f} MiB" for n, p in paths.items()))
    results = {}
    for kind in ("prompt", "scene"):
        for name, path in paths.items():
            runs = [measure(path, kind, seed, args.cold) for seed in range(args.runs)]
            results[(kind, name)] = {
                "seconds": statistics.median(r["seconds"] for r in runs),
                "peak_mib": max(r["peak_mib"] for r in runs),
                "rise_mib": max(r["rise_mib"] for r in runs),
                "chip": runs[0]["chip"], "overview": runs[0]["overview"],
            }
    print(f"\npage cache: {'cold' if args.cold else 'warm'}, median of {args.runs} fresh-process runs")
    print(f"{'read':<8}{'raster':<14}{'chip':<11}{'overview':>9}{'median s':>10}{'peak MiB':>10}{'rise MiB':>10}")
    for (kind, name), r in results.items():
        print(f"{kind:<8}{name + ' ' + str(SIZES[name]):<14}{'x'.join(map(str, r['chip'])):<11}"
              f"{r['overview']:>9}{r['seconds']:>10.4f}{r['peak_mib']:>10.1f}{r['rise_mib']:>10.1f}")
    ratios = {}
    print("\nratios large/small (target <= 2.0):")
    for kind in ("prompt", "scene"):
        big, small = results[(kind, "large")], results[(kind, "small")]
        ratios[kind] = {"time": big["seconds"] / small["seconds"], "peak_memory": big["peak_mib"] / small["peak_mib"]}
        print(f"  {kind:<7} time {ratios[kind]['time']:.2f}x   peak memory {ratios[kind]['peak_memory']:.2f}x   "
              f"(memory rise {big['rise_mib']:.1f} vs {small['rise_mib']:.1f} MiB)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"runs": args.runs, "page_cache": "cold" if args.cold else "warm", "results": {f"{k}/{n}": v for (k, n), v in results.items()},
                       "ratios": ratios}, fh, indent=2)


if __name__ == "__main__":
    main()
