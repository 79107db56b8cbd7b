"""Segmentation masks -> polygons on the chip's pixel grid, mapped through the chip's affine (DESIGN §4).

Pixel space is GDAL's: (0, 0) is the top-left corner of the top-left pixel, x = column, y = row, one
unit = one pixel. Vectorising is GDAL's polygonizer (``rasterio.features.shapes``), 4-connected.
"""

from __future__ import annotations

import math
from typing import Callable, List, Sequence, Tuple

import numpy as np
import rasterio
import shapely
from pyproj import CRS
from rasterio import features
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

from ..core.errors import InvalidArgumentError
from .crs import transformer

PixelToCRS = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def _pixels(mask: np.ndarray) -> np.ndarray:
    """The mask as uint8 0/1; ``InvalidArgumentError`` for anything but a non-empty 2-D bool or 0/1 array."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InvalidArgumentError(f"a mask must be 2-D (rows, columns), got shape {mask.shape}")
    if mask.size == 0:
        raise InvalidArgumentError(f"the mask is empty (shape {mask.shape})")
    if mask.dtype.kind == "f":
        raise InvalidArgumentError(f"a {mask.dtype} mask must be thresholded first (e.g. probabilities > 0.5)")
    if mask.dtype.kind not in "biu":
        raise InvalidArgumentError(f"a mask must be bool or integer 0/1, got dtype {mask.dtype}")
    if mask.dtype.kind != "b" and (mask.min() < 0 or mask.max() > 1):
        raise InvalidArgumentError(f"an integer mask holds only 0 and 1, got values from {mask.min()} to {mask.max()}")
    return mask.astype(np.uint8)


def _non_negative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise InvalidArgumentError(f"{name} must be a finite number >= 0, got {value}")


def check_outline_settings(min_area_px: float, simplify_px: float) -> None:
    """Refuse, before any work, a minimum area or simplification tolerance (chip pixels) that is not a
    finite number >= 0 (the command lines' ``--min-area`` and ``--simplify``)."""
    _non_negative("--min-area", min_area_px)
    _non_negative("--simplify", simplify_px)


def mask_polygons(mask: np.ndarray, min_area_px: float = 0.0, simplify_px: float = 0.0) -> List[Polygon]:
    """The True regions of a (rows, columns) mask as polygons in its pixel space.

    One polygon per 4-connected component, holes kept; unsimplified vertices are pixel corners (integer
    coordinates). Components of fewer than ``min_area_px`` pixels are dropped (holes are never dropped).
    ``simplify_px`` > 0 simplifies with that tolerance in pixels, topology preserved (0: exact). Rings are
    in shapely's normal form; polygons come by descending exact area, then by first exterior vertex.
    """
    pixels = _pixels(mask)
    _non_negative("min_area_px", min_area_px)
    _non_negative("simplify_px", simplify_px)
    found = features.shapes(pixels, mask=pixels.astype(bool), connectivity=4, transform=rasterio.Affine.identity())
    polygons = [shapely.normalize(shape(geometry)) for geometry, _ in found]
    polygons = sorted((p for p in polygons if p.area >= min_area_px), key=lambda p: (-p.area, p.exterior.coords[0]))
    if simplify_px > 0:
        polygons = [shapely.normalize(p.simplify(simplify_px, preserve_topology=True)) for p in polygons]
    return polygons


def polygons_to_crs(polygons: Sequence[Polygon], apply: PixelToCRS) -> List[Polygon]:
    """Polygons in pixel space mapped vertex by vertex (exteriors and holes) through ``apply(cols, rows) ->
    (xs, ys)``, a chip affine's ``Affine.apply``; exact for rotated and sheared affines."""
    def mapped(coords: np.ndarray) -> np.ndarray:
        xs, ys = apply(coords[:, 0], coords[:, 1])
        return np.column_stack([np.asarray(xs, float), np.asarray(ys, float)])

    return list(shapely.transform(np.asarray(polygons, dtype=object), mapped))


def area_m2(geometry: BaseGeometry, crs: CRS) -> float:
    """Ground area in square metres of a (multi)polygon in ``crs`` coordinates (x = easting or longitude):
    geodesic, on the ellipsoid of ``crs``'s geodetic CRS, so a projection's distortion (Web Mercator's
    1/cos² of the latitude, UTM's scale factor) never enters; a projected CRS's vertices are taken to
    longitude and latitude first (mask outlines have a vertex every pixel, dense enough). A CRS with no
    ellipsoid (geocentric, engineering...) is refused."""
    if crs.is_geographic:
        unit = crs.axis_info[0].unit_conversion_factor   # radians per unit
        lonlat = shapely.transform(geometry, lambda c: c * math.degrees(unit))
        geod = crs.get_geod()
    elif crs.is_projected and crs.geodetic_crs is not None and crs.get_geod() is not None:
        geodetic = crs.geodetic_crs
        to_degrees = transformer(crs, CRS.from_user_input(geodetic.to_wkt()))
        unit = geodetic.axis_info[0].unit_conversion_factor if geodetic.axis_info else math.radians(1.0)
        lonlat = shapely.transform(geometry, lambda c: np.column_stack(to_degrees(c[:, 0], c[:, 1]))
                                   * math.degrees(unit))
        geod = crs.get_geod()
    else:
        raise InvalidArgumentError(
            f"an area in square metres needs a geographic or projected CRS, got the {crs.type_name} {crs.name!r}")
    return geod.geometry_area_perimeter(shapely.orient_polygons(lonlat))[0]

