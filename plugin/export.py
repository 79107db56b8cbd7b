"""Export of the output layers (``OutputLayers.layers()``) to a GeoPackage or to shapefiles, with the
headless writer's layout and guarantees (``model_backend.geo.outputs``):

- GeoPackage: layers ``prompts``, ``answers``, ``detections`` with full text; the memory layers of one
  schema layer (points, lines, polygons) merge into one GeoPackage layer. An export only adds: into an
  existing GeoPackage, in one transaction (``core.gpkg``), the features it does not hold yet (by
  question id and prompt index, answer id, answer id and rank), so exporting again adds only what is
  new and the file's other layers are never touched.
- Shapefiles: one set per schema layer and geometry family (``NAME_prompts_point.shp``,
  ``NAME_answers.shp``, ``NAME_detections_polygon.shp``, ...; the family suffix is left out for a schema
  layer other than prompts when it has one family), field names cut to 10 characters by
  ``schema.SHAPEFILE_NAMES`` and text over 254 bytes split over continuation fields ``answer``,
  ``answer_2``, ... (``ExportReport.split_fields`` names them). The sets the output already owns keep
  their features; all are written beside and swapped in as a set (``core.shapefile_sets``); a file of the
  same name that is not ours is refused.

A failed export leaves every existing file as it was. Call on the main thread (the layers belong to it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeature, QgsField, QgsFields,
                       QgsGeometry, QgsProject, QgsVectorFileWriter, QgsVectorLayer, QgsWkbTypes)

from ..model_backend.core import gpkg
from ..model_backend.core.errors import EarthGPTXError, InvalidArgumentError, OutputError
from ..model_backend.core.schema import (FIELDS, LAYERS, OPTIONAL_LAYERS, SHAPEFILE_NAMES, SHAPEFILE_TEXT_LIMIT,
                                         complete, escape_unstorable, from_shapefile, has_shapefile_fields, part_name,
                                         shapefile_refusal, split_text, text_parts, to_shapefile, trim_for_shapefile)
from ..model_backend.core.shapefile_sets import ShapefileSets, remove_stale_temporary
from .layers import FAMILIES, OutputLayers, family_of, require_main_thread, schema_fields, tr

_SINGLE_TYPES = {"point": QgsWkbTypes.Type.Point, "line": QgsWkbTypes.Type.LineString,
                 "polygon": QgsWkbTypes.Type.Polygon}
#: the fields that name one feature of each schema layer: an export adds only features not yet there
KEYS = {"prompts": ("question_id", "prompt_index"), "answers": ("answer_id",), "detections": ("answer_id", "rank"),
        "masks": ("answer_id", "question_id", "rank", "prompt_index", "prompt_kind")}

#: one feature read from the layers: geometry and attributes by schema field name
Row = Tuple[QgsGeometry, Dict[str, object]]
#: what is exported: the session's outputs, or schema layer name -> its layers
Layers = Union[OutputLayers, Mapping[str, Sequence[QgsVectorLayer]]]


class ExportError(EarthGPTXError):
    """Writing the export failed (the file system or the writer refused); nothing was replaced."""


@dataclass
class ExportReport:
    """``files``: the files written (``.gpkg``, or each set's ``.shp``); ``features``: features of the session
    per schema layer; ``added``: those the file did not hold yet; ``split_fields``: shapefile text fields
    continued over ``NAME_2``, ...; ``changed_fields``: fields whose text was escaped (NUL, lone surrogates)
    or lost end spaces (shapefiles)."""

    files: List[str]
    features: Dict[str, int]
    split_fields: List[str]
    added: Dict[str, int] = field(default_factory=dict)
    changed_fields: List[str] = field(default_factory=list)


def export_gpkg(layers: Layers, path: str, timeout_s: float = 30.0) -> ExportReport:
    """Add the features of ``layers`` that the GeoPackage ``path`` does not hold yet (created when missing)."""
    folder = _check_target(path, ".gpkg")
    data, changed = _read(layers)
    remove_stale_temporary(folder)
    added: Dict[str, int] = {}
    with gpkg.appending(path, timeout_s) as out:
        for name in LAYERS:
            crs, rows = data[name]
            existing = out.layer_crs(name)
            if existing is None and name in OPTIONAL_LAYERS and not rows:
                added[name] = 0
                continue
            target = QgsCoordinateReferenceSystem.fromWkt(existing) if existing else crs
            out.ensure_layer(name, FIELDS[name], _spatial_ref(target))
            transform = QgsCoordinateTransform(crs, target, QgsProject.instance())
            added[name] = out.insert(name, (_row(g, a, transform if crs != target else None) for g, a in rows),
                                     unique=KEYS[name])
    return ExportReport(files=[os.path.join(folder, os.path.basename(path))],
                        features={name: len(data[name][1]) for name in LAYERS}, split_fields=[], added=added,
                        changed_fields=changed)


def export_shapefiles(layers: Layers, path: str, timeout_s: float = 30.0) -> ExportReport:
    """Write ``layers`` as the shapefile sets of ``path`` (``NAME.shp`` gives ``NAME_answers.shp``, ...),
    keeping the features the sets of this output already hold."""
    _check_target(path, ".shp")
    data, changed = _read(layers)
    split: List[str] = []
    with ShapefileSets(path, legacy=_is_legacy_set, timeout_s=timeout_s) as sets:
        owned = sets.owned()
        plan = []
        added: Dict[str, int] = {}
        for name in LAYERS:
            crs, rows = data[name]
            kept = _read_sets(sets.folder, [b for b in owned if sets.layer_of(b) == name], crs)
            seen = {tuple(a.get(k) for k in KEYS[name]) for _, a in kept}
            new = [(g, a) for g, a in rows if tuple(a.get(k) for k in KEYS[name]) not in seen]
            added[name] = len(new)
            groups: Dict[str, List[Row]] = {}
            for row in kept + new:
                groups.setdefault(family_of(row[0]), []).append(row)
            single = len(groups) == 1 and name != "prompts"
            for family in (f for f in FAMILIES if f in groups):
                base = f"{sets.stem}_{name}" if single else f"{sets.stem}_{name}_{family}"
                props = []
                for _, a in groups[family]:
                    row, cut = trim_for_shapefile(to_shapefile(complete(name, a)))
                    props.append(row)
                    changed += [k for k in cut if k not in changed]
                parts = text_parts(props)
                refusal = shapefile_refusal(name, props, parts)
                if refusal:
                    raise OutputError(tr("Cannot write {file}: {why}; export to a GeoPackage instead.").format(
                        file=base + ".shp", why=refusal))
                split += [k for k, n in sorted(parts.items()) if n > 1 and k not in split]
                plan.append((base, name, family, groups[family], props, parts, crs))
        sets.check_free([p[0] for p in plan])
        for base, name, family, members, props, parts, crs in plan:
            _write(os.path.join(sets.staging(), base + ".shp"), "ESRI Shapefile", base, _shapefile_fields(name, parts),
                   _wkb_type(members), crs, [(g, split_text(p, parts)) for (g, _), p in zip(members, props)])
        files = sets.commit([p[0] for p in plan])
    return ExportReport(files=files, features={name: len(data[name][1]) for name in LAYERS}, split_fields=split,
                        added=added, changed_fields=changed)


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


def _read(layers: Layers) -> Tuple[Dict[str, Tuple[QgsCoordinateReferenceSystem, List[Row]]], List[str]]:
    """Each schema layer's features in the CRS of its first layer, with the names of the fields whose
    text had to be escaped (NUL, lone surrogates); raises when there are none."""
    require_main_thread()
    if isinstance(layers, OutputLayers):
        layers = layers.layers()
    data: Dict[str, Tuple[QgsCoordinateReferenceSystem, List[Row]]] = {}
    changed: List[str] = []
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
                values, escaped = escape_unstorable({key: _plain(feature[key]) for key, _ in FIELDS[name]
                                                     if key in names})
                changed += [k for k in escaped if k not in changed]
                rows.append((geometry, values))
        data[name] = (crs, rows)
    if not any(rows for _, rows in data.values()):
        raise InvalidArgumentError(tr("There is nothing to export yet: ask a question first."))
    return data, changed


def _plain(value: object) -> object:
    """A feature's attribute as a Python value (QGIS's NULL as None)."""
    return None if value is None or (hasattr(value, "isNull") and value.isNull()) else value


def _spatial_ref(crs: QgsCoordinateReferenceSystem) -> gpkg.SpatialRef:
    authority, _, code = crs.authid().partition(":")
    return gpkg.SpatialRef(name=crs.description() or crs.authid(),
                           wkt=crs.toWkt(QgsCoordinateReferenceSystem.WktVariant.WKT1_GDAL),
                           authority=authority or None, code=int(code) if code.isdigit() else None)


def _row(geometry: QgsGeometry, values: Mapping[str, object],
         transform: Optional[QgsCoordinateTransform]) -> gpkg.Row:
    """One GeoPackage row: 2D ISO WKB, bounds, values; reprojected by ``transform`` when given."""
    geometry = QgsGeometry(geometry)
    if transform is not None:
        geometry.transform(transform)
    box = geometry.boundingBox()
    return gpkg.Row(bytes(geometry.asWkb()), (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum()),
                    values)


def _is_legacy_set(shp: str, layer: str) -> bool:
    """True when ``shp`` (named like ours, written before sets were listed) has exactly the fields of
    schema layer ``layer``."""
    return has_shapefile_fields(layer, QgsVectorLayer(shp, "check", "ogr").fields().names())


def _read_sets(folder: str, bases: Sequence[str], crs: QgsCoordinateReferenceSystem) -> List[Row]:
    """The features of the sets ``bases``, full field names, geometries in ``crs``."""
    rows: List[Row] = []
    for base in bases:
        layer = QgsVectorLayer(os.path.join(folder, base + ".shp"), base, "ogr")
        if not layer.isValid():
            raise OutputError(tr("Cannot read {file}; nothing was changed.").format(file=base + ".shp"))
        transform = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance())
        for feature in layer.getFeatures():
            geometry = QgsGeometry(feature.geometry())
            if layer.crs() != crs:
                geometry.transform(transform)
            values = from_shapefile({n: _plain(feature[n]) for n in feature.fields().names()})
            rows.append((geometry, values))
    return rows


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
           crs: QgsCoordinateReferenceSystem, rows: Sequence[Tuple[QgsGeometry, Mapping[str, object]]]) -> None:
    """Write ``rows`` as layer ``layer_name`` of the new file ``file``."""
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = driver
    options.layerName = layer_name
    options.fileEncoding = "UTF-8"
    options.actionOnExistingFile = QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteFile
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
