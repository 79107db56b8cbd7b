"""Export of the output layers (``OutputLayers.layers()``) to a GeoPackage or to shapefiles, with the
headless writer's layout (``model_backend.geo.outputs``):

- GeoPackage: one file, layers ``prompts``, ``answers``, ``detections`` with full text; the memory
  layers of one schema layer (points, lines, polygons) merge into one GeoPackage layer.
- Shapefiles: one set per schema layer and geometry family (``NAME_prompts_point.shp``,
  ``NAME_answers.shp``, ``NAME_detections_polygon.shp``, ...; the family suffix is left out for a schema
  layer other than prompts when it has one family), field names cut to 10 characters by
  ``schema.SHAPEFILE_NAMES`` and text over 254 bytes split over continuation fields ``answer``,
  ``answer_2``, ... (never truncated; ``ExportReport.split_fields`` names them).

Writing is atomic: everything is written into a temporary folder beside the target and only once complete
moved into place, file by file, with ``os.replace``; a failed write leaves existing files as they were and
the temporary folder is always removed. Call on the main thread (the layers belong to it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Sequence, Tuple, Union

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeature, QgsField, QgsFields,
                       QgsGeometry, QgsProject, QgsVectorFileWriter, QgsVectorLayer, QgsWkbTypes)

from ..model_backend.core.errors import EarthGPTXError, InvalidArgumentError
from ..model_backend.core.schema import (FIELDS, LAYERS, SHAPEFILE_NAMES, SHAPEFILE_TEXT_LIMIT, complete, part_name,
                                         split_text, text_parts, to_shapefile)
from .layers import FAMILIES, OutputLayers, family_of, require_main_thread, schema_fields, tr

SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
_SINGLE_TYPES = {"point": QgsWkbTypes.Type.Point, "line": QgsWkbTypes.Type.LineString,
                 "polygon": QgsWkbTypes.Type.Polygon}

#: one feature read from the layers: geometry and attributes by schema field name
Row = Tuple[QgsGeometry, Dict[str, object]]
#: what is exported: the session's outputs, or schema layer name -> its layers
Layers = Union[OutputLayers, Mapping[str, Sequence[QgsVectorLayer]]]


class ExportError(EarthGPTXError):
    """Writing the export failed (the file system or the writer refused); nothing was replaced."""


@dataclass
class ExportReport:
    """``files``: the files written (``.gpkg``, or each set's ``.shp``); ``features``: features per schema
    layer; ``split_fields``: shapefile text fields continued over ``NAME_2``, ``NAME_3``, ..."""

    files: List[str]
    features: Dict[str, int]
    split_fields: List[str]


def export_gpkg(layers: Layers, path: str) -> ExportReport:
    """Write ``layers`` to the GeoPackage ``path``, replacing it."""
    folder = _check_target(path, ".gpkg")
    data = _read(layers)
    with _staging(folder) as tmp:
        file = os.path.join(tmp, os.path.basename(path))
        for name in LAYERS:
            crs, rows = data[name]
            fields = schema_fields(name)
            wkb = _wkb_type(rows) if len({family_of(g) for g, _ in rows}) == 1 else QgsWkbTypes.Type.Unknown
            _write(file, "GPKG", name, fields, wkb, crs, [(g, complete(name, a)) for g, a in rows],
                   new_file=name == LAYERS[0])
        _move(file, path)
    return ExportReport(files=[os.path.join(folder, os.path.basename(path))],
                        features={name: len(data[name][1]) for name in LAYERS}, split_fields=[])


def export_shapefiles(layers: Layers, path: str) -> ExportReport:
    """Write ``layers`` as the shapefile sets of ``path`` (``NAME.shp`` gives ``NAME_answers.shp``, ...),
    replacing the sets of an earlier export of the same name."""
    folder = _check_target(path, ".shp")
    stem = os.path.splitext(os.path.basename(path))[0]
    data = _read(layers)
    written: List[str] = []
    split: List[str] = []
    with _staging(folder) as tmp:
        for name in LAYERS:
            crs, rows = data[name]
            groups: Dict[str, List[Row]] = {}
            for row in rows:
                groups.setdefault(family_of(row[0]), []).append(row)
            single = len(groups) == 1 and name != "prompts"
            for family in (f for f in FAMILIES if f in groups):
                base = f"{stem}_{name}" if single else f"{stem}_{name}_{family}"
                props = [to_shapefile(complete(name, a)) for _, a in groups[family]]
                parts = text_parts(props)
                split += [k for k, n in sorted(parts.items()) if n > 1 and k not in split]
                _write(os.path.join(tmp, base + ".shp"), "ESRI Shapefile", base, _shapefile_fields(name, parts),
                       _wkb_type(groups[family]), crs,
                       [(g, split_text(p, parts)) for (g, _), p in zip(groups[family], props)], new_file=True)
                written.append(base)
        produced = sorted(os.listdir(tmp))
        for file in produced:
            _move(os.path.join(tmp, file), os.path.join(folder, file))
    for name in LAYERS:
        for base in [f"{stem}_{name}"] + [f"{stem}_{name}_{family}" for family in FAMILIES]:
            for file in (base + ext for ext in SHAPEFILE_PARTS):
                if file not in produced and os.path.exists(os.path.join(folder, file)):
                    os.remove(os.path.join(folder, file))
    return ExportReport(files=[os.path.join(folder, base + ".shp") for base in written],
                        features={name: len(data[name][1]) for name in LAYERS}, split_fields=split)


def _check_target(path: str, extension: str) -> str:
    """The folder of ``path``, once the path is one this export can write."""
    if os.path.splitext(path)[1].lower() != extension:
        raise InvalidArgumentError(tr("The export file must end in {ext}: {path}").format(ext=extension, path=path))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(tr("The folder {folder} does not exist.").format(folder=folder))
    if os.path.isdir(path):
        raise InvalidArgumentError(tr("{path} is a folder, not a file.").format(path=path))
    return folder


def _read(layers: Layers) -> Dict[str, Tuple[QgsCoordinateReferenceSystem, List[Row]]]:
    """Each schema layer's features in the CRS of its first layer; raises when there are none."""
    require_main_thread()
    if isinstance(layers, OutputLayers):
        layers = layers.layers()
    data: Dict[str, Tuple[QgsCoordinateReferenceSystem, List[Row]]] = {}
    for name in LAYERS:
        sources = list(layers.get(name, ()))
        crs = sources[0].crs() if sources else QgsProject.instance().crs()
        rows: List[Row] = []
        for layer in sources:
            transform = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance())
            for feature in layer.getFeatures():
                geometry = QgsGeometry(feature.geometry())
                if family_of(geometry) is None:
                    continue
                if layer.crs() != crs:
                    geometry.transform(transform)
                names = feature.fields().names()
                rows.append((geometry, {key: feature[key] for key, _ in FIELDS[name] if key in names}))
        data[name] = (crs, rows)
    if not any(rows for _, rows in data.values()):
        raise InvalidArgumentError(tr("There is nothing to export yet: ask a question first."))
    return data


