"""Where a prompt lands: from a geometry in any CRS to raster pixels, a planned chip and chip pixels.

Headless (rasterio, pyproj, shapely). The QGIS plugin does the same steps with QGIS's own transforms
and data provider, and shares the pure modules (chip planning, encodings) with this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from ..core.chip import Chip
from ..core.chip_plan import ChipSettings, plan_prompt_chip, plan_scene_chip
from ..core.normalise import Modality
from ..core.prompts import VisualPrompt
from .crs import transformer
from .geometry import clip_to_extent, geometry_to_prompt, prompt_geometry
from .raster import RasterSource

Bounds = Tuple[float, float, float, float]


@dataclass
class Location:
    """Result of locating prompts on a raster.

    pixel_geometries: each prompt in raw raster pixel space, clipped to the raster.
    clipped: whether part of any prompt lay outside the raster.
    chip: the planned, read and normalised chip around all of them.
    chip_prompts: the prompts in chip pixels (a box stays the box bounding its mapped corners).
    """

    pixel_geometries: List[BaseGeometry]
    clipped: bool
    chip: Chip
    chip_prompts: Tuple[VisualPrompt, ...]

    @property
    def pixel_geometry(self) -> BaseGeometry:
        return self.pixel_geometries[0]

    @property
    def chip_prompt(self) -> VisualPrompt:
        return self.chip_prompts[0]


def locate_prompt(source: RasterSource, prompt: VisualPrompt, prompt_crs: CRS,
                  settings: ChipSettings = ChipSettings(), modality: Optional[Modality] = None,
                  bands: Optional[Sequence[int]] = None) -> Location:
    """Map ``prompt`` (vertices in ``prompt_crs``) onto ``source`` and read the chip around it."""
    return locate_prompts(source, [prompt], prompt_crs, settings, modality, bands)


def locate_prompts(source: RasterSource, prompts: Sequence[VisualPrompt], prompt_crs: CRS,
                   settings: ChipSettings = ChipSettings(), modality: Optional[Modality] = None,
                   bands: Optional[Sequence[int]] = None) -> Location:
    """Map several prompts (vertices in ``prompt_crs``) onto ``source`` and read one chip that holds
    them all (the context margin applies to their common bounds)."""
    to_raster = transformer(prompt_crs, source.crs)
    pixel_geometries, view_prompts, clipped = [], [], False
    for prompt in prompts:
        raw = prompt_geometry(prompt, lambda xs, ys: source.crs_to_raw(*to_raster(xs, ys)))
        pixel, cut = clip_to_extent(raw, source.width, source.height)
        if source.georeferencing == "gcps":
            view = prompt_geometry(prompt, lambda xs, ys: source.crs_to_view(*to_raster(xs, ys)))
            view, view_cut = clip_to_extent(view, *source.view_size)
            cut = cut or view_cut
        else:
            view = pixel
        pixel_geometries.append(pixel)
        view_prompts.append(geometry_to_prompt(view, prompt))
        clipped = clipped or cut
    bounds = np.array([p.bounds() for p in view_prompts])
    union = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
    plan = plan_prompt_chip(union, *source.view_size, settings, source.overviews)
    chip = source.read_chip(plan, modality, bands)
    to_chip = plan.view_to_chip().apply
    return Location(pixel_geometries, clipped, chip, tuple(p.transformed(to_chip) for p in view_prompts))


def read_scene(source: RasterSource, max_pixels: int = ChipSettings.max_pixels,
               extent: Optional[Bounds] = None, extent_crs: Optional[CRS] = None,
               modality: Optional[Modality] = None, bands: Optional[Sequence[int]] = None) -> Chip:
    """A scene-level chip of the whole raster, or of ``extent`` (minx, miny, maxx, maxy in
    ``extent_crs``, default the raster's CRS), read through overviews within ``max_pixels``."""
    view_extent = None
    if extent is not None:
        to_raster = transformer(extent_crs or source.crs, source.crs)
        minx, miny, maxx, maxy = extent
        t = np.linspace(0.0, 1.0, 21)
        xs = np.concatenate([minx + (maxx - minx) * t, np.full_like(t, maxx), maxx - (maxx - minx) * t, np.full_like(t, minx)])
        ys = np.concatenate([np.full_like(t, miny), miny + (maxy - miny) * t, np.full_like(t, maxy), maxy - (maxy - miny) * t])
        cols, rows = source.crs_to_view(*to_raster(xs, ys))
        view_extent = (float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max()))
    plan = plan_scene_chip(*source.view_size, max_pixels=max_pixels, overviews=source.overviews, extent=view_extent)
    return source.read_chip(plan, modality, bands)


def chip_shape_to_crs(chip: Chip, shape: VisualPrompt, dst_crs: Optional[CRS] = None) -> BaseGeometry:
    """A shape in chip pixels (e.g. a grounded box decoded from a model answer) as a geometry in
    ``dst_crs`` (default: the chip's CRS), through the chip's affine.

    A box becomes a 4-corner polygon with every corner transformed (DESIGN §4).
    """
    chip_crs = CRS.from_wkt(chip.crs)
    to_dst = transformer(chip_crs, dst_crs if dst_crs is not None else chip_crs)
    return prompt_geometry(shape, lambda xs, ys: to_dst(*chip.affine.apply(xs, ys)))
