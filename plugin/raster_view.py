"""Where prompts land on a QGIS raster layer and how its chip is read, through QGIS itself.

QGIS shows rotated and GCP-only rasters through a warped north-up view; its grid (the layer's extent
and size) is the *view* the spatial core plans on (DESIGN §3). Prompts drawn in the canvas CRS are
transformed with QGIS to the layer CRS, then to view pixels with the view's affine; the chip is read
through a clone of the layer's data provider (safe in a background task) at the planned window and
resolution, then normalised by the same pure code the worker uses. No torch, rasterio, pyproj or
shapely here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from qgis.core import (Qgis, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsDistanceArea, QgsGeometry,
                       QgsPointXY, QgsProject, QgsRasterLayer, QgsRectangle, QgsUnitTypes, QgsWkbTypes)

from ..model_backend.core.affine import Affine
from ..model_backend.core.chip import Chip
from ..model_backend.core.chip_plan import ChipPlan, ChipSettings, plan_prompt_chip, plan_scene_chip
from ..model_backend.core.errors import NoCRSError, PromptOutsideRasterError, UnsupportedDataError
from ..model_backend.core.normalise import (Modality, ModalityGuess, check_bands, default_bands, guess_modality,
                                            to_model_rgb)
from ..model_backend.core.prompts import PromptKind, VisualPrompt

_NUMPY_TYPES = {
    Qgis.DataType.Byte: np.uint8, Qgis.DataType.UInt16: np.uint16, Qgis.DataType.Int16: np.int16,
    Qgis.DataType.UInt32: np.uint32, Qgis.DataType.Int32: np.int32, Qgis.DataType.Float32: np.float32,
    Qgis.DataType.Float64: np.float64, Qgis.DataType.CInt16: np.int16, Qgis.DataType.CInt32: np.int32,
    Qgis.DataType.CFloat32: np.complex64, Qgis.DataType.CFloat64: np.complex128,
}
_COMPLEX_INTEGER = (Qgis.DataType.CInt16, Qgis.DataType.CInt32)
_COLOUR_NAMES = {3: "red", 4: "green", 5: "blue"}  # QgsRaster.ColorInterpretation values


@dataclass
class DrawnPrompt:
    """A prompt as the analyst drew it: its kind, index and geometry in ``crs`` (the canvas CRS)."""

    kind: PromptKind
    index: int
    geometry: QgsGeometry
    crs: QgsCoordinateReferenceSystem


@dataclass
class LayerView:
    """The grid QGIS shows a raster layer on: ``affine`` (view pixel -> layer CRS) and size."""

    layer_id: str
    crs: QgsCoordinateReferenceSystem
    affine: Affine
    width: int
    height: int

    @classmethod
    def of(cls, layer: QgsRasterLayer) -> "LayerView":
        if not layer.crs().isValid():
            raise NoCRSError(f"{layer.name()} has no coordinate reference system; set one in its properties")
        if _at_pixel_coordinates(layer):
            raise NoCRSError(f"{layer.name()} has a CRS but no geotransform or GCPs: QGIS draws it at pixel "
                             f"coordinates, not on the map; georeference it first (Raster > Georeferencer)")
        e = layer.extent()
        w, h = layer.width(), layer.height()
        affine = Affine(e.xMinimum(), e.width() / w, 0.0, e.yMaximum(), 0.0, -e.height() / h)
        return cls(layer.id(), layer.crs(), affine, w, h)

    def rectangle(self, plan: ChipPlan) -> QgsRectangle:
        """The planned window as a rectangle in the layer CRS."""
        w = plan.window
        x0, y0 = self.affine.apply(w.col_off, w.row_off)
        x1, y1 = self.affine.apply(w.col_off + w.width, w.row_off + w.height)
        return QgsRectangle(float(min(x0, x1)), float(min(y0, y1)), float(max(x0, x1)), float(max(y0, y1)))


def _at_pixel_coordinates(layer: QgsRasterLayer) -> bool:
    """True when QGIS draws ``layer`` at pixel coordinates, (0, -height)-(width, 0): what its GDAL
    provider does for a file with neither a geotransform nor GCPs (no real georeferencing puts 1-unit
    pixels at the CRS origin)."""
    e = layer.extent()
    return (e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()) == (0.0, -float(layer.height()),
                                                                      float(layer.width()), 0.0)


def view_prompts(view: LayerView, prompts: Sequence[DrawnPrompt]) -> Tuple[List[VisualPrompt], bool]:
    """The prompts in view pixels, clipped to the raster (and whether any was cut).

    Raises ``PromptOutsideRasterError`` for a prompt wholly off the raster.
    """
    to_pixel = view.affine.inverse()
    frame = QgsGeometry.fromRect(QgsRectangle(0, 0, view.width, view.height))
    out, clipped = [], False
    for p in prompts:
        geom = QgsGeometry(p.geometry)
        if p.crs != view.crs:
            geom.transform(QgsCoordinateTransform(p.crs, view.crs, QgsProject.instance()))
        pts = [(v.x(), v.y()) for v in geom.vertices()]
        xs, ys = to_pixel.apply([x for x, _ in pts], [y for _, y in pts])
        pixel = _geometry_from(p.kind, list(zip(xs.tolist(), ys.tolist())))
        if frame.contains(pixel):
            inside = pixel
        else:
            inside = pixel.intersection(frame)
            if inside.isEmpty():
                raise PromptOutsideRasterError(f"prompt {p.index} lies outside the raster")
            clipped = True
        out.append(_prompt_from(p.kind, p.index, inside))
    return out, clipped


def _geometry_from(kind: PromptKind, pts: List[Tuple[float, float]]) -> QgsGeometry:
    qpts = [QgsPointXY(x, y) for x, y in pts]
    if kind is PromptKind.POINT:
        return QgsGeometry.fromPointXY(qpts[0])
    if kind is PromptKind.SCRIBBLE:
        return QgsGeometry.fromPolylineXY(qpts)
    return QgsGeometry.fromPolygonXY([qpts])


def _prompt_from(kind: PromptKind, index: int, geom: QgsGeometry) -> VisualPrompt:
    """A view-pixel prompt from a clipped geometry (the largest part when clipping split it)."""
    if geom.isMultipart():
        parts = geom.asGeometryCollection()
        geom = max(parts, key=lambda g: g.area() if kind.value in ("box", "polygon") else g.length())
    if kind is PromptKind.POINT:
        pt = geom.asPoint()
        return VisualPrompt.point(pt.x(), pt.y(), index)
    if kind is PromptKind.BOX:
        r = geom.boundingBox()
        return VisualPrompt.box(r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum(), index)
    if kind is PromptKind.SCRIBBLE:
        return VisualPrompt.scribble([(v.x(), v.y()) for v in geom.asPolyline()], index)
    return VisualPrompt.polygon([(v.x(), v.y()) for v in geom.asPolygon()[0]], index)


def plan_chip(view: LayerView, prompts: Sequence[VisualPrompt], settings: ChipSettings) -> ChipPlan:
    """The chip window around all prompts (view pixels), or the whole view for a scene question."""
    if not prompts:
        return plan_scene_chip(view.width, view.height, max_pixels=settings.max_pixels)
    b = np.array([p.bounds() for p in prompts])
    union = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
    return plan_prompt_chip(union, view.width, view.height, settings)


@dataclass
class RasterInfo:
    """What the chip reader needs to know about a layer, gathered on the main thread; ``modality``
    caches the layer's modality guess once made (tiles of one search share it)."""

    source: str
    band_count: int
    data_type: int
    nodata: List[Optional[float]]
    colour_names: Tuple[str, ...]
    metadata_text: str
    modality: Optional[ModalityGuess] = None

    @classmethod
    def of(cls, layer: QgsRasterLayer) -> "RasterInfo":
        provider = layer.dataProvider()
        n = provider.bandCount()
        nodata = [provider.sourceNoDataValue(b) if provider.sourceHasNoDataValue(b) else None for b in range(1, n + 1)]
        colours = tuple(_COLOUR_NAMES.get(int(provider.colorInterpretation(b)), "undefined") for b in range(1, n + 1))
        text = " ".join([os.path.basename(layer.source().split("|")[0]), layer.name(), provider.htmlMetadata()])
        return cls(layer.source(), n, provider.dataType(1), nodata, colours, text)


