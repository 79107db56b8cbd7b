"""Visual prompts: point, box and free-form (polygon or open scribble), indexed and validated.

numpy and standard library only (the QGIS process imports this module). A prompt holds vertices in
whatever 2-D space its owner states (a CRS, raster pixel space or chip pixel space); ``transformed``
carries it to another space through a vectorised coordinate function.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, Tuple

import numpy as np

from .errors import InvalidPromptError

Vertex = Tuple[float, float]
CoordFunction = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


class PromptKind(str, enum.Enum):
    """The three kinds of visual prompt of EarthGPT-X; free-form is a polygon or a scribble."""

    POINT = "point"
    BOX = "box"
    POLYGON = "polygon"
    SCRIBBLE = "scribble"


@dataclass(frozen=True)
class VisualPrompt:
    """One visual prompt.

    ``vertices``: point, one vertex; box, two vertices ``(minx, miny), (maxx, maxy)``; polygon, an
    open ring of at least three vertices (the closing vertex is not repeated); scribble, an open
    polyline of at least two vertices. ``index`` (1, 2, ...) names the prompt in the question.
    """

    kind: PromptKind
    vertices: Tuple[Vertex, ...]
    index: int = 1

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def point(cls, x: float, y: float, index: int = 1) -> "VisualPrompt":
        return cls(PromptKind.POINT, ((float(x), float(y)),), index)

    @classmethod
    def box(cls, x1: float, y1: float, x2: float, y2: float, index: int = 1) -> "VisualPrompt":
        """A box from any two opposite corners."""
        return cls(PromptKind.BOX, ((min(x1, x2), min(y1, y2)), (max(x1, x2), max(y1, y2))), index)

    @classmethod
    def polygon(cls, vertices: Iterable[Sequence[float]], index: int = 1) -> "VisualPrompt":
        """A closed free-form region; a repeated closing vertex is dropped."""
        verts = _as_vertices(vertices)
        if len(verts) > 1 and verts[0] == verts[-1]:
            verts = verts[:-1]
        return cls(PromptKind.POLYGON, verts, index)

    @classmethod
    def scribble(cls, vertices: Iterable[Sequence[float]], index: int = 1) -> "VisualPrompt":
        """An open free-form stroke."""
        return cls(PromptKind.SCRIBBLE, _as_vertices(vertices), index)

    @property
    def is_region(self) -> bool:
        """True for kinds that enclose an area (box, polygon)."""
        return self.kind in (PromptKind.BOX, PromptKind.POLYGON)

    def outline(self) -> np.ndarray:
        """Vertices as an (N, 2) array; a box gives its 4 corners clockwise from top-left in
        a y-down space (minx,miny), (maxx,miny), (maxx,maxy), (minx,maxy)."""
        if self.kind is PromptKind.BOX:
            (x1, y1), (x2, y2) = self.vertices
            return np.array([(x1, y1), (x2, y1), (x2, y2), (x1, y2)], dtype=float)
        return np.array(self.vertices, dtype=float)

    def bounds(self) -> Tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the vertices."""
        v = np.array(self.vertices, dtype=float)
        return (float(v[:, 0].min()), float(v[:, 1].min()), float(v[:, 0].max()), float(v[:, 1].max()))

    def transformed(self, fn: CoordFunction) -> "VisualPrompt":
        """This prompt carried through ``fn(xs, ys) -> (xs, ys)``.

        A box maps all four corners and becomes the axis-aligned box that bounds them in the
        target space (exact when the map has no rotation; the enclosing box otherwise).
        """
        pts = self.outline()
        xs, ys = fn(pts[:, 0].copy(), pts[:, 1].copy())
        xs = np.asarray(xs, dtype=float).reshape(-1)
        ys = np.asarray(ys, dtype=float).reshape(-1)
        if self.kind is PromptKind.BOX:
            return VisualPrompt.box(xs.min(), ys.min(), xs.max(), ys.max(), self.index)
        return VisualPrompt(self.kind, tuple(zip(xs.tolist(), ys.tolist())), self.index)

    def with_index(self, index: int) -> "VisualPrompt":
        return VisualPrompt(self.kind, self.vertices, index)


def _as_vertices(vertices: Iterable[Sequence[float]]) -> Tuple[Vertex, ...]:
    out = []
    for v in vertices:
        if len(v) < 2:
            raise InvalidPromptError(f"a vertex needs x and y, got {tuple(v)!r}")
        out.append((float(v[0]), float(v[1])))
    return tuple(out)


