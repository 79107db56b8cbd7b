"""Chip planning: which full-resolution window to read, and at which scale (numpy/stdlib only).

All coordinates here are in the pixel space of the *read view* (the raster itself, or the warped
north-up view of a GCP-only raster), GDAL convention: x = column, y = row, (0, 0) the top-left corner.
A plan never reads more than ``max_pixels`` chip pixels; GDAL serves reduced-resolution reads from the
coarsest overview whose factor does not exceed the plan's scale, so the cost is bounded by the budget
times (scale / overview factor)^2 whatever the raster size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from .affine import Affine
from .errors import InvalidArgumentError, PromptOutsideRasterError

Bounds = Tuple[float, float, float, float]
#: the largest chip budget, 8192 x 8192: more than any model reads (Qwen-VL processors stop at 4096 x 4096)
MAX_CHIP_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class ChipSettings:
    """User-tunable chip planning defaults.

    context: margin added on each side of a prompt, as a fraction of the prompt's larger side.
    max_pixels: most chip pixels (width x height) handed to the model.
    min_size: smallest window side in full-resolution pixels (gives points and tiny boxes context).
    """

    context: float = 0.5
    max_pixels: int = 1024 * 1024
    min_size: int = 512

    def __post_init__(self) -> None:
        if not (math.isfinite(self.context) and self.context >= 0):
            raise InvalidArgumentError(f"context margin must be >= 0, got {self.context}")
        if int(self.max_pixels) < 64 * 64:
            raise InvalidArgumentError(f"pixel budget must be at least 4096 pixels (64x64), got {self.max_pixels}")
        if int(self.max_pixels) > MAX_CHIP_PIXELS:
            raise InvalidArgumentError(f"pixel budget must be at most {MAX_CHIP_PIXELS} pixels (8192x8192; no model "
                                       f"reads more), got {self.max_pixels}")
        if int(self.min_size) < 1:
            raise InvalidArgumentError(f"minimum chip size must be >= 1 pixel, got {self.min_size}")


@dataclass(frozen=True)
class Window:
    """A window of whole full-resolution pixels."""

    col_off: int
    row_off: int
    width: int
    height: int

    def as_dict(self) -> dict:
        return {"col_off": self.col_off, "row_off": self.row_off, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class ChipPlan:
    """A window read into a ``out_width`` x ``out_height`` chip.

    ``scale`` is the read scale (full-resolution pixels per chip pixel, per axis);
    ``source_overview`` the overview factor GDAL reads from (1 = full resolution).
    """

    window: Window
    out_width: int
    out_height: int
    source_overview: int

    @property
    def scale(self) -> Tuple[float, float]:
        return (self.window.width / self.out_width, self.window.height / self.out_height)

    @property
    def overview_factor(self) -> float:
        """The decimation of the read: the larger of the two axis scales."""
        return max(self.scale)

    def chip_affine(self, view_affine: Affine) -> Affine:
        """Chip pixel -> CRS, given the view's pixel -> CRS affine."""
        sx, sy = self.scale
        return view_affine.window_affine(self.window.col_off, self.window.row_off, sx, sy)

    def view_to_chip(self) -> Affine:
        """Read-view pixel -> chip pixel."""
        return self.chip_affine(Affine.identity()).inverse()


def clip_bounds(bounds: Bounds, width: int, height: int) -> Tuple[Bounds, bool]:
    """Clip ``(minx, miny, maxx, maxy)`` to the raster ``[0, width] x [0, height]``.

    Returns the clipped bounds and whether anything was cut. A point (zero-size bounds) on the
    raster's edge counts as inside. Raises ``PromptOutsideRasterError`` when nothing is left.
    """
    minx, miny, maxx, maxy = bounds
    if maxx < 0 or maxy < 0 or minx > width or miny > height:
        raise PromptOutsideRasterError(
            f"the prompt lies outside the raster (pixel bounds {_fmt(bounds)}, raster is {width}x{height} pixels)")
    clipped = (max(minx, 0.0), max(miny, 0.0), min(maxx, float(width)), min(maxy, float(height)))
    return clipped, clipped != tuple(float(b) for b in bounds)


def plan_prompt_chip(bounds: Bounds, width: int, height: int, settings: ChipSettings = ChipSettings(),
                     overviews: Sequence[int] = ()) -> ChipPlan:
    """Plan the chip around a prompt with bounds ``(minx, miny, maxx, maxy)`` in view pixels.

    The window is the prompt plus ``settings.context`` on each side, at least ``settings.min_size``
    pixels a side, shifted (not cut) to stay inside the raster where the raster is large enough.
    """
    (minx, miny, maxx, maxy), _ = clip_bounds(bounds, width, height)
    side = max(maxx - minx, maxy - miny)
    margin = settings.context * side
    col_off, win_w = _axis_window(minx - margin, maxx + margin, settings.min_size, width)
    row_off, win_h = _axis_window(miny - margin, maxy + margin, settings.min_size, height)
    return _budgeted(Window(col_off, row_off, win_w, win_h), settings.max_pixels, overviews)


def plan_scene_chip(width: int, height: int, max_pixels: int = ChipSettings.max_pixels,
                    overviews: Sequence[int] = (), extent: Optional[Bounds] = None) -> ChipPlan:
    """Plan a scene-level chip of the whole raster, or of ``extent`` (view pixels), within the budget."""
    if extent is None:
        window = Window(0, 0, int(width), int(height))
    else:
        (minx, miny, maxx, maxy), _ = clip_bounds(extent, width, height)
        c0, r0 = int(math.floor(minx)), int(math.floor(miny))
        c1, r1 = int(math.ceil(maxx)), int(math.ceil(maxy))
        window = Window(c0, r0, max(1, c1 - c0), max(1, r1 - r0))
        window = Window(min(window.col_off, width - window.width), min(window.row_off, height - window.height),
                        window.width, window.height)
    return _budgeted(window, max_pixels, overviews)


def _axis_window(lo: float, hi: float, min_size: int, size: int) -> Tuple[int, int]:
    """Integer (offset, length) along one axis covering [lo, hi], at least ``min_size`` long,
    inside [0, size]."""
    start, stop = math.floor(lo), math.ceil(hi)
    length = max(stop - start, min_size, 1)
    centre = 0.5 * (lo + hi)
    if length >= size:
        return 0, int(size)
    if stop - start < length:
        start = int(math.floor(centre - length / 2.0))
    start = min(max(start, 0), size - length)
    return int(start), int(length)


def _budgeted(window: Window, max_pixels: int, overviews: Sequence[int]) -> ChipPlan:
    area = window.width * window.height
    factor = max(1.0, math.sqrt(area / float(max_pixels)))
    if factor == 1.0:
        out_w, out_h = window.width, window.height
    else:
        out_w = max(1, int(math.floor(window.width / factor)))
        out_h = max(1, int(math.floor(window.height / factor)))
        # a side clamped at one pixel leaves the other side the whole budget, no more
        out_w = min(out_w, max_pixels)
        out_h = max(1, min(out_h, max_pixels // out_w))
        out_w = min(out_w, max_pixels // out_h)
    scale = max(window.width / out_w, window.height / out_h)
    usable = [int(o) for o in overviews if int(o) <= scale * (1 + 1e-9)]
    return ChipPlan(window, out_w, out_h, max(usable, default=1))


def _fmt(bounds: Bounds) -> str:
    return "(" + ", ".join(f"{b:.6g}" for b in bounds) + ")"