def read_band(provider, view: LayerView, band: int, rect: QgsRectangle, width: int, height: int,
              info: RasterInfo) -> Tuple[np.ndarray, np.ndarray]:
    """One band of ``rect`` at ``width`` x ``height`` through ``provider``: (values, valid)."""
    block = provider.block(band, rect, width, height)
    dtype = _NUMPY_TYPES.get(block.dataType())
    if dtype is None:
        raise UnsupportedDataError(f"raster data type {block.dataType()} is not supported")
    raw = np.frombuffer(bytes(block.data()), dtype=dtype)
    if block.dataType() in _COMPLEX_INTEGER:
        raw = raw.astype(np.float32).view(np.complex64)
    values = raw.reshape(height, width).copy()
    valid = np.ones((height, width), bool)
    nodata = info.nodata[band - 1]
    if nodata is not None:
        valid &= values != nodata
    if values.dtype.kind in "fc":
        valid &= np.isfinite(values)
    if block.hasNoData() and nodata is None:  # no-data without a value (e.g. outside a warped footprint)
        flags = np.fromiter((block.isNoData(i) for i in range(width * height)), bool, width * height)
        valid &= ~flags.reshape(height, width)
    return values, valid


def guess_layer_modality(provider, view: LayerView, info: RasterInfo) -> ModalityGuess:
    """The modality guess for a layer, from its type, bands, metadata and a small sample (made once per
    ``info``)."""
    if info.modality is not None:
        return info.modality
    sample = None
    dtype = np.dtype(_NUMPY_TYPES.get(info.data_type, np.uint8))
    if dtype.kind == "f":
        f = max(1.0, max(view.width, view.height) / 256)
        w, h = max(1, int(view.width / f)), max(1, int(view.height / f))
        values, valid = read_band(provider, view, 1, _full_rect(view), w, h, info)
        sample = values[valid]
    info.modality = guess_modality(dtype, info.band_count, info.metadata_text, sample)
    return info.modality


