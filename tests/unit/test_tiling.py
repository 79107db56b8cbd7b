"""Tile plans (exact cover, stated overlap, edge tiles inside, count formula, laziness) and geo NMS
(exact convex intersections against shapely, merging across tile borders, bucketing against brute
force)."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from shapely.geometry import Polygon

from model_backend.core.errors import InvalidArgumentError, PromptOutsideRasterError
from model_backend.core.tiling import (area_window, axis_offsets, candidate_pairs, intersection_areas, merge_detections,
                                  overlap_ratios, plan_tiles, polygon_areas, scale_for_resolution)

SQUARE = np.array([(0, 0), (1, 0), (1, 1), (0, 1)], float)


def box(x0, y0, x1, y1):
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], float)


def expected_count(length, window, overlap):
    if length <= window:
        return 1
    step = max(1, math.floor(window * (1 - overlap)))
    return 1 + math.ceil((length - window) / step)


# -- tile plans ---------------------------------------------------------------------------------------

@given(start=st.integers(0, 1000), length=st.integers(1, 100_000), window=st.integers(1, 5000),
       overlap=st.floats(0, 0.9))
def test_axis_offsets_cover_exactly_with_the_stated_overlap(start, length, window, overlap):
    offsets = axis_offsets(start, length, window, overlap)
    w = min(window, length)
    assert len(offsets) == expected_count(length, window, overlap)
    assert offsets[0] == start and offsets[-1] + w == start + length       # first and last touch the ends
    assert all(start <= o and o + w <= start + length for o in offsets)    # edge tiles shifted inward
    gaps = np.diff(offsets)
    assert np.all(gaps > 0)
    assert np.all(w - gaps >= min(window * overlap, window - 1) - 1e-9)    # neighbours share >= overlap


@given(width=st.integers(1, 3000), height=st.integers(1, 3000), tile=st.integers(64, 700),
       overlap=st.floats(0, 0.9), sx=st.floats(1, 6), sy=st.floats(1, 6), data=st.data())
def test_plan_tiles_covers_the_area_exactly(width, height, tile, overlap, sx, sy, data):
    extent = None
    if data.draw(st.booleans()):
        x0, y0 = data.draw(st.floats(-50, width - 1)), data.draw(st.floats(-50, height - 1))
        extent = (x0, y0, data.draw(st.floats(max(x0 + 1, 0.5), width + 50)),
                  data.draw(st.floats(max(y0 + 1, 0.5), height + 50)))
    grid = plan_tiles(width, height, extent, tile, overlap, (sx, sy))
    area = grid.area
    assert 0 <= area.col_off and area.col_off + area.width <= width
    assert 0 <= area.row_off and area.row_off + area.height <= height
    if extent is not None:
        assert area.col_off == max(0, math.floor(extent[0])) and area.row_off == max(0, math.floor(extent[1]))
    assert len(grid) == expected_count(area.width, round(tile * sx), overlap) * \
        expected_count(area.height, round(tile * sy), overlap)
    assert grid.out_width <= tile and grid.out_height <= tile
    covered = np.zeros((height, width), np.int32)
    for t in grid:
        w = t.plan.window
        assert area.col_off <= w.col_off and w.col_off + w.width <= area.col_off + area.width
        assert area.row_off <= w.row_off and w.row_off + w.height <= area.row_off + area.height
        covered[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] += 1
    inside = np.zeros_like(covered, bool)
    inside[area.row_off:area.row_off + area.height, area.col_off:area.col_off + area.width] = True
    assert np.all(covered[inside] >= 1) and np.all(covered[~inside] == 0)


def test_tiles_of_the_default_grid():
    grid = plan_tiles(2048, 2048, tile=512)
    assert grid.col_offsets == grid.row_offsets == (0, 435, 870, 1305, 1536)
    assert len(grid) == 25 and grid.shape == (5, 5)
    t = grid.tile(7)
    assert (t.row, t.col) == (1, 2) and t.plan.window.as_dict() == {"col_off": 870, "row_off": 435,
                                                                    "width": 512, "height": 512}
    assert (t.plan.out_width, t.plan.out_height) == (512, 512) and t.plan.scale == (1.0, 1.0)
    assert [t.index for t in grid] == list(range(25))
    with pytest.raises(IndexError):
        grid.tile(25)


def test_coarser_resolution_reads_larger_windows_through_overviews():
    grid = plan_tiles(30000, 20000, tile=1024, overlap=0.15, scale=(4.0, 2.5), overviews=(2, 4, 8, 16))
    assert (grid.window_width, grid.window_height) == (4096, 2560)
    assert (grid.out_width, grid.out_height) == (1024, 1024) and grid.scale == (4.0, 2.5)
    assert grid.source_overview == 4
    small = plan_tiles(300, 200, tile=1024, scale=(2.0, 2.0))       # an area smaller than one tile
    assert len(small) == 1 and (small.window_width, small.window_height) == (300, 200)
    assert (small.out_width, small.out_height) == (150, 100)


def test_a_huge_raster_is_planned_lazily():
    grid = plan_tiles(10_000_000, 8_000_000, tile=1024, overlap=0.15)
    assert len(grid) == expected_count(10_000_000, 1024, 0.15) * expected_count(8_000_000, 1024, 0.15)
    assert len(grid.col_offsets) < 20_000                         # offsets per axis, not per tile
    first = list(itertools.islice(iter(grid), 3))
    assert [t.plan.window.col_off for t in first] == [0, 870, 1740]
    last = grid.tile(len(grid) - 1).plan.window
    assert (last.col_off + last.width, last.row_off + last.height) == (10_000_000, 8_000_000)


def test_scale_for_resolution():
    assert scale_for_resolution(None, (0.5, 0.5)) == (1.0, 1.0)
    assert scale_for_resolution(2.0, (0.5, 0.25)) == (4.0, 8.0)
    assert scale_for_resolution(0.1, (0.5, 0.5)) == (1.0, 1.0)          # never finer than the raster
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidArgumentError, match="resolution"):
            scale_for_resolution(bad, (1.0, 1.0))


def test_bad_areas_and_tiling_options():
    with pytest.raises(PromptOutsideRasterError, match="extent lies outside"):
        area_window(100, 100, (200, 0, 300, 50))
    with pytest.raises(PromptOutsideRasterError):
        area_window(100, 100, (-20, -20, 0, 0))                 # touches a corner only
    with pytest.raises(InvalidArgumentError, match="minx < maxx"):
        area_window(100, 100, (50, 0, 10, 50))
    assert area_window(100, 100, (10.5, -5, 20.2, 30)).as_dict() == {"col_off": 10, "row_off": 0,
                                                                   "width": 11, "height": 30}
    for tile, overlap in ((32, 0.1), (512.0, 0.1), (512, -0.1), (512, 0.95), (512, float("nan"))):
        with pytest.raises(InvalidArgumentError):
            plan_tiles(1000, 1000, tile=tile, overlap=overlap)
    with pytest.raises(InvalidArgumentError, match="scale"):
        plan_tiles(1000, 1000, scale=(0.5, 1.0))


# -- polygon intersections ------------------------------------------------------------------------------

def test_iou_of_known_quads_is_exact():
    a, b = box(0, 0, 2, 2), box(1, 0, 3, 2)
    iou, over = overlap_ratios(a[None], b[None])
    assert iou[0] == 2 / 6 and over[0] == 0.5
    assert intersection_areas(a[None], a[None])[0] == 4.0
    assert overlap_ratios(a[None], box(5, 5, 6, 6)[None])[0][0] == 0.0
    assert overlap_ratios(a[None], box(0.5, 0.5, 1.5, 1.5)[None])[1][0] == 1.0     # contained
    assert overlap_ratios(a[None], box(2, 0, 3, 2)[None])[0][0] == 0.0             # sharing an edge


def test_iou_of_rotated_quads():
    diamond = np.array([(1, 0), (2, 1), (1, 2), (0, 1)], float)          # inscribed in box(0, 0, 2, 2)
    iou, over = overlap_ratios(box(0, 0, 2, 2)[None], diamond[None])
    assert iou[0] == pytest.approx(0.5, abs=1e-15) and over[0] == pytest.approx(1.0, abs=1e-15)
    r = math.sqrt(2)                                                     # the same square turned 45 degrees
    turned = np.array([(0, -r), (r, 0), (0, r), (-r, 0)])
    octagon = 8 * (math.sqrt(2) - 1)                                     # regular octagon of inradius 1
    got = intersection_areas(box(-1, -1, 1, 1)[None], turned[None])[0]
    assert got == pytest.approx(octagon, rel=1e-14)
    iou = overlap_ratios(box(-1, -1, 1, 1)[None], turned[None])[0][0]
    assert iou == pytest.approx(octagon / (8 - octagon), rel=1e-14)


def parallelograms(rng, k, centre_range, size, origin=(0.0, 0.0)):
    centres = rng.uniform(-centre_range, centre_range, (k, 1, 2)) + origin
    linear = rng.normal(size=(k, 2, 2)) * size
    return centres + np.einsum("kij,nj->kni", linear, SQUARE - 0.5)


@pytest.mark.parametrize("origin", [(0.0, 0.0), (500_000.0, 4_000_000.0)])
def test_intersection_areas_match_shapely_in_both_orientations(origin):
    rng = np.random.default_rng(1)
    a, b = parallelograms(rng, 3000, 1.0, 1.0, origin), parallelograms(rng, 3000, 1.0, 1.0, origin)
    b[::2] = b[::2, ::-1]                                                  # half of them clockwise
    reference = np.array([Polygon(p).intersection(Polygon(q)).area for p, q in zip(a, b)])
    assert np.count_nonzero(reference) > 1500
    got = intersection_areas(a, b)
    assert np.allclose(got, reference, rtol=1e-9, atol=1e-9)
    assert np.allclose(intersection_areas(b, a), reference, rtol=1e-9, atol=1e-9)
    assert np.allclose(polygon_areas(a), [Polygon(p).area for p in a], rtol=1e-12)


@given(st.lists(st.floats(-100, 100), min_size=8, max_size=8), st.lists(st.floats(-100, 100), min_size=8, max_size=8))
def test_intersection_area_property(pa, pb):
    """Any two convex quads (the convex hull of 4 random points when it is a quad) against shapely."""
    quads = []
    for coords in (pa, pb):
        hull = Polygon(np.reshape(coords, (4, 2))).convex_hull
        if hull.geom_type != "Polygon" or len(hull.exterior.coords) != 5 or hull.area < 1e-6:
            return
        quads.append(np.array(hull.exterior.coords[:4]))
    reference = Polygon(quads[0]).intersection(Polygon(quads[1])).area
    assert intersection_areas(quads[0][None], quads[1][None])[0] == pytest.approx(reference, rel=1e-9, abs=1e-6)


# -- merging ----------------------------------------------------------------------------------------------

def test_a_box_cut_by_a_tile_border_merges_with_the_whole_one():
    whole = box(400, 100, 480, 160)            # seen whole by the left tile
    cut = box(435, 100, 480, 160)              # the right tile starts at x = 435
    keep = merge_detections(np.stack([cut, whole]), ["ship", "ship"])
    assert keep.tolist() == [False, True]      # the larger is kept
    iou, _ = overlap_ratios(cut[None], whole[None])
    assert iou[0] < 0.6                        # merged for containment, not only IoU


def test_duplicates_merge_and_different_labels_do_not():
    a, b = box(0, 0, 10, 10), box(0.5, 0.2, 10.4, 10.1)
    assert merge_detections(np.stack([a, b]), ["ship", " Ship "]).sum() == 1
    assert merge_detections(np.stack([a, b]), ["ship", "boat"]).tolist() == [True, True]
    assert merge_detections(np.stack([a, box(6, 0, 16, 10)]), ["ship", "ship"]).tolist() == [True, True]  # IoU 0.25


def test_priority_then_area_then_order_decide_who_stays():
    a, b = box(0, 0, 10, 10), box(0, 0, 10, 9)
    assert merge_detections(np.stack([b, a]), ["x", "x"]).tolist() == [False, True]
    assert merge_detections(np.stack([b, a]), ["x", "x"], priority=[1.0, 0.0]).tolist() == [True, False]
    assert merge_detections(np.stack([a, a]), ["x", "x"]).tolist() == [True, False]


def test_greedy_suppression_only_by_kept_boxes():
    a, b, c = box(0, 0, 10, 10), box(3, 0, 13, 10), box(6, 0, 16, 10)   # IoU(a,b)=IoU(b,c)=0.54, IoU(a,c)=0.25
    assert merge_detections(np.stack([a, b, c]), ["x"] * 3, priority=[3, 2, 1]).tolist() == [True, False, True]


def test_empty_and_single_inputs_and_mismatched_lengths():
    assert merge_detections(np.zeros((0, 4, 2)), []).tolist() == []
    assert merge_detections(box(0, 0, 1, 1)[None], ["x"]).tolist() == [True]
    with pytest.raises(InvalidArgumentError):
        merge_detections(np.stack([SQUARE, SQUARE]), ["x"])


def brute_force_keep(quads, labels, iou_threshold=0.5, contain_threshold=0.8):
    """Greedy NMS over all pairs, without buckets."""
    n = len(quads)
    lo, hi = quads.min(axis=1), quads.max(axis=1)
    touching = np.all(lo[:, None] <= hi[None], axis=2) & np.all(lo[None] <= hi[:, None], axis=2)
    i, j = np.nonzero(np.triu(touching, 1) & (np.array(labels)[:, None] == np.array(labels)[None]))
    iou, over = overlap_ratios(quads[i], quads[j])
    dup = (iou > iou_threshold) | (over > contain_threshold)
    areas = polygon_areas(quads)
    order = np.lexsort((np.arange(n), -areas))
    conflicts = {}
    for a, b in zip(i[dup], j[dup]):
        conflicts.setdefault(a, set()).add(b)
        conflicts.setdefault(b, set()).add(a)
    keep = np.zeros(n, bool)
    for k in order:
        keep[k] = not any(keep[m] for m in conflicts.get(k, ()))
    return keep


def test_five_thousand_boxes_match_brute_force():
    """Bucketed pairs give exactly the brute-force result, with some huge boxes among small ones
    (the time it takes is printed by bench/tiled_grounding.py, not asserted here, DESIGN §8)."""
    rng = np.random.default_rng(7)
    n = 5000
    corner = rng.uniform(0, 3000, (n, 1, 2))
    size = rng.uniform(10, 60, (n, 1, 2))
    size[:10] *= 40                                                     # a few huge boxes
    quads = corner + SQUARE[None] * size
    turn = rng.uniform(-0.2, 0.2, n)                                    # slightly rotated (a reprojection)
    rot = np.stack([np.cos(turn), -np.sin(turn), np.sin(turn), np.cos(turn)], axis=1).reshape(n, 2, 2)
    quads = corner + np.einsum("kij,knj->kni", rot, quads - corner)
    labels = rng.choice(["car", "ship", "plane"], n).tolist()
    keep = merge_detections(quads, labels)
    assert 0 < keep.sum() < n
    assert keep.tolist() == brute_force_keep(quads, labels).tolist()


def test_a_repetition_loop_of_one_box_merges_to_one_in_linear_memory():
    """2,000 copies of one box (a small model's repetition loop): one kept, the best-placed copy, in
    memory far below the N^2 pairs (2 million) the merge formed before copies were dropped first."""
    import tracemalloc
    quads = np.concatenate([np.repeat(box(0, 0, 10, 10)[None], 2000, axis=0), box(0, 0, 10, 9.5)[None]])
    tracemalloc.start()
    keep = merge_detections(quads, ["ship"] * 2001, priority=[0.0] * 1999 + [1.0, 0.5])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.flatnonzero(keep).tolist() == [1999]  # the copy of highest priority; the near one merged
    assert peak < 20 * 2 ** 20  # bytes; a (2M, 8, 2) float array alone would be 256 MiB


def test_candidate_pairs_are_the_touching_same_label_pairs():
    rng = np.random.default_rng(3)
    quads = parallelograms(rng, 400, 50.0, 3.0)
    labels = rng.choice(["a", "b"], 400).tolist()
    i, j = candidate_pairs(quads, labels)
    lo, hi = quads.min(axis=1), quads.max(axis=1)
    same = np.array(labels)[:, None] == np.array(labels)[None]
    touching = np.all(lo[:, None] <= hi[None], axis=2) & np.all(lo[None] <= hi[:, None], axis=2)
    ei, ej = np.nonzero(np.triu(touching & same, 1))
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(ei.tolist(), ej.tolist()))
