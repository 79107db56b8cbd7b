"""Find objects over a whole raster, or an extent of it, tile by tile (tiled grounding; headless:
rasterio, pyproj, shapely).

Each tile is read at the chosen ground resolution, asked as a grounding question, and its regions are
mapped to the raster CRS through the tile chip's own affine (a box becomes its 4 mapped corners).
Detections of overlapping tiles are then merged (``tiling.merge_detections``). All-nodata tiles are
skipped without asking the model.

Memory does not grow with the raster: one tile's pixels are in memory at a time, and unless
``GDAL_CACHEMAX`` is set (environment or ``rasterio.Env``) GDAL's block cache, process-wide, is
limited during the search to the blocks under two tile windows (at least 64 MiB) instead of its
default 5 % of RAM, which a pass over a large raster would otherwise fill with blocks read once.

Output (DESIGN §4 schema), in the raster's CRS (an existing output keeps its own): ``answers`` gets
one feature per tile asked, its footprint the tile chip's footprint and its text the tile's answer,
all of one run sharing a ``question_id``; ``detections`` gets the merged detections, each pointing
(``answer_id``) at the tile answer it was parsed from, ``rank`` its order in that answer; with a
segmenter, ``masks`` gets their outlines, joined across tile borders (``merge_outlines``). Per-tile
answers keep each detection's provenance, and a cancelled run still records exactly what was searched.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import rasterio
import shapely
from pyproj import CRS, Geod
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from ..core.chip import Chip
from ..core.encoding import box_corners
from ..core.errors import AllNodataError, EarthGPTXError, InvalidArgumentError
from ..core.interface import Answer, AskRequest, Region, Task, check_max_new_tokens, check_question
from ..core.normalise import Modality
from ..core.prompts import VisualPrompt
from ..core.schema import new_id, utc_now
from ..core.tiling import (CONTAIN_THRESHOLD, DEFAULT_OVERLAP, DEFAULT_TILE, IOU_THRESHOLD, Tile, TileGrid,
                           area_window, candidate_pairs, merge_detections, overlap_ratios, plan_tiles,
                           polygon_areas, scale_for_resolution)
from ..geo.crs import transformer
from ..geo.geometry import prompt_geometry
from ..geo.masks import area_m2, check_outline_settings
from ..geo.outputs import Feature, QuestionRecord, WriteReport, check_output, read_layer, write_record
from ..geo.raster import RasterSource
from ..models.engine import Engine
from ..models.segmentation import SegmentEngine
from .segment import detection_masks

Bounds = Tuple[float, float, float, float]
#: the most tile questions in flight at once, and the most tiles in one batched call
MAX_CONCURRENCY = 256
MAX_BATCH = 64
#: the batch size that asks each engine for what its free memory holds
AUTO = "auto"
#: ``on_progress(tiles_done, tiles_total, message)``
ProgressCallback = Callable[[int, int, str], None]


@dataclass
class Detection:
    """A grounded region in the raster CRS.

    geometry: the region (a box is its 4 mapped corners, DESIGN §4). quad: (4, 2) the region's
    chip-pixel bounding box mapped corner by corner, used for merging (a point's has no area and
    never merges). tile: index of the tile whose
    answer it came from; rank: its order in that answer (1 = first); answer_id: that answer's id.
    """

    geometry: BaseGeometry
    quad: np.ndarray
    label: str
    kind: str
    tile: int
    rank: int
    answer_id: str


@dataclass
class FindResult:
    """What a tiled search found.

    detections: merged, in the raster CRS. candidates: detections before merging. tiles_done: tiles
    read (asked, or skipped as all nodata); tiles_skipped: the all-nodata ones. ground_resolution:
    metres per chip pixel along columns and rows at the area's centre (None for a CRS without an
    ellipsoid). timings: seconds, ``read_s`` (time spent waiting for pixel reads and normalisation,
    which run one tile ahead while the model answers), ``model_s`` (waiting for answers, however many
    are in flight), ``nms_s`` (merging detections and outlines), with a segmenter ``masks_s``
    (outlining), ``other_s`` (planning, mapping, writing), ``total_s``.
    interrupted: stopped by Ctrl-C (``cancelled`` too); what was done before is in the output all the
    same. cut_regions: regions past the cap of one tile's answer (``MAX_REGIONS``), summed over the tiles.
    resumed: tiles an earlier run had answered (not asked again). batch_size: tiles asked per call
    (``"auto"`` resolved). ``record`` holds this run's answers and its merged outlines (``masks``, raster
    CRS); mask_candidates: the per-tile outlines they were joined from.
    """

    detections: List[Detection]
    candidates: int
    tiles_total: int
    tiles_done: int
    tiles_skipped: int
    ground_resolution: Optional[Tuple[float, float]]
    cancelled: bool
    record: QuestionRecord
    report: Optional[WriteReport]
    timings: Dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    cut_regions: int = 0
    resumed: int = 0
    batch_size: int = 1
    mask_candidates: int = 0

    def summary(self) -> Dict[str, object]:
        """What the search did, as JSON-ready values (the CLI's summary and the worker's ``found``)."""
        return {
            "tiles": {"total": self.tiles_total, "done": self.tiles_done, "skipped_nodata": self.tiles_skipped},
            "answers": len(self.record.answers),
            "candidates": self.candidates,
            "detections": len(self.detections),
            "masks": len(self.record.masks),
            "labels": dict(Counter(d.label for d in self.detections)),
            "finish_reasons": dict(Counter(str(a.properties.get("finish_reason")) for a in self.record.answers)),
            "ground_resolution_m": list(self.ground_resolution) if self.ground_resolution else None,
            "cancelled": self.cancelled,
            "interrupted": self.interrupted,
            "resumed_tiles": self.resumed,
            "batch_size": self.batch_size,
            "cut_regions": self.cut_regions,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "files": self.report.files if self.report else [],
            "escaped_fields": self.report.escaped_fields if self.report else [],
        }


def plan_find_tiles(source: RasterSource, resolution: Optional[float] = None, extent: Optional[Bounds] = None,
                    extent_crs: Optional[CRS] = None, tile: int = DEFAULT_TILE,
                    overlap: float = DEFAULT_OVERLAP) -> Tuple[TileGrid, Optional[Tuple[float, float]]]:
    """The tile grid over ``source``'s read view (or over ``extent``: minx, miny, maxx, maxy in
    ``extent_crs``, default the raster's CRS) at ``resolution`` metres per chip pixel (None: full
    resolution), and the resulting ground resolution (metres per chip pixel, columns and rows).

    Metres are geodesic, measured at the area's centre, so a Mercator or geographic raster gets true
    ground distances.
    """
    view_extent = None if extent is None else _extent_to_view(source, extent, extent_crs)
    area = area_window(*source.view_size, view_extent)
    centre = (area.col_off + area.width / 2.0, area.row_off + area.height / 2.0)
    pixel_m = _view_pixel_metres(source, *centre)
    if resolution is not None and pixel_m is None:
        raise InvalidArgumentError("--resolution needs a raster CRS with a known ellipsoid to measure metres")
    scale = scale_for_resolution(resolution, pixel_m or (1.0, 1.0))
    grid = plan_tiles(*source.view_size, view_extent, tile, overlap, scale, source.overviews)
    ground = None if pixel_m is None else (pixel_m[0] * grid.scale[0], pixel_m[1] * grid.scale[1])
    return grid, ground


def plan_search(rasters: Sequence[str], phrase: str, out: Optional[str] = None, resume: bool = False,
                resolution: Optional[float] = None, extent: Optional[Bounds] = None,
                extent_crs: Optional[CRS] = None, tile: int = DEFAULT_TILE, overlap: float = DEFAULT_OVERLAP,
                max_new_tokens: int = 512) -> List[Tuple[str, TileGrid]]:
    """Everything a search of ``rasters`` can be refused for, checked before a model loads (phrase,
    budget, output, resume, each raster, extent and tiling); returns each raster's tile grid."""
    check_question(Task.GROUNDING, phrase, 0)
    check_max_new_tokens(max_new_tokens)
    if resume and not (out or "").lower().endswith(".gpkg"):
        raise InvalidArgumentError("resuming a search needs the GeoPackage output (.gpkg) it wrote to")
    if out is not None:
        check_output(out)
    if not rasters:
        raise InvalidArgumentError("no raster to search")
    grids = []
    for raster in rasters:
        with RasterSource(raster) as source:
            grids.append((raster, plan_find_tiles(source, resolution, extent, extent_crs, tile, overlap)[0]))
    return grids