def _wkb_type(rows: Sequence[Row]) -> QgsWkbTypes.Type:
    """The single or multi type of rows of one geometry family (multi when any row is)."""
    single = _SINGLE_TYPES[family_of(rows[0][0])]
    return QgsWkbTypes.multiType(single) if any(g.isMultipart() for g, _ in rows) else single


def _shapefile_fields(name: str, parts: Dict[str, int]) -> QgsFields:
    """Schema fields under their shapefile names, text fields continued over ``parts`` fields."""
    source = schema_fields(name)
    fields = QgsFields()
    for key, kind in FIELDS[name]:
        short = SHAPEFILE_NAMES.get(key, key)
        for k in range(parts.get(short, 1) if kind == "str" else 1):
            field = QgsField(source.field(key))
            field.setName(part_name(short, k))
            if kind == "str":
                field.setLength(SHAPEFILE_TEXT_LIMIT)
            fields.append(field)
    return fields


def _write(file: str, driver: str, layer_name: str, fields: QgsFields, wkb: QgsWkbTypes.Type,
           crs: QgsCoordinateReferenceSystem, rows: Sequence[Tuple[QgsGeometry, Mapping[str, object]]],
           new_file: bool) -> None:
    """Write ``rows`` as layer ``layer_name`` of ``file`` (a new file, or a new layer of it)."""
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = driver
    options.layerName = layer_name
    options.fileEncoding = "UTF-8"
    options.actionOnExistingFile = (QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteFile if new_file
                                    else QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer)
    writer = QgsVectorFileWriter.create(file, fields, wkb, crs, QgsProject.instance().transformContext(), options)
    try:
        if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
            raise ExportError(tr("Could not create {file}: {error}").format(file=file, error=writer.errorMessage()))
        for geometry, attributes in rows:
            feature = QgsFeature(fields)
            if QgsWkbTypes.isMultiType(wkb) and not geometry.isMultipart():
                geometry = QgsGeometry(geometry)
                geometry.convertToMultiType()
            feature.setGeometry(geometry)
            for key, value in attributes.items():
                feature[key] = value
            if not writer.addFeature(feature):
                raise ExportError(tr("Could not write to {file}: {error}").format(file=file,
                                                                                 error=writer.errorMessage()))
    finally:
        del writer


@contextmanager
def _staging(folder: str) -> Iterator[str]:
    """A temporary folder inside ``folder``, removed with whatever is left in it."""
    try:
        tmp = tempfile.mkdtemp(prefix=".earthgptx-", dir=folder)
    except OSError as error:
        raise InvalidArgumentError(tr("Cannot write in the folder {folder}: {error}").format(
            folder=folder, error=error.strerror)) from error
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move(source: str, target: str) -> None:
    try:
        os.replace(source, target)
    except OSError as error:
        raise ExportError(tr("Could not replace {file}: {error}").format(file=target, error=error.strerror)) from error
