"""Visual prompt construction and validation."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from model_backend.core.errors import InvalidPromptError
from model_backend.core.prompts import PromptKind, VisualPrompt, renumber, ring_self_intersects


def test_box_from_any_corners_is_normalised():
    b = VisualPrompt.box(10, 20, 2, 5, index=3)
    assert b.vertices == ((2.0, 5.0), (10.0, 20.0)) and b.index == 3
    assert b.outline().tolist() == [[2, 5], [10, 5], [10, 20], [2, 20]]


@pytest.mark.parametrize("make, message", [
    (lambda: VisualPrompt.box(0, 0, 0, 5), "zero width"),
    (lambda: VisualPrompt.point(float("nan"), 1), "non-finite"),
    (lambda: VisualPrompt.polygon([(0, 0), (1, 1)]), "at least 3"),
    (lambda: VisualPrompt.polygon([(0, 0), (1, 1), (2, 2)]), "zero area"),
    (lambda: VisualPrompt.polygon([(0, 0), (2, 2), (2, 0), (0, 2)]), "crosses itself"),
    (lambda: VisualPrompt.scribble([(1, 1), (1, 1)]), "at least 2"),
    (lambda: VisualPrompt(PromptKind.POINT, ()), "empty"),
    (lambda: VisualPrompt.point(1, 1, index=0), "index"),
])
def test_bad_prompts_get_typed_errors(make, message):
    with pytest.raises(InvalidPromptError, match=message):
        make()


def test_polygon_closing_vertex_dropped_and_scribble_may_cross():
    p = VisualPrompt.polygon([(0, 0), (4, 0), (4, 4), (0, 0)])
    assert len(p.vertices) == 3
    s = VisualPrompt.scribble([(0, 0), (2, 2), (2, 0), (0, 2)])
    assert s.kind is PromptKind.SCRIBBLE


def test_ring_touching_itself_counts_as_self_intersection():
    # a vertex of one edge lies on another, non-adjacent edge
    assert ring_self_intersects(np.array([(0, 0), (4, 0), (4, 4), (2, 0), (0, 4)], float))
    assert not ring_self_intersects(np.array([(0, 0), (4, 0), (4, 4), (0, 4)], float))


@given(st.integers(3, 40), st.floats(1, 1e4))
def test_convex_polygons_are_valid(n, r):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    VisualPrompt.polygon(np.column_stack([r * np.cos(t), r * np.sin(t)]).tolist())


def test_transformed_box_becomes_box_bounding_mapped_corners():
    b = VisualPrompt.box(0, 0, 2, 1)
    rotated = b.transformed(lambda x, y: (-y, x))  # 90 degrees
    assert rotated.kind is PromptKind.BOX
    assert rotated.bounds() == (-1.0, 0.0, 0.0, 2.0)


def test_renumber():
    ps = renumber([VisualPrompt.point(0, 0, 5), VisualPrompt.box(0, 0, 1, 1, 9)])
    assert [p.index for p in ps] == [1, 2]
