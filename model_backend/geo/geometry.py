"""Shapely geometries <-> visual prompts, and clipping to a raster (headless side only)."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import shapely
from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from ..core.errors import InvalidPromptError, PromptOutsideRasterError
from ..core.prompts import CoordFunction, PromptKind, VisualPrompt

PROMPT_KINDS = ("auto", "point", "box", "polygon", "scribble")


def parse_wkt(text: str) -> BaseGeometry:
    """A geometry from WKT; ``InvalidPromptError`` when unparsable or empty."""
    if not text or not text.strip():
        raise InvalidPromptError("the geometry is empty; pass WKT such as 'POINT (x y)'")
    try:
        geom = shapely_wkt.loads(text)
    except (ShapelyError, ValueError) as exc:
        raise InvalidPromptError(f"cannot parse the geometry as WKT: {str(exc).splitlines()[0]}") from None
    if geom.is_empty:
        raise InvalidPromptError("the geometry is empty")
    return geom


def prompt_from_geometry(geom: BaseGeometry, kind: str = "auto", index: int = 1) -> VisualPrompt:
    """A prompt from a single geometry: POINT -> point, LINESTRING -> scribble, POLYGON -> polygon;
    ``kind='box'`` takes the geometry's bounds. Multi-part geometries and holes are refused."""
    if kind not in PROMPT_KINDS:
        raise InvalidPromptError(f"unknown prompt kind {kind!r}; choose one of {', '.join(PROMPT_KINDS)}")
    if geom.is_empty:
        raise InvalidPromptError("the geometry is empty")
    if geom.geom_type.startswith("Multi") or geom.geom_type == "GeometryCollection":
        raise InvalidPromptError(f"one geometry per prompt, got a {geom.geom_type}")
    if kind == "box":
        return VisualPrompt.box(*geom.bounds, index=index)
    if isinstance(geom, Point):
        if kind not in ("auto", "point"):
            raise InvalidPromptError(f"a point cannot be a {kind} prompt")
        return VisualPrompt.point(geom.x, geom.y, index)
    if isinstance(geom, LineString):
        if kind not in ("auto", "scribble"):
            raise InvalidPromptError(f"a line string cannot be a {kind} prompt")
        return VisualPrompt.scribble(geom.coords, index)
    if isinstance(geom, Polygon):
        if kind not in ("auto", "polygon"):
            raise InvalidPromptError(f"a polygon cannot be a {kind} prompt")
        if geom.interiors:
            raise InvalidPromptError("a polygon prompt cannot have holes")
        if not geom.is_valid:
            raise InvalidPromptError(f"the polygon is not valid: {explain_validity(geom)}")
        return VisualPrompt.polygon(geom.exterior.coords, index)
    raise InvalidPromptError(f"unsupported geometry type {geom.geom_type}")


def prompt_geometry(prompt: VisualPrompt, fn: CoordFunction = None) -> BaseGeometry:
    """The prompt as a shapely geometry, its vertices optionally mapped through ``fn`` first.

    A box becomes a 4-corner polygon (all four corners transformed, DESIGN §4).
    """
    pts = prompt.outline()
    if fn is not None:
        xs, ys = fn(pts[:, 0], pts[:, 1])
        pts = np.column_stack([np.asarray(xs, float).ravel(), np.asarray(ys, float).ravel()])
    if prompt.kind is PromptKind.POINT:
        return Point(pts[0])
    if prompt.kind is PromptKind.SCRIBBLE:
        return LineString(pts)
    return Polygon(pts)


def clip_to_extent(geom: BaseGeometry, width: float, height: float) -> Tuple[BaseGeometry, bool]:
    """Clip a pixel-space geometry to ``[0, width] x [0, height]``.

    Returns the clipped geometry (the largest part when clipping splits it) and whether anything
    was cut; ``PromptOutsideRasterError`` when nothing is left.
    """
    frame = box(0.0, 0.0, float(width), float(height))
    if geom.geom_type == "Point":
        if frame.covers(geom):
            return geom, False
        raise PromptOutsideRasterError(f"the point lies outside the raster ({width:g}x{height:g} pixels)")
    if frame.covers(geom):
        return geom, False
    cut = geom.intersection(frame)
    parts = [g for g in getattr(cut, "geoms", [cut]) if not g.is_empty and g.geom_type == geom.geom_type]
    if not parts:
        raise PromptOutsideRasterError(f"the prompt lies outside the raster ({width:g}x{height:g} pixels)")
    size = (lambda g: g.area) if geom.geom_type == "Polygon" else (lambda g: g.length)
    best = max(parts, key=size)
    if geom.geom_type == "Polygon":
        best = shapely.set_precision(best, 0.0)
    return best, True


def geometry_to_prompt(geom: BaseGeometry, like: VisualPrompt) -> VisualPrompt:
    """Rebuild a prompt of ``like``'s kind and index from a (clipped, transformed) geometry."""
    if like.kind is PromptKind.BOX:
        return VisualPrompt.box(*geom.bounds, index=like.index)
    if like.kind is PromptKind.POINT:
        return VisualPrompt.point(geom.x, geom.y, like.index)
    if like.kind is PromptKind.SCRIBBLE:
        return VisualPrompt.scribble(geom.coords, like.index)
    return VisualPrompt.polygon(geom.exterior.coords, like.index)