def _validate(p: VisualPrompt) -> None:
    if not isinstance(p.kind, PromptKind):
        raise InvalidPromptError(f"unknown prompt kind {p.kind!r}")
    if not isinstance(p.index, int) or isinstance(p.index, bool) or p.index < 1:
        raise InvalidPromptError(f"prompt index must be an integer >= 1, got {p.index!r}")
    v = np.array(p.vertices, dtype=float).reshape(-1, 2) if p.vertices else np.zeros((0, 2))
    name = f"{p.kind.value} prompt {p.index}"
    if len(v) == 0:
        raise InvalidPromptError(f"{name} is empty")
    if not np.all(np.isfinite(v)):
        raise InvalidPromptError(f"{name} has a non-finite coordinate")
    if p.kind is PromptKind.POINT:
        if len(v) != 1:
            raise InvalidPromptError(f"{name} must have exactly one vertex, got {len(v)}")
    elif p.kind is PromptKind.BOX:
        if len(v) != 2:
            raise InvalidPromptError(f"{name} must have two corners, got {len(v)}")
        if not (v[1, 0] > v[0, 0] and v[1, 1] > v[0, 1]):
            raise InvalidPromptError(f"{name} has zero width or height")
    elif p.kind is PromptKind.POLYGON:
        distinct = _dedupe_consecutive(v, closed=True)
        if len(distinct) < 3:
            raise InvalidPromptError(f"{name} needs at least 3 distinct vertices, got {len(distinct)}")
        if ring_self_intersects(distinct):
            raise InvalidPromptError(f"{name} crosses itself; draw a simple outline")
        if abs(polygon_area(distinct)) == 0.0:
            raise InvalidPromptError(f"{name} has zero area")
    elif p.kind is PromptKind.SCRIBBLE:
        distinct = _dedupe_consecutive(v, closed=False)
        if len(distinct) < 2:
            raise InvalidPromptError(f"{name} needs at least 2 distinct vertices")


def _dedupe_consecutive(v: np.ndarray, closed: bool) -> np.ndarray:
    keep = np.ones(len(v), dtype=bool)
    keep[1:] = np.any(v[1:] != v[:-1], axis=1)
    out = v[keep]
    if closed and len(out) > 1 and np.all(out[0] == out[-1]):
        out = out[:-1]
    return out


def polygon_area(ring: np.ndarray) -> float:
    """Signed shoelace area of an open ring (N, 2); positive when counter-clockwise in a y-up space."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def ring_self_intersects(ring: np.ndarray) -> bool:
    """True when two non-adjacent edges of the open ring (N, 2) touch or cross.

    Vectorised over all edge pairs: O(N^2) memory, fine for hand-drawn outlines (N of a few thousand).
    """
    n = len(ring)
    if n < 4:
        return False
    p = ring
    q = np.roll(ring, -1, axis=0)
    i, j = np.triu_indices(n, k=2)
    # the first and last edges share vertex 0: adjacent, not a crossing
    keep = ~((i == 0) & (j == n - 1))
    i, j = i[keep], j[keep]
    a, b, c, d = p[i], q[i], p[j], q[j]

    def orient(u, v, w):
        return np.sign((v[:, 0] - u[:, 0]) * (w[:, 1] - u[:, 1]) - (v[:, 1] - u[:, 1]) * (w[:, 0] - u[:, 0]))

    def on_segment(u, v, w):
        return (np.minimum(u[:, 0], v[:, 0]) <= w[:, 0]) & (w[:, 0] <= np.maximum(u[:, 0], v[:, 0])) & \
               (np.minimum(u[:, 1], v[:, 1]) <= w[:, 1]) & (w[:, 1] <= np.maximum(u[:, 1], v[:, 1]))

    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    proper = (o1 * o2 < 0) & (o3 * o4 < 0)
    touch = ((o1 == 0) & on_segment(a, b, c)) | ((o2 == 0) & on_segment(a, b, d)) | \
            ((o3 == 0) & on_segment(c, d, a)) | ((o4 == 0) & on_segment(c, d, b))
    return bool(np.any(proper | touch))


def renumber(prompts: Sequence[VisualPrompt]) -> Tuple[VisualPrompt, ...]:
    """Prompts re-indexed 1..N in their order."""
    return tuple(p.with_index(k + 1) for k, p in enumerate(prompts))