def _full_rect(view: LayerView) -> QgsRectangle:
    x0, y0 = view.affine.apply(0, 0)
    x1, y1 = view.affine.apply(view.width, view.height)
    return QgsRectangle(float(x0), float(y1), float(x1), float(y0))


def read_chip(provider, view: LayerView, info: RasterInfo, plan: ChipPlan, modality: Optional[Modality] = None,
              bands: Optional[Sequence[int]] = None) -> Chip:
    """Read and normalise the planned chip through ``provider`` (a clone, in a background task)."""
    guess = guess_layer_modality(provider, view, info) if modality is None else \
        ModalityGuess(Modality(modality), "chosen by the user")
    bands = check_bands(bands, info.band_count) if bands else default_bands(guess.modality, info.band_count,
                                                                            info.colour_names)
    rect = view.rectangle(plan)
    reads = [read_band(provider, view, b, rect, plan.out_width, plan.out_height, info) for b in bands]
    data = np.stack([r[0] for r in reads])
    valid = np.all(np.stack([r[1] for r in reads]), axis=0)
    image, valid = to_model_rgb(data, valid, guess.modality)
    return Chip(image=image, valid=valid, affine=plan.chip_affine(view.affine), crs=view.crs.toWkt(),
                source=info.source, plan=plan, modality=guess.modality, modality_reason=guess.reason,
                bands=tuple(bands))


def chip_shape_geometry(chip: Chip, shape: VisualPrompt, to_crs: QgsCoordinateReferenceSystem,
                        chip_crs: QgsCoordinateReferenceSystem) -> QgsGeometry:
    """A chip-pixel shape (a parsed region) as a geometry in ``to_crs``: a box becomes its four
    corners, each transformed (DESIGN §4)."""
    pts = chip.to_crs(shape.outline())
    geom = _geometry_from(shape.kind, [(float(x), float(y)) for x, y in pts])
    if to_crs != chip_crs:
        geom.transform(QgsCoordinateTransform(chip_crs, to_crs, QgsProject.instance()))
    return geom


def chip_polygons_geometry(chip: Chip, polygons: Sequence[Sequence[Sequence[Sequence[float]]]],
                           to_crs: QgsCoordinateReferenceSystem,
                           chip_crs: QgsCoordinateReferenceSystem) -> QgsGeometry:
    """Polygons in chip pixels (each a list of rings, exterior first, of (col, row)) as one
    multipolygon in ``to_crs``: every vertex through the chip's affine, then transformed."""
    parts = []
    for rings in polygons:
        mapped = []
        for ring in rings:
            pts = chip.to_crs(np.asarray(ring, dtype=float))
            mapped.append([QgsPointXY(float(x), float(y)) for x, y in pts])
        parts.append(mapped)
    geom = QgsGeometry.fromMultiPolygonXY(parts)
    if to_crs != chip_crs:
        geom.transform(QgsCoordinateTransform(chip_crs, to_crs, QgsProject.instance()))
    return geom


def ground_measure(crs: QgsCoordinateReferenceSystem) -> Optional[QgsDistanceArea]:
    """Ellipsoidal measures of geometries in ``crs``; None for a CRS without an ellipsoid."""
    measure = QgsDistanceArea()
    measure.setSourceCrs(crs, QgsProject.instance().transformContext())
    if not measure.setEllipsoid(crs.ellipsoidAcronym()) or not measure.willUseEllipsoid():
        return None
    return measure


def ground_area_m2(geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem) -> Optional[float]:
    """Ellipsoidal area in square metres of ``geometry`` (in ``crs``), None for a CRS without an ellipsoid."""
    measure = ground_measure(crs)
    if measure is None:
        return None
    return measure.convertAreaMeasurement(measure.measureArea(geometry), QgsUnitTypes.AreaUnit.AreaSquareMeters)


def is_single_region(prompts: Sequence[DrawnPrompt]) -> bool:
    return len(prompts) == 1 and prompts[0].kind in (PromptKind.BOX, PromptKind.POLYGON)


def geometry_type_name(geom: QgsGeometry) -> str:
    return {QgsWkbTypes.GeometryType.PointGeometry: "point", QgsWkbTypes.GeometryType.LineGeometry: "line"}.get(
        geom.type(), "polygon")
