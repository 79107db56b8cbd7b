"""Tiled grounding, the pure half (numpy/stdlib only): tile plans over a raster, and merging the
detections of overlapping tiles (geo NMS).

Tiles are planned in the pixel space of the *read view* (the raster, or the warped north-up view of
a GCP-only raster; GDAL convention, x = column, y = row). Tiles of one grid share one window size
(full-resolution view pixels) and one chip size (chip pixels); neighbours overlap by at least the
stated fraction of the window, and the last tile of a row or column is shifted inward so that every
tile lies inside the area and the union of the tiles is the area exactly. A grid holds only its
offsets per axis and yields its tiles lazily, so planning costs O(width + height) whatever the area.

Merging works on 4-corner polygons (boxes mapped corner by corner into a CRS, so parallelograms or
near-parallelograms, convex) with labels: exact intersection areas by Sutherland-Hodgman clipping and
the shoelace formula, vectorised over candidate pairs that a coarse grid of buckets finds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .chip_plan import ChipPlan, Window
from .errors import InvalidArgumentError, PromptOutsideRasterError

Bounds = Tuple[float, float, float, float]

DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 0.15
MIN_TILE = 64
MAX_TILE = 8192  # a tile of MAX_CHIP_PIXELS
MAX_OVERLAP = 0.9
IOU_THRESHOLD = 0.5
CONTAIN_THRESHOLD = 0.8
_BIG_BOX_CELLS = 4
#: quad pairs whose overlap is computed at once (about 10 MiB of temporaries per 10,000 pairs)
_PAIRS_PER_CHUNK = 20_000


# -- tile plans ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tile:
    """One tile: ``index`` (0-based, row-major), grid column and row, and the plan that reads it."""

    index: int
    col: int
    row: int
    plan: ChipPlan


@dataclass(frozen=True)
class TileGrid:
    """Tiles covering ``area`` (a window of the read view, full-resolution pixels).

    col_offsets, row_offsets: tile window offsets along each axis (view pixels); the tiles are their
    product, row by row. window_width, window_height: tile window size (view pixels);
    out_width, out_height: chip size (chip pixels); source_overview: the overview factor GDAL reads.
    """

    area: Window
    col_offsets: Tuple[int, ...]
    row_offsets: Tuple[int, ...]
    window_width: int
    window_height: int
    out_width: int
    out_height: int
    source_overview: int

    def __len__(self) -> int:
        return len(self.col_offsets) * len(self.row_offsets)

    def __iter__(self) -> Iterator[Tile]:
        return (self.tile(k) for k in range(len(self)))

    @property
    def shape(self) -> Tuple[int, int]:
        """(rows, columns) of tiles."""
        return len(self.row_offsets), len(self.col_offsets)

    @property
    def scale(self) -> Tuple[float, float]:
        """View pixels per chip pixel along columns and rows."""
        return self.window_width / self.out_width, self.window_height / self.out_height

    def tile(self, index: int) -> Tile:
        if not 0 <= index < len(self):
            raise IndexError(f"tile {index} of a grid of {len(self)}")
        row, col = divmod(index, len(self.col_offsets))
        window = Window(self.col_offsets[col], self.row_offsets[row], self.window_width, self.window_height)
        return Tile(index, col, row, ChipPlan(window, self.out_width, self.out_height, self.source_overview))


def scale_for_resolution(resolution: Optional[float], pixel_size: Tuple[float, float]) -> Tuple[float, float]:
    """Read scale (view pixels per chip pixel, along columns and rows) that makes chip pixels
    ``resolution`` ground units wide, never finer than the view's own pixels.

    ``pixel_size``: ground size of one view pixel along columns and rows, in the units of
    ``resolution``. None reads at full resolution, (1, 1).
    """
    if resolution is None:
        return 1.0, 1.0
    if not (math.isfinite(resolution) and resolution > 0):
        raise InvalidArgumentError(f"the resolution must be a positive number of metres, got {resolution}")
    if not all(math.isfinite(p) and p > 0 for p in pixel_size):
        raise InvalidArgumentError(f"the raster's pixel size {pixel_size} is not usable to set a resolution")
    return max(1.0, resolution / pixel_size[0]), max(1.0, resolution / pixel_size[1])


def area_window(width: int, height: int, extent: Optional[Bounds] = None) -> Window:
    """The whole view, or ``extent`` (minx, miny, maxx, maxy in view pixels) clipped to the view and
    widened to whole pixels. Raises ``PromptOutsideRasterError`` when nothing of it is on the raster."""
    if extent is None:
        return Window(0, 0, int(width), int(height))
    minx, miny, maxx, maxy = (float(v) for v in extent)
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) or not (maxx > minx and maxy > miny):
        raise InvalidArgumentError(f"the extent must have minx < maxx and miny < maxy, got {extent}")
    c0, r0 = max(0, math.floor(minx)), max(0, math.floor(miny))
    c1, r1 = min(int(width), math.ceil(maxx)), min(int(height), math.ceil(maxy))
    if c1 <= c0 or r1 <= r0 or maxx <= 0 or maxy <= 0 or minx >= width or miny >= height:
        raise PromptOutsideRasterError(f"the extent lies outside the raster (pixel bounds "
                                       f"({minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g}), "
                                       f"raster is {width}x{height} pixels)")
    return Window(c0, r0, c1 - c0, r1 - r0)


def axis_offsets(start: int, length: int, window: int, overlap: float) -> Tuple[int, ...]:
    """Window offsets along one axis covering ``[start, start + length)`` with windows of ``window``
    pixels (at most ``length``) overlapping by at least ``overlap`` of a window; the last one ends at
    the area's end. Count: 1 when ``length <= window``, else ``1 + ceil((length - window) / step)``
    with ``step = max(1, floor(window * (1 - overlap)))``."""
    if length <= window:
        return (int(start),)
    step = max(1, math.floor(window * (1.0 - overlap)))
    n = 1 + -(-(length - window) // step)
    return tuple(start + k * step for k in range(n - 1)) + (start + length - window,)


def check_tiling(tile: int, overlap: float) -> None:
    """Refuse a tile side under ``MIN_TILE`` or over ``MAX_TILE`` chip pixels or an overlap outside
    [0, ``MAX_OVERLAP``]."""
    if isinstance(tile, bool) or not isinstance(tile, int) or not MIN_TILE <= tile <= MAX_TILE:
        raise InvalidArgumentError(f"the tile size must be an integer of {MIN_TILE} to {MAX_TILE} pixels, "
                                   f"got {tile!r}")
    if not (math.isfinite(overlap) and 0.0 <= overlap <= MAX_OVERLAP):
        raise InvalidArgumentError(f"the tile overlap must be between 0 and {MAX_OVERLAP}, got {overlap}")


def plan_tiles(width: int, height: int, extent: Optional[Bounds] = None, tile: int = DEFAULT_TILE,
               overlap: float = DEFAULT_OVERLAP, scale: Tuple[float, float] = (1.0, 1.0),
               overviews: Sequence[int] = ()) -> TileGrid:
    """Tiles over a ``width`` x ``height`` view, or over ``extent`` (view pixels), read at ``scale``
    (view pixels per chip pixel, per axis, each >= 1) into ``tile`` x ``tile`` chips overlapping by
    ``overlap`` of a tile. An area smaller than one tile gives one tile of the area's size."""
    check_tiling(tile, overlap)
    sx, sy = (float(s) for s in scale)
    if not all(math.isfinite(s) and s >= 1.0 for s in (sx, sy)):
        raise InvalidArgumentError(f"the read scale must be >= 1 on both axes, got {scale}")
    area = area_window(width, height, extent)
    win_w, win_h = min(area.width, max(1, round(tile * sx))), min(area.height, max(1, round(tile * sy)))
    out_w, out_h = max(1, min(tile, round(win_w / sx))), max(1, min(tile, round(win_h / sy)))
    factor = max(win_w / out_w, win_h / out_h)
    overview = max((int(o) for o in overviews if int(o) <= factor * (1 + 1e-9)), default=1)
    return TileGrid(area, axis_offsets(area.col_off, area.width, win_w, overlap),
                    axis_offsets(area.row_off, area.height, win_h, overlap), win_w, win_h, out_w, out_h, overview)