class EnginePool:
    """Engines shared by the tile questions of a search: each question goes to the engine with the
    fewest questions in flight; an engine that answers one at a time (a local model) gets one."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        if not engines:
            raise InvalidArgumentError("no engine to ask")
        self.engines = list(engines)
        self._busy = [0] * len(self.engines)
        self._free = threading.Condition()

    def ask(self, requests: Sequence[AskRequest], cancel: threading.Event) -> List[Answer]:
        """Answers to ``requests``: one batched call when the engine takes batches (a local model), else
        one question after another."""
        with self._free:
            while True:
                usable = [k for k, e in enumerate(self.engines) if e.concurrent or not self._busy[k]]
                if usable:
                    k = min(usable, key=lambda i: self._busy[i])
                    self._busy[k] += 1
                    break
                self._free.wait()
        engine = self.engines[k]
        try:
            if len(requests) > 1 and hasattr(engine, "ask_batch"):
                return engine.ask_batch(requests, cancel=cancel)
            return [engine.ask(request, cancel=cancel) for request in requests]
        finally:
            with self._free:
                self._busy[k] -= 1
                self._free.notify_all()


def auto_batch_size(engines: Sequence[Engine], grid: TileGrid, max_new_tokens: int) -> int:
    """Tiles per call for ``grid``'s tiles: the fewest that an engine taking batches says its free
    memory holds (``batch_size_for``), 1 when none takes batches."""
    sizes = [e.batch_size_for(grid.out_width, grid.out_height, max_new_tokens) for e in engines
             if hasattr(e, "batch_size_for")]
    return min(sizes) if sizes else 1


def find_objects(raster: str, phrase: str, engine: Union[Engine, Sequence[Engine]],
                 resolution: Optional[float] = None, extent: Optional[Bounds] = None,
                 extent_crs: Optional[CRS] = None, tile: int = DEFAULT_TILE, overlap: float = DEFAULT_OVERLAP,
                 modality: Optional[Modality] = None,
                 bands: Optional[Sequence[int]] = None, max_new_tokens: int = 512, out: Optional[str] = None,
                 on_progress: ProgressCallback = lambda done, total, message: None,
                 cancel: Optional[threading.Event] = None, concurrency: int = 1, resume: bool = False,
                 batch_size: Union[int, str] = 1, segmenter: Optional[SegmentEngine] = None,
                 simplify_px: float = 0.0, min_area_px: float = 0.0) -> FindResult:
    """Find ``phrase`` over ``raster`` (whole, or ``extent`` in ``extent_crs``) tile by tile with
    ``engine`` (or several: each tile goes to the least busy), merge the detections of overlapping
    tiles, and append them to ``out`` when given.

    ``tile``: chip side in chip pixels; ``overlap``: fraction of a tile shared with its neighbours;
    ``resolution``: metres per chip pixel (never finer than the raster's); ``concurrency``: tile
    questions in flight at once (engines that answer one at a time take one each; at most
    ``concurrency`` + 2 chips are in memory); ``batch_size``: tiles asked in one call of an engine
    that takes batches (a local model: one ``generate`` over them; then ``concurrency`` x
    ``batch_size`` + 2 chips are in memory; ``"auto"``: as many as the free memory holds, see
    ``auto_batch_size``). Setting ``cancel`` stops the questions in flight (their
    answers are dropped); what was done is kept and written. A tile whose question fails ends the
    search the same way, then its error is raised, saying what was written.

    ``segmenter`` (SAM 2.1 or SAM): each tile's detections are outlined on its chip as its answer
    arrives (``detection_masks``, one image encoding per tile, in this thread only), ``simplify_px``
    and ``min_area_px`` in chip pixels; at the end the outlines are joined as ``merge_outlines`` says.

    A GeoPackage output is written as the search goes: each tile's answer, its detections and their
    outlines in one transaction when the answer arrives, so a run killed at any moment loses only the
    tiles in flight; at the end the run's detections (and outlines) are replaced by their merge.
    ``resume``: the tiles an earlier run of the same search (raster, phrase and tile grid) wrote to
    ``out`` are not asked again; the run goes on under its question id and the merge covers every tile
    (outlines: those of the tiles outlined, by this run or the earlier one).
    """
    t_start = time.perf_counter()
    check_question(Task.GROUNDING, phrase, 0)
    check_max_new_tokens(max_new_tokens)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidArgumentError(f"the concurrency must be 1..{MAX_CONCURRENCY} questions in flight, "
                                   f"got {concurrency!r}")
    if batch_size != AUTO and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                               or not 1 <= batch_size <= MAX_BATCH):
        raise InvalidArgumentError(f"the batch size must be 1..{MAX_BATCH} tiles or {AUTO!r}, got {batch_size!r}")
    stream_out = out is not None and out.lower().endswith(".gpkg")
    if resume and not stream_out:
        raise InvalidArgumentError("resuming a search needs the GeoPackage output (.gpkg) it wrote to")
    if segmenter is not None:
        check_outline_settings(min_area_px, simplify_px)
    if out is not None:
        check_output(out)
    pool = EnginePool([engine] if isinstance(engine, Engine) else list(engine))
    stop = threading.Event()
    read_s = model_s = masks_s = 0.0
    candidates: List[Detection] = []
    cancelled = interrupted = False
    failure: Optional[EarthGPTXError] = None
    skipped = done = cut = 0
    answered: List[Tuple[int, Feature]] = []
    escaped: List[str] = []
    with contextlib.ExitStack() as stack, RasterSource(raster) as source:
        grid, ground = plan_find_tiles(source, resolution, extent, extent_crs, tile, overlap)
        stack.enter_context(_block_cache(raster, grid))
        if batch_size == AUTO:
            batch_size = auto_batch_size(pool.engines, grid, max_new_tokens)
        record = QuestionRecord(crs=source.crs)
        earlier = _earlier_run(out, raster, phrase, grid, source) if resume else None
        question_id = earlier.question_id if earlier else new_id()
        run_answers = list(earlier.answers.values()) if earlier else []   # every answer id of this run
        candidates = list(earlier.detections) if earlier else []
        outlines = list(earlier.masks) if earlier else []   # per-tile (or merged before), raster CRS
        todo = [t for t in grid if earlier is None or t.index not in earlier.answers]
        total, done = len(grid), len(grid) - len(todo)
        if earlier is not None:
            on_progress(done, total, f"resuming: {done} of {total} tile(s) were answered before")
        in_flight: Dict[Future, List[Tuple[Tile, Chip]]] = {}
        batch: List[Tuple[Tile, Chip]] = []
        if cancel is not None:  # the caller's cancel stops the questions in flight too
            stack.callback(_forward(cancel, stop))

        def settle(block: bool) -> None:
            """Take the answers that are in (waiting for one when ``block``)."""
            nonlocal model_s, failure
            waited_from = time.perf_counter()
            ready, _ = wait(list(in_flight), return_when=FIRST_COMPLETED) if block else \
                ([f for f in in_flight if f.done()], None)
            model_s += time.perf_counter() - waited_from
            for future in sorted(ready, key=lambda f: in_flight[f][0][0].index):
                tiles = in_flight.pop(future)
                try:
                    answers = future.result()
                except Exception as exc:  # noqa: BLE001 - any failure ends the search the same way
                    failure = failure or _failure(f"asking tile {tiles[0][0].index + 1}", exc)
                    stop.set()
                    continue
                for (t, chip), answer in zip(tiles, answers):
                    take(t, chip, answer)

        def take(t: Tile, chip: Chip, answer: Answer) -> None:
            """One tile's answer: outlined (with a segmenter), written (GeoPackage), kept for the merge,
            counted."""
            nonlocal done, cut, cancelled, failure, masks_s
            if answer.meta.finish_reason == "cancelled":
                cancelled = cancelled or failure is None
                return
            answer_id = new_id()
            cut += answer.meta.cut_regions
            feature = _answer_feature(raster, chip, phrase, answer, question_id, answer_id)
            found = [_detection(chip, region, t.index, rank, answer_id)
                     for rank, region in enumerate(answer.regions, start=1)]
            tile_outlines: List[Feature] = []
            if segmenter is not None:   # the chip's CRS is the raster's
                started = time.perf_counter()
                try:
                    tile_outlines = detection_masks(chip, answer, segmenter, answer_id, simplify_px, min_area_px)
                except Exception as exc:  # noqa: BLE001 - as a failed question: the tile is left for a resume
                    failure = failure or _failure(f"outlining tile {t.index + 1}", exc)
                    stop.set()
                    return
                finally:
                    masks_s += time.perf_counter() - started
            if stream_out:  # committed now: a kill later loses nothing of this tile
                try:
                    tile_record = QuestionRecord(crs=source.crs, answers=[feature], masks=tile_outlines,
                                                 detections=[_detection_feature(d) for d in found])
                    escaped.extend(write_record(out, tile_record).escaped_fields)
                except EarthGPTXError as exc:
                    failure = failure or exc
                    stop.set()
                    return
            run_answers.append(answer_id)
            answered.append((t.index, feature))
            candidates.extend(found)
            outlines.extend(tile_outlines)
            done += 1
            on_progress(done, total, f"tile {t.index + 1} of {total}: {len(answer.regions)} region(s)")

        def submit() -> None:
            """Ask the tiles gathered so far, as one call."""
            requests = [AskRequest(chip.image, phrase, task=Task.GROUNDING, modality=chip.modality,
                                   max_new_tokens=max_new_tokens) for _, chip in batch]
            in_flight[asking.submit(pool.ask, requests, stop)] = list(batch)
            batch.clear()

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="find-tile") as asking:
            try:  # Ctrl-C stops after what is done, which is still merged and written
                for t, chip, waited in _read_ahead(source, todo, modality, bands):
                    if cancel is not None and cancel.is_set():
                        stop.set()
                    if stop.is_set():
                        cancelled = cancelled or failure is None
                        break
                    read_s += waited
                    if chip is None:
                        skipped, done = skipped + 1, done + 1
                        on_progress(done, total, f"tile {t.index + 1} of {total}: no data, skipped")
                        continue
                    batch.append((t, chip))
                    if len(batch) >= batch_size:
                        submit()
                        settle(block=len(in_flight) >= concurrency)
                if batch and not stop.is_set():
                    submit()
                while in_flight:
                    settle(block=True)
            except KeyboardInterrupt:
                cancelled = interrupted = True
                stop.set()
                settle(block=False)          # answers already in are kept
                for future in in_flight:
                    future.cancel()
                in_flight.clear()
    answered.sort(key=lambda item: item[0])
    record.answers = [feature for _, feature in answered]
    candidates.sort(key=lambda d: (d.tile, d.rank))
    t_nms = time.perf_counter()
    keep = merge_detections(np.array([d.quad for d in candidates]).reshape(-1, 4, 2),
                            [d.label for d in candidates])
    detections = [d for d, k in zip(candidates, keep) if k]
    record.detections = [_detection_feature(d) for d in detections]
    record.masks = merge_outlines(candidates, keep, outlines, grid, source) if outlines else []
    nms_s = time.perf_counter() - t_nms
    report = None
    if stream_out and run_answers:   # the run's detections and outlines, raw or merged before, become their merge
        try:
            merged = write_record(out, QuestionRecord(crs=source.crs, detections=record.detections,
                                                      masks=record.masks), replacing=run_answers)
            report = WriteReport(written={"prompts": 0, "answers": len(record.answers),
                                          "detections": merged.written["detections"],
                                          "masks": merged.written["masks"]}, files=merged.files,
                                 split_fields=[], escaped_fields=sorted(set(escaped + merged.escaped_fields)))
        except EarthGPTXError as exc:
            failure = failure or exc
    elif out is not None and record.answers:
        report = write_record(out, record)
    if failure is not None:
        kept = f"the {len(record.answers)} tile answer(s) before it were written to {out}" if report else \
            "nothing was written"
        raise type(failure)(f"{failure} ({kept})")
    total_s = time.perf_counter() - t_start
    timings = {"read_s": read_s, "model_s": model_s, "nms_s": nms_s, **({"masks_s": masks_s} if segmenter else {}),
               "other_s": total_s - read_s - model_s - nms_s - masks_s, "total_s": total_s}
    return FindResult(detections, len(candidates), total, done, skipped, ground, cancelled, record, report, timings,
                      interrupted, cut, total - len(todo), batch_size, len(outlines))


def merge_outlines(candidates: Sequence[Detection], keep: np.ndarray, outlines: Sequence[Feature], grid: TileGrid,
                   source: RasterSource) -> List[Feature]:
    """One outline per object from the per-tile ``outlines`` (``masks`` features in the raster CRS, each
    pointing at a detection by ``answer_id`` and ``rank``) of ``candidates`` (the run's detections in
    (tile, rank) order; ``keep``: those ``merge_detections`` kept).

    Detections are joined, transitively: a dropped one with the kept one it was merged into
    (``_merged_into``), and two kept ones that are one object cut by a tile border (``_cut_across``).
    The outlines of each joined set become one: the union of their geometries (a MultiPolygon), the
    highest score, ``area_m2`` of the union (geodesic), ``answer_id`` and ``rank`` those of the set's
    first kept detection; ordered as those detections. An outline whose detection is not among
    ``candidates`` is left out."""
    n = len(candidates)
    parent = list(range(n))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    quads = np.array([d.quad for d in candidates], dtype=float).reshape(-1, 4, 2)
    labels = [d.label for d in candidates]
    kept = np.flatnonzero(keep)
    joins = [(k, int(j)) for k, j in enumerate(_merged_into(quads, labels, keep)) if j >= 0]
    joins += [(int(kept[a]), int(kept[b])) for a, b in zip(*_cut_across([candidates[k] for k in kept], grid, source))]
    for a, b in joins:
        parent[root(a)] = root(b)
    first: Dict[int, int] = {}   # root -> the first of its detections, a kept one where there is one
    for k in sorted(range(n), key=lambda k: (not keep[k], k)):
        first.setdefault(root(k), k)
    index = {(d.answer_id, d.rank): k for k, d in enumerate(candidates)}
    members: Dict[int, List[Feature]] = {}
    for f in outlines:
        k = index.get((str(f.properties.get("answer_id")), f.properties.get("rank")))
        if k is not None:
            members.setdefault(first[root(k)], []).append(f)
    merged = []
    for k in sorted(members):
        parts, lead = members[k], candidates[k]
        geometry = parts[0].geometry if len(parts) == 1 else shapely.union_all([f.geometry for f in parts])
        geometry = geometry if geometry.geom_type == "MultiPolygon" else MultiPolygon([geometry])
        area = parts[0].properties["area_m2"] if len(parts) == 1 else area_m2(geometry, source.crs)
        merged.append(Feature(geometry, {**parts[0].properties, "answer_id": lead.answer_id, "rank": lead.rank,
                                         "score": max(float(f.properties["score"]) for f in parts),
                                         "area_m2": area}))
    return merged


def _merged_into(quads: np.ndarray, labels: Sequence[str], keep: np.ndarray) -> np.ndarray:
    """For each of the detections (quads (N, 4, 2) in one CRS, labels, ``keep`` from ``merge_detections``)
    the index of the kept detection it was merged into: itself when kept; for a dropped one, the first
    in merge order (larger area, then earlier) of the kept detections of its label that
    ``merge_detections``' test calls its duplicate, -1 when there is none; an exact copy (same label and
    quad) goes where its first copy goes. Copies are set aside first, as ``merge_detections`` does, so a
    repetition loop stays O(N log N)."""
    n = len(quads)
    into = np.where(keep, np.arange(n), -1)
    ids: Dict[str, int] = {}
    label_ids = [ids.setdefault(str(s).strip().casefold(), len(ids)) for s in labels]
    _, leader, copy_of = np.unique(np.column_stack([label_ids, quads.reshape(n, -1)]), axis=0, return_index=True,
                                   return_inverse=True)
    copy_of = leader[copy_of.ravel()]          # each detection's first exact copy (itself when none)
    distinct = leader[~keep[leader]]           # the first copies that were dropped, and the kept ones
    distinct = np.concatenate([distinct, np.flatnonzero(keep)])
    a, b = candidate_pairs(quads[distinct], [labels[k] for k in distinct.tolist()])
    a, b = distinct[a], distinct[b]
    a, b = np.concatenate([a, b]), np.concatenate([b, a])      # (kept, dropped) either way round
    a, b = a[keep[a] & ~keep[b]], b[keep[a] & ~keep[b]]
    iou, over_smaller = overlap_ratios(quads[a], quads[b])
    same = (iou > IOU_THRESHOLD) | (over_smaller > CONTAIN_THRESHOLD)
    rank = np.empty(n, int)
    rank[np.lexsort((np.arange(n), -polygon_areas(quads)))] = np.arange(n)
    for winner, loser in sorted(zip(a[same].tolist(), b[same].tolist()), key=lambda p: rank[p[0]]):
        if into[loser] < 0:
            into[loser] = winner
    dropped = ~keep
    into[dropped] = into[copy_of[dropped]]
    return into


def _cut_across(kept: Sequence[Detection], grid: TileGrid, source: RasterSource) -> Tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of ``kept`` detections that are one object cut by a tile border: of one label
    (as ``merge_detections`` compares them), from different tiles, at least one of the two boxes reaching
    its tile's edge (within one chip pixel), and the parts of the two boxes inside the window both
    tiles read overlapping by an IoU over ``IOU_THRESHOLD`` (boxes and windows in view pixels)."""
    if len(kept) < 2:
        return np.empty(0, int), np.empty(0, int)
    quads = np.array([d.quad for d in kept], dtype=float).reshape(-1, 4, 2)
    a, b = candidate_pairs(quads, [d.label for d in kept])
    cols, rows = source.crs_to_view(quads[..., 0], quads[..., 1])
    lo, hi = np.stack([cols.min(axis=1), rows.min(axis=1)], axis=1), np.stack([cols.max(axis=1), rows.max(axis=1)],
                                                                              axis=1)
    windows = [grid.tile(d.tile).plan.window for d in kept]
    w_lo = np.array([(w.col_off, w.row_off) for w in windows], dtype=float)
    w_hi = w_lo + np.array([(w.width, w.height) for w in windows], dtype=float)
    pixel = np.array(grid.scale)                                  # one chip pixel in view pixels
    cut = np.any(lo <= w_lo + pixel, axis=1) | np.any(hi >= w_hi - pixel, axis=1)
    shared_lo, shared_hi = np.maximum(w_lo[a], w_lo[b]), np.minimum(w_hi[a], w_hi[b])
    a_lo, a_hi = np.maximum(lo[a], shared_lo), np.minimum(hi[a], shared_hi)
    b_lo, b_hi = np.maximum(lo[b], shared_lo), np.minimum(hi[b], shared_hi)

    def area(low: np.ndarray, high: np.ndarray) -> np.ndarray:
        return np.prod(np.clip(high - low, 0.0, None), axis=1)

    inter = area(np.maximum(a_lo, b_lo), np.minimum(a_hi, b_hi))
    union = area(a_lo, a_hi) + area(b_lo, b_hi) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    tiles = np.array([d.tile for d in kept])
    same = (tiles[a] != tiles[b]) & (cut[a] | cut[b]) & (iou > IOU_THRESHOLD)
    return a[same], b[same]


