"""What a segmenter is asked for each kind of prompt (core.mask_prompts), in chip pixels."""

import numpy as np

from model_backend.core.mask_prompts import from_detection, from_prompt, inside_and_outside_points
from model_backend.core.prompts import VisualPrompt

L_SHAPE = [(0, 0), (100, 0), (100, 20), (20, 20), (20, 100), (0, 100)]   # an L: its box is mostly outside


def _inside_l(x, y):
    return (0 <= x <= 100 and 0 <= y <= 20) or (0 <= x <= 20 and 0 <= y <= 100)


def test_points_boxes_and_detections():
    p = from_prompt(VisualPrompt.point(12.5, 7.25, index=3), "ship")
    assert (p.kind, p.index, p.points, p.labels, p.box, p.label) == ("point", 3, ((12.5, 7.25),), (1,), None, "ship")
    b = from_prompt(VisualPrompt.box(30, 40, 10, 20, index=2))
    assert (b.kind, b.box, b.points) == ("box", (10.0, 20.0, 30.0, 40.0), ())
    d = from_detection(VisualPrompt.box(1, 2, 3, 4), rank=5, label="car")
    assert (d.kind, d.index, d.box, d.label) == ("detection", 5, (1.0, 2.0, 3.0, 4.0), "car")
    assert from_detection(VisualPrompt.point(9, 8), 1, "x").points == ((9.0, 8.0),)


def test_a_concave_polygon_gets_points_inside_it_and_one_outside():
    p = from_prompt(VisualPrompt.polygon(L_SHAPE, index=4))
    assert p.kind == "polygon" and p.box == (0.0, 0.0, 100.0, 100.0)
    fg = [pt for pt, lab in zip(p.points, p.labels) if lab == 1]
    bg = [pt for pt, lab in zip(p.points, p.labels) if lab == 0]
    assert 1 <= len(fg) <= 3 and all(_inside_l(*pt) for pt in fg)
    assert len(bg) == 1 and not _inside_l(*bg[0]) and bg[0][0] > 40 and bg[0][1] > 40   # deep in the empty corner
    assert len({pt for pt in fg}) == len(fg)


def test_a_convex_polygon_gets_no_background_point_and_a_thin_one_a_point_on_it():
    square = VisualPrompt.polygon([(10, 10), (50, 10), (50, 50), (10, 50)])
    p = from_prompt(square)
    assert p.labels and set(p.labels) == {1} and all(10 < x < 50 and 10 < y < 50 for x, y in p.points)
    inside, outside = inside_and_outside_points(np.array([(0, 0), (100, 0), (100, 0.01)]))
    assert len(inside) >= 1 and len(outside) <= 1


def test_a_scribble_is_points_along_it():
    s = from_prompt(VisualPrompt.scribble([(0, 0), (10, 0), (20, 5), (30, 5), (40, 0), (50, 0), (60, 3)]))
    assert s.kind == "scribble" and len(s.points) == 5 and set(s.labels) == {1}
    assert s.points[0] == (0.0, 0.0) and s.points[-1] == (60.0, 3.0)
