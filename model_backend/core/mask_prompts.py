"""What a segmenter (SAM, SAM 2.1, SAM 3) is asked for one outline, from a visual prompt or a grounded
detection, in chip pixels (numpy only: both processes may use it).

A point is one foreground point; a box is a box; a free-form polygon is its bounding box, up to three
points well inside it and, where part of the box lies clearly outside the polygon (an L-shaped field),
one background point there; an open scribble is points along it; a detection is its box (a point
detection its point).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .prompts import PromptKind, VisualPrompt

Point = Tuple[float, float]
#: grid cells per side over a polygon's bounding box when looking for points inside and outside it
_GRID = 32


@dataclass(frozen=True)
class MaskPrompt:
    """One outline to ask for, in chip pixels. points: (x, y) with labels (1 inside the object, 0
    outside); box: (x0, y0, x1, y1) or None. kind: ``point``, ``box``, ``polygon``, ``scribble``,
    ``detection`` or ``phrase``; index: the prompt's index or the detection's rank; label: what it is."""

    kind: str
    index: int
    points: Tuple[Point, ...] = ()
    labels: Tuple[int, ...] = ()
    box: Optional[Tuple[float, float, float, float]] = None
    label: str = ""


def from_prompt(prompt: VisualPrompt, label: str = "") -> MaskPrompt:
    """The segmenter's prompt for a drawn visual prompt (chip pixels)."""
    v = np.asarray(prompt.vertices, dtype=float)
    if prompt.kind is PromptKind.POINT:
        return MaskPrompt("point", prompt.index, ((float(v[0, 0]), float(v[0, 1])),), (1,), label=label)
    if prompt.kind is PromptKind.BOX:
        return MaskPrompt("box", prompt.index, box=prompt.bounds(), label=label)
    if prompt.kind is PromptKind.SCRIBBLE:
        picks = np.unique(np.linspace(0, len(v) - 1, min(len(v), 5)).round().astype(int))
        points = tuple((float(v[k, 0]), float(v[k, 1])) for k in picks)
        return MaskPrompt("scribble", prompt.index, points, (1,) * len(points), label=label)
    inside, outside = inside_and_outside_points(prompt.outline())
    points = tuple(map(tuple, inside)) + tuple(map(tuple, outside))
    return MaskPrompt("polygon", prompt.index, points, (1,) * len(inside) + (0,) * len(outside),
                      box=prompt.bounds(), label=label)


def from_detection(shape: VisualPrompt, rank: int, label: str) -> MaskPrompt:
    """The segmenter's prompt for a grounded region (chip pixels): its box, or its point."""
    if shape.kind is PromptKind.POINT:
        x, y = shape.vertices[0]
        return MaskPrompt("detection", rank, ((float(x), float(y)),), (1,), label=label)
    return MaskPrompt("detection", rank, box=shape.bounds(), label=label)


def inside_and_outside_points(ring: np.ndarray, count: int = 3) -> Tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` points (k, 2) deepest inside the polygon ``ring`` (x, y; chip pixels), spread at
    least a third of the deepest depth apart, and at most one point of its bounding box outside it,
    deeper outside than a tenth of the box's short side (none when the box is mostly the polygon)."""
    ring = np.asarray(ring, dtype=float)
    x0, y0 = ring.min(axis=0)
    x1, y1 = ring.max(axis=0)
    xs = x0 + (np.arange(_GRID) + 0.5) * (x1 - x0) / _GRID
    ys = y0 + (np.arange(_GRID) + 0.5) * (y1 - y0) / _GRID
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    inside = _contains(ring, grid)
    depth = _distance_to_edges(ring, grid)
    chosen = []
    order = np.argsort(-np.where(inside, depth, -1.0), kind="stable")
    deepest = depth[order[0]] if inside.any() else 0.0
    for k in order:
        if not inside[k] or len(chosen) == count:
            break
        if all(np.hypot(*(grid[k] - grid[c])) >= deepest / 3 for c in chosen):
            chosen.append(k)
    if not chosen:   # a sliver thinner than the grid: its first vertex's neighbourhood
        chosen_points = ring[:1]
    else:
        chosen_points = grid[chosen]
    outside = np.where(~inside, depth, -1.0)
    k = int(np.argmax(outside))
    far = outside[k] > 0.1 * min(x1 - x0, y1 - y0)
    return chosen_points, (grid[k:k + 1] if far else np.empty((0, 2)))


def _contains(ring: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Even-odd test of ``pts`` (n, 2) against the closed ``ring`` (m, 2)."""
    a, b = ring, np.roll(ring, -1, axis=0)
    px, py = pts[:, 0:1], pts[:, 1:2]
    crosses = (a[:, 1] > py) != (b[:, 1] > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (np.count_nonzero(crosses & (px < x_at), axis=1) % 2) == 1


def _distance_to_edges(ring: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance of each of ``pts`` (n, 2) to the nearest edge of the closed ``ring``."""
    a, b = ring, np.roll(ring, -1, axis=0)
    d = b - a
    length2 = np.maximum((d ** 2).sum(axis=1), 1e-12)
    t = np.clip(((pts[:, None, :] - a) * d).sum(axis=2) / length2, 0.0, 1.0)
    nearest = a + t[..., None] * d
    return np.sqrt(((pts[:, None, :] - nearest) ** 2).sum(axis=2)).min(axis=1)