def _failure(what: str, exc: Exception) -> EarthGPTXError:
    """``exc`` as the search's failure: itself when it is ours, else one line saying that ``what`` failed."""
    if isinstance(exc, EarthGPTXError):
        return exc
    return EarthGPTXError(f"{what} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _forward(source: threading.Event, target: threading.Event) -> Callable[[], None]:
    """Set ``target`` as soon as ``source`` is set (a watcher thread); returns the function that ends
    the watching."""
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            if source.wait(0.05):
                target.set()
                return

    threading.Thread(target=watch, daemon=True, name="find-cancel").start()
    return finished.set


def _read_ahead(source: RasterSource, tiles: Sequence[Tile], modality: Optional[Modality],
                bands: Optional[Sequence[int]]) -> Iterator[Tuple[Tile, Optional[Chip], float]]:
    """``(tile, chip, seconds waited for it)`` for each tile, ``chip`` None for an all-nodata tile. The
    next tile is read in a background thread while the caller asks the model about the current one:
    at most two chips in memory, and only one thread uses the raster at a time."""

    def read(t: Tile) -> Optional[Chip]:
        try:
            return source.read_chip(t.plan, modality, bands)
        except AllNodataError:
            return None

    tiles = iter(tiles)
    with ThreadPoolExecutor(max_workers=1) as pool:
        current = next(tiles, None)
        pending = pool.submit(read, current) if current is not None else None
        while current is not None:
            t0 = time.perf_counter()
            chip = pending.result()
            waited = time.perf_counter() - t0
            following = next(tiles, None)
            pending = pool.submit(read, following) if following is not None else None
            yield current, chip, waited
            current = following


def _block_cache(raster: str, grid: TileGrid) -> ContextManager:
    """A ``rasterio.Env`` holding GDAL's block cache to twice the blocks under one tile window (all
    bands, at the overview level read; whole strips for a striped file), at least 64 MiB; nothing
    when ``GDAL_CACHEMAX`` is set."""
    if "GDAL_CACHEMAX" in os.environ or (rasterio.env.hasenv() and "GDAL_CACHEMAX" in rasterio.env.getenv()):
        return contextlib.nullcontext()
    with rasterio.open(raster) as ds:
        block_h, block_w = ds.block_shapes[0]
        level_w, level_h = math.ceil(ds.width / grid.source_overview), math.ceil(ds.height / grid.source_overview)
        sample_bytes = ds.count * np.dtype("complex64" if ds.dtypes[0] == "complex_int16" else ds.dtypes[0]).itemsize

    def cover(window: int, level: int, block: int) -> int:
        return min((math.ceil(window / grid.source_overview / block) + 1) * block, math.ceil(level / block) * block)

    needed = 2 * cover(grid.window_width, level_w, block_w) * cover(grid.window_height, level_h, block_h) * sample_bytes
    return rasterio.Env(GDAL_CACHEMAX=max(64, math.ceil(needed / 2 ** 20)))


def _extent_to_view(source: RasterSource, extent: Bounds, extent_crs: Optional[CRS]) -> Bounds:
    """Bounds in view pixels of ``extent`` (minx, miny, maxx, maxy in ``extent_crs``), its edges
    densified (21 points each) so that a curved reprojection is bounded."""
    to_raster = transformer(extent_crs or source.crs, source.crs)
    minx, miny, maxx, maxy = (float(v) for v in extent)
    if not (maxx > minx and maxy > miny):
        raise InvalidArgumentError(f"the extent must have minx < maxx and miny < maxy, got {tuple(extent)}")
    t = np.linspace(0.0, 1.0, 21)
    xs = np.concatenate([minx + (maxx - minx) * t, np.full_like(t, maxx), maxx - (maxx - minx) * t,
                         np.full_like(t, minx)])
    ys = np.concatenate([np.full_like(t, miny), miny + (maxy - miny) * t, np.full_like(t, maxy),
                         maxy - (maxy - miny) * t])
    cols, rows = source.crs_to_view(*to_raster(xs, ys))
    return float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())