# -- polygon geometry ---------------------------------------------------------------------------------

def polygon_areas(polygons: np.ndarray) -> np.ndarray:
    """Unsigned areas (K,) of simple polygons (K, N, 2), in squared coordinate units (shoelace)."""
    p = np.asarray(polygons, float)
    return 0.5 * np.abs(_signed_doubled_areas(p - p[:, :1]))


def _signed_doubled_areas(p: np.ndarray) -> np.ndarray:
    nxt = np.roll(p, -1, axis=1)
    return np.sum(p[..., 0] * nxt[..., 1] - nxt[..., 0] * p[..., 1], axis=1)


def intersection_areas(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Areas (K,) of the intersections of convex polygons, pair by pair: ``subject`` (K, N, 2) and
    ``clip`` (K, M, 2), vertices in either orientation, in squared coordinate units.

    Sutherland-Hodgman: the subject is clipped by each edge of ``clip`` in turn, all pairs at once, in
    fixed-size arrays of N + M vertices (the most a convex N-gon clipped by a convex M-gon can have)
    with a vertex count per pair. Coordinates are taken relative to a vertex of each clip polygon
    first, so that large map coordinates (UTM metres) keep their precision.
    """
    subject, clip = np.asarray(subject, float), np.asarray(clip, float)
    k, n, m = subject.shape[0], subject.shape[1], clip.shape[1]
    origin = clip[:, :1, :]
    clip = clip - origin
    cap = n + m
    poly = np.zeros((k, cap, 2))
    poly[:, :n] = subject - origin
    count = np.full(k, n)
    orient = np.sign(_signed_doubled_areas(clip))
    slots = np.arange(cap)[None, :]
    for e in range(m):
        a, edge = clip[:, e], clip[:, (e + 1) % m] - clip[:, e]
        # > 0 on the inner side of the edge, whatever the clip polygon's orientation
        side = orient[:, None] * (edge[:, None, 0] * (poly[..., 1] - a[:, None, 1])
                                  - edge[:, None, 1] * (poly[..., 0] - a[:, None, 0]))
        valid = slots < count[:, None]
        prev = np.where(slots == 0, count[:, None] - 1, slots - 1).clip(0, cap - 1)
        side_prev = np.take_along_axis(side, prev, axis=1)
        poly_prev = np.take_along_axis(poly, prev[..., None], axis=1)
        inside, inside_prev = side >= 0, side_prev >= 0
        crossing = (inside != inside_prev) & valid
        t = side_prev / np.where(crossing, side_prev - side, 1.0)
        cut = poly_prev + t[..., None] * (poly - poly_prev)
        keep = inside & valid
        emitted = crossing.astype(int) + keep
        start = np.cumsum(emitted, axis=1) - emitted
        out = np.zeros_like(poly)
        r, c = np.nonzero(crossing)
        pos = start[r, c]
        fits = pos < cap
        out[r[fits], pos[fits]] = cut[r[fits], c[fits]]
        r, c = np.nonzero(keep)
        pos = start[r, c] + crossing[r, c]
        fits = pos < cap
        out[r[fits], pos[fits]] = poly[r[fits], c[fits]]
        poly, count = out, np.minimum(emitted.sum(axis=1), cap)
    nxt = np.where(slots + 1 < count[:, None], slots + 1, 0)
    poly_next = np.take_along_axis(poly, nxt[..., None], axis=1)
    terms = np.where(slots < count[:, None],
                     poly[..., 0] * poly_next[..., 1] - poly_next[..., 0] * poly[..., 1], 0.0)
    area = 0.5 * np.abs(terms.sum(axis=1))
    return np.where((orient == 0) | (count < 3), 0.0, area)


def overlap_ratios(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(IoU, intersection over the smaller area), each (K,), of convex polygons ``a`` and ``b``
    (K, N, 2) pair by pair; 0 where a polygon has no area."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    inter = intersection_areas(a, b)
    area_a, area_b = polygon_areas(a), polygon_areas(b)
    union, smaller = area_a + area_b - inter, np.minimum(area_a, area_b)
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    over_smaller = np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)
    return iou, over_smaller


# -- merging ------------------------------------------------------------------------------------------

def merge_detections(quads: np.ndarray, labels: Sequence[str], priority: Optional[Sequence[float]] = None,
                     iou_threshold: float = IOU_THRESHOLD, contain_threshold: float = CONTAIN_THRESHOLD) -> np.ndarray:
    """Greedy non-maximum suppression of detections across tile borders; returns ``keep`` (N,) bool.

    quads: (N, 4, 2) convex 4-corner polygons in one CRS. labels: compared case-insensitively, with
    surrounding white space ignored; only detections of the same label merge. Two detections are
    duplicates when their IoU exceeds ``iou_threshold`` or their intersection covers more than
    ``contain_threshold`` of the smaller one (a box cut by a tile border inside the whole one). Of
    duplicates the one that comes first is kept: higher ``priority`` (a score, or minus a rank), then
    the larger area, then the earlier index.

    Exact copies are dropped first (``_exact_twins``), and overlaps are computed in chunks of
    ``_PAIRS_PER_CHUNK`` pairs, so that a repetition loop costs O(N log N) time and O(N) memory.
    """
    quads = np.asarray(quads, float).reshape(-1, 4, 2)
    n = len(quads)
    if len(labels) != n or (priority is not None and len(priority) != n):
        raise InvalidArgumentError(f"{n} quads need as many labels and priorities, got {len(labels)} labels"
                                   + ("" if priority is None else f" and {len(priority)} priorities"))
    keep = np.ones(n, bool)
    if n < 2:
        return keep
    areas = polygon_areas(quads)
    keys = (np.arange(n), -areas) if priority is None else (np.arange(n), -areas, -np.asarray(priority, float))
    order = np.lexsort(keys)
    rank = np.empty(n, int)
    rank[order] = np.arange(n)
    twin = _exact_twins(quads, labels, order)
    keep[twin >= 0] = False
    distinct = np.flatnonzero(twin < 0)
    first, second = candidate_pairs(quads[distinct], [labels[i] for i in distinct.tolist()])
    first, second = distinct[first], distinct[second]
    dup = np.zeros(len(first), bool)
    for start in range(0, len(first), _PAIRS_PER_CHUNK):  # bounded memory for the polygon clipping
        chunk = slice(start, start + _PAIRS_PER_CHUNK)
        iou, over_smaller = overlap_ratios(quads[first[chunk]], quads[second[chunk]])
        dup[chunk] = (iou > iou_threshold) | (over_smaller > contain_threshold)
    first, second = first[dup], second[dup]
    winner = np.where(rank[first] < rank[second], first, second)
    loser = first + second - winner
    beaten_by: Dict[int, List[int]] = {}
    for w, l in zip(winner.tolist(), loser.tolist()):
        beaten_by.setdefault(l, []).append(w)
    for i in order.tolist():
        rivals = beaten_by.get(i)
        if rivals is not None and any(keep[w] for w in rivals):
            keep[i] = False
    return keep


def _exact_twins(quads: np.ndarray, labels: Sequence[str], order: np.ndarray) -> np.ndarray:
    """For each of the quads (N, 4, 2), the index of an identical quad of the same label that comes
    before it in ``order``, or -1: copies (a model's repetition loop) are dropped before any pair is
    formed, in O(N log N)."""
    ids: Dict[str, int] = {}
    label_ids = np.array([ids.setdefault(str(s).strip().casefold(), len(ids)) for s in labels], float)
    rows = np.column_stack([label_ids, quads.reshape(len(quads), -1)])[order]
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    leader = order[first[inverse.ravel()]]
    twin = np.full(len(quads), -1)
    copies = leader != order
    twin[order[copies]] = leader[copies]
    return twin


def candidate_pairs(quads: np.ndarray, labels: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of same-label quads (N, 4, 2) whose bounding boxes overlap.

    Quads go into buckets of a coarse grid (cells twice the median bounding-box side) keyed by label,
    so the cost grows with the number of near neighbours, not N^2. A quad spanning more than a few
    cells is paired with all others by a vectorised bounding-box test instead.
    """
    quads = np.asarray(quads, float).reshape(-1, 4, 2)
    n = len(quads)
    lo, hi = quads.min(axis=1), quads.max(axis=1)
    ids: Dict[str, int] = {}
    label_ids = np.array([ids.setdefault(str(s).strip().casefold(), len(ids)) for s in labels], int)
    side = np.max(hi - lo, axis=1)
    cell = 2.0 * float(np.median(side))
    if not cell > 0:
        cell = max(float(np.max(hi - lo.min(axis=0))), 1e-300) / max(1.0, math.sqrt(n))
    c0 = np.floor((lo - lo.min(axis=0)) / cell).astype(np.int64)
    c1 = np.floor((hi - lo.min(axis=0)) / cell).astype(np.int64)
    big = np.max(c1 - c0, axis=1) >= _BIG_BOX_CELLS
    buckets: Dict[Tuple[int, int, int], List[int]] = {}
    first: List[int] = []
    second: List[int] = []
    for i in np.flatnonzero(~big).tolist():
        lab = int(label_ids[i])
        for cx in range(int(c0[i, 0]), int(c1[i, 0]) + 1):
            for cy in range(int(c0[i, 1]), int(c1[i, 1]) + 1):
                members = buckets.setdefault((lab, cx, cy), [])
                first += members
                second += [i] * len(members)
                members.append(i)
    pairs = [np.array(first, np.int64), np.array(second, np.int64)]
    for i in np.flatnonzero(big).tolist():
        others = np.flatnonzero(label_ids == label_ids[i])
        others = others[others != i]
        pairs[0] = np.concatenate([pairs[0], np.minimum(others, i)])
        pairs[1] = np.concatenate([pairs[1], np.maximum(others, i)])
    a, b = np.minimum(*pairs), np.maximum(*pairs)
    codes = np.unique(a * n + b)
    a, b = codes // n, codes % n
    touching = np.all(lo[a] <= hi[b], axis=1) & np.all(lo[b] <= hi[a], axis=1)
    return a[touching], b[touching]
