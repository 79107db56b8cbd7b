"""The ``find`` command: ``python -m model_backend find RASTER... "phrase" [--extent MINX MINY MAXX MAXY
[--extent-crs AUTH:CODE]] [--resolution METRES] [--tile PX] [--overlap F] [--concurrency N] [--batch-size K|auto]
[--resume] [--masks [--segmenter ID_OR_FOLDER] [--segmenter-device D] [--precision P] [--simplify PX] [--min-area PX]]
[engine options] --out FILE.gpkg|FILE.shp``: tiled grounding over whole rasters (or an extent), several rasters (or
``@LIST``) into one output, with ``--masks`` the detections outlined and joined across tile borders."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Sequence

from ..core.engine_options import DEFAULT_SEGMENTER
from ..core.errors import InvalidArgumentError
from ..core.normalise import Modality
from ..core.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, MAX_OVERLAP, MIN_TILE
from ..geo.crs import parse_crs
from .engine_args import add_engine_options, engines_from_args, say_unfinished
from .prompt_args import add_outline_options
from .segment import add_segmenter_options, check_outline_options, check_segmenter, segmenter_from_args


def add_parser(sub) -> None:
    find = sub.add_parser("find", help="find objects over a whole raster (or an extent of it) tile by tile, "
                                       "merge the detections of overlapping tiles and write them")
    find.add_argument("rasters", nargs="+", metavar="RASTER",
                      help="raster file(s), or @LIST: a text file naming one raster per line; all go to one output")
    find.add_argument("phrase", help="what to find, e.g. \"ships\"")
    find.add_argument("--extent", nargs=4, type=float, metavar=("MINX", "MINY", "MAXX", "MAXY"),
                      help="search only this extent (default: the whole raster)")
    find.add_argument("--extent-crs", help="CRS of --extent (default: the raster's)")
    find.add_argument("--resolution", type=float, metavar="METRES",
                      help="ground size of a chip pixel in metres (default: the raster's full resolution)")
    find.add_argument("--tile", type=int, default=DEFAULT_TILE,
                      help=f"tile side in chip pixels, at least {MIN_TILE} (default {DEFAULT_TILE})")
    find.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP,
                      help=f"fraction of a tile shared with its neighbours, 0..{MAX_OVERLAP} "
                           f"(default {DEFAULT_OVERLAP})")
    find.add_argument("--modality", choices=[m.value for m in Modality], help="override the modality guess")
    find.add_argument("--bands", type=int, nargs="+", metavar="N", help="1-based bands: one (grey) or three (RGB)")
    add_engine_options(find)
    find.add_argument("--concurrency", type=int, metavar="N",
                      help="tile questions in flight at once (default 4 with --backend openai, 1 locally: a local "
                           "model answers one at a time)")
    find.add_argument("--batch-size", type=_batch_size, default=1, metavar="K",
                      help="a local model: tiles asked in one generate (left-padded; greedy, so the answers are "
                           "those of one at a time), or auto: as many as the free memory holds (default 1)")
    find.add_argument("--resume", action="store_true",
                      help="a .gpkg output: ask only the tiles an earlier run of the same search did not answer")
    find.add_argument("--max-new-tokens", type=int, default=512, help="generation budget per tile (default 512)")
    find.add_argument("--out", required=True, help="output .gpkg or .shp (appended to when it exists)")
    find.add_argument("--masks", action="store_true",
                      help="also outline each detection on its tile with a segmenter (SAM 2.1 or SAM), outlines of "
                           "one object on several tiles joined (the masks layer)")
    add_segmenter_options(find, "--segmenter", DEFAULT_SEGMENTER)
    add_outline_options(find)


def run(args: argparse.Namespace) -> dict:
    """Check everything that can be checked (phrase, output, rasters, extent, tiling, outline options
    and the segmenter) before loading a model, then search each raster in turn into the one output;
    progress on stderr, the summary (one raster's, or a list of them) returned for stdout."""
    from ..jobs.find import AUTO, MAX_BATCH, MAX_CONCURRENCY, find_objects, plan_search

    if args.extent_crs and not args.extent:
        raise InvalidArgumentError("--extent-crs goes with --extent")
    if args.resume and not args.out.lower().endswith(".gpkg"):
        raise InvalidArgumentError("--resume needs the GeoPackage output (.gpkg) the search wrote to")
    if args.masks:
        check_outline_options(args)
    extent_crs = parse_crs(args.extent_crs) if args.extent_crs else None
    rasters = raster_list(args.rasters)
    grids = plan_search(rasters, args.phrase, args.out, args.resume, args.resolution, args.extent, extent_crs,
                        args.tile, args.overlap, args.max_new_tokens)
    if args.masks:
        check_segmenter(args)
    for raster, grid in grids:
        print(f"{os.path.basename(raster)}: {len(grid)} tile(s) of {grid.out_width}x{grid.out_height} chip pixels "
              f"({grid.window_width}x{grid.window_height} raster pixels each).", file=sys.stderr, flush=True)
    concurrency = args.concurrency if args.concurrency is not None else 4 if args.backend == "openai" else 1
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidArgumentError(f"--concurrency must be 1..{MAX_CONCURRENCY}, got {concurrency}")
    if args.batch_size != AUTO and not 1 <= args.batch_size <= MAX_BATCH:
        raise InvalidArgumentError(f"--batch-size must be 1..{MAX_BATCH} or auto, got {args.batch_size}")
    segmenter = segmenter_from_args(args) if args.masks else None   # small: loaded first, then the VLM
    engines = []
    summaries = []
    try:
        engines = engines_from_args(args)
        for raster in rasters:
            result = find_objects(raster, args.phrase, engines, args.resolution, args.extent, extent_crs,
                                  args.tile, args.overlap, Modality(args.modality) if args.modality else None,
                                  args.bands, args.max_new_tokens, args.out,
                                  on_progress=lambda done, total, message: print(message, file=sys.stderr, flush=True),
                                  concurrency=concurrency, resume=args.resume, batch_size=args.batch_size,
                                  segmenter=segmenter, simplify_px=args.simplify, min_area_px=args.min_area)
            summaries.append(_summary(raster, args, result, concurrency))
            if result.interrupted or result.cancelled:
                break
    finally:
        for engine in engines:
            engine.close()
        if segmenter is not None:
            segmenter.close()
    if len(rasters) == 1:
        return summaries[0]
    return {"phrase": args.phrase, "rasters": summaries,
            "interrupted": any(s["interrupted"] for s in summaries),
            "files": sorted({f for s in summaries for f in s["files"]})}


def _batch_size(text: str):
    """``--batch-size``: ``auto`` or a whole number."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def raster_list(items: Sequence[str]) -> List[str]:
    """The rasters named: each item a raster, or ``@LIST`` (a text file, one raster per line; blank
    lines and lines starting with # left out; relative paths from the list's folder)."""
    rasters: List[str] = []
    for item in items:
        if not item.startswith("@"):
            rasters.append(item)
            continue
        try:
            with open(item[1:], encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgumentError(f"cannot read the raster list {item[1:]}: {exc}") from None
        base = os.path.dirname(os.path.abspath(item[1:]))
        rasters += [os.path.join(base, line) for line in lines if line and not line.startswith("#")]
    if not rasters:
        raise InvalidArgumentError("no raster to search: the list is empty")
    return rasters


def _summary(raster: str, args: argparse.Namespace, result, concurrency: int) -> dict:
    """What the search of one raster did (said on stderr too)."""
    summary = result.summary()
    if summary["escaped_fields"]:
        print(f"NUL characters or lone surrogates in {', '.join(summary['escaped_fields'])} were written as "
              "\\uXXXX.", file=sys.stderr)
    say_unfinished((a.properties.get("finish_reason") for a in result.record.answers), args.max_new_tokens,
                   result.cut_regions)
    if args.batch_size == "auto":
        print(f"--batch-size auto: {result.batch_size} tile(s) per generate.", file=sys.stderr)
    if result.interrupted:
        print(f"Interrupted after {result.tiles_done} of {result.tiles_total} tile(s).", file=sys.stderr)
    outlines = f" and {summary['masks']} outline(s) (joined from {result.mask_candidates} per tile)" \
        if result.mask_candidates else ""
    print(f"Wrote {summary['answers']} tile answer(s) and {summary['detections']} detection(s) "
          f"(merged from {result.candidates}){outlines} to {', '.join(summary['files']) or 'nothing'}.",
          file=sys.stderr)
    return {"raster": raster, "phrase": args.phrase, **summary, "concurrency": concurrency}