def _view_pixel_metres(source: RasterSource, col: float, row: float) -> Optional[Tuple[float, float]]:
    """Geodesic length in metres of one view pixel along columns and along rows at view pixel
    (``col``, ``row``); None when the CRS has no ellipsoid."""
    geodetic, geod = source.crs.geodetic_crs, source.crs.get_geod()
    if geodetic is None or not isinstance(geod, Geod):
        return None
    xs, ys = source.view_affine.apply([col, col + 1.0, col], [row, row, row + 1.0])
    lon, lat = transformer(source.crs, geodetic)(xs, ys)
    _, _, dist = geod.inv(lon[[0, 0]], lat[[0, 0]], lon[[1, 2]], lat[[1, 2]])
    return float(dist[0]), float(dist[1])


@dataclass
class _EarlierRun:
    """What an earlier run of the same search wrote: its question id, the answer id of each tile it
    answered, and the detections and outlines of those answers (raster CRS)."""

    question_id: str
    answers: Dict[int, str]
    detections: List[Detection]
    masks: List[Feature]


def _earlier_run(out: str, raster: str, phrase: str, grid: TileGrid, source: RasterSource) -> Optional[_EarlierRun]:
    """The latest run in ``out`` of ``phrase`` over ``raster`` whose tile answers all lie on tiles of
    ``grid`` (their footprints' centres within 1 % of a tile of a tile's centre), or None."""
    tiles = list(grid)
    if not tiles:
        return None
    centres = np.array([t.plan.chip_affine(source.view_affine).apply(t.plan.out_width / 2, t.plan.out_height / 2)
                        for t in tiles], dtype=float).reshape(-1, 2)
    first = tiles[0].plan.chip_affine(source.view_affine)
    width = np.subtract(first.apply(tiles[0].plan.out_width, 0.0), first.apply(0.0, 0.0))
    tolerance = 0.01 * float(np.hypot(*width))
    runs: Dict[str, List[Feature]] = {}
    for f in read_layer(out, "answers", source.crs):
        p = f.properties
        if p.get("question") == phrase and p.get("task") == Task.GROUNDING.value and p.get("raster_source") == raster:
            runs.setdefault(str(p.get("question_id")), []).append(f)
    best = None
    for question_id, features in runs.items():
        matched = {}
        for f in features:
            c = f.geometry.centroid
            distance = np.hypot(centres[:, 0] - c.x, centres[:, 1] - c.y)
            k = int(np.argmin(distance))
            if distance[k] > tolerance:
                break
            matched[tiles[k].index] = str(f.properties["answer_id"])
        else:
            latest = max(str(f.properties.get("created") or "") for f in features)
            if best is None or latest > best[0]:
                best = (latest, question_id, matched)
    if best is None:
        return None
    _, question_id, matched = best
    tile_of = {answer_id: index for index, answer_id in matched.items()}
    detections = [_stored_detection(f, tile_of[str(f.properties["answer_id"])])
                  for f in read_layer(out, "detections", source.crs) if str(f.properties.get("answer_id")) in tile_of]
    masks = [f for f in read_layer(out, "masks", source.crs) if str(f.properties.get("answer_id")) in tile_of]
    return _EarlierRun(question_id, matched, detections, masks)


def _stored_detection(feature: Feature, tile: int) -> Detection:
    """A detection read back from the output (raster CRS); its merge quad is the geometry's four box
    corners, or the corners of its bounds."""
    g, p = feature.geometry, feature.properties
    coords = np.array(g.exterior.coords) if g.geom_type == "Polygon" else None
    if coords is not None and len(coords) == 5:
        quad = coords[:4]
    else:
        x0, y0, x1, y1 = g.bounds
        quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
    return Detection(geometry=g, quad=quad, label=str(p.get("label") or ""), kind=str(p.get("kind") or ""),
                     tile=tile, rank=int(p.get("rank") or 0), answer_id=str(p["answer_id"]))


def _detection_feature(d: Detection) -> Feature:
    return Feature(d.geometry, {"answer_id": d.answer_id, "label": d.label, "rank": d.rank, "kind": d.kind})


def _detection(chip: Chip, region: Region, tile: int, rank: int, answer_id: str) -> Detection:
    shape = region.shape
    return Detection(geometry=prompt_geometry(shape, chip.affine.apply), quad=chip.to_crs(box_corners(*shape.bounds())),
                     label=region.label, kind=shape.kind.value, tile=tile, rank=rank, answer_id=answer_id)


def _answer_feature(raster: str, chip: Chip, phrase: str, answer: Answer, question_id: str,
                    answer_id: str) -> Feature:
    meta = answer.meta
    footprint = prompt_geometry(VisualPrompt.box(0, 0, chip.width, chip.height), chip.affine.apply)
    return Feature(footprint, {
        "answer_id": answer_id, "question_id": question_id, "question": phrase, "answer": answer.text,
        "task": Task.GROUNDING.value, "modality": chip.modality.value, "model": meta.model_id,
        "backend": meta.backend, "quantization": meta.quantization, "raster_source": raster,
        "chip_resolution": float(chip.resolution[0]), "finish_reason": meta.finish_reason, "created": utc_now()})
