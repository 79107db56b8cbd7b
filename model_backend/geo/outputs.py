"""Georeferenced outputs of questions (DESIGN §4): ``prompts``, ``answers`` and ``detections``
written to a GeoPackage or to ESRI shapefiles (headless side: fiona, shapely).

- GeoPackage: one file, three layers, full text.
- Shapefile: one file per layer and geometry type (``NAME_prompts_point.shp``, ``NAME_answers.shp``,
  ``NAME_detections.shp``, ...; a shapefile holds one geometry type), field names cut to 10
  characters by ``SHAPEFILE_NAMES``, and text longer than 254 characters split over continuation
  fields ``answer``, ``answer_2``, ... so nothing is truncated (``split_fields`` reports it).

Writing appends without losing anything: the existing output is read, the new features added, and the
whole written to temporary files that replace the old ones only once complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import fiona
from fiona.crs import CRS as FionaCRS
from pyproj import CRS
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as shapely_transform

from ..core.errors import InvalidArgumentError
from ..core.schema import (FIELDS, LAYERS, SHAPEFILE_NAMES, SHAPEFILE_TEXT_LIMIT, complete, from_shapefile, part_name,
                           split_text, text_parts, to_shapefile)
from .crs import transformer


@dataclass
class Feature:
    geometry: BaseGeometry
    properties: Dict[str, object]


@dataclass
class QuestionRecord:
    """Everything one question adds to the output, geometries in ``crs``."""

    crs: CRS
    prompts: List[Feature] = field(default_factory=list)
    answers: List[Feature] = field(default_factory=list)
    detections: List[Feature] = field(default_factory=list)

    def layer(self, name: str) -> List[Feature]:
        return getattr(self, name)


@dataclass
class WriteReport:
    written: Dict[str, int]
    files: List[str]
    split_fields: List[str]


def write_record(path: str, record: QuestionRecord) -> WriteReport:
    """Append ``record`` to the GeoPackage or shapefile set ``path`` (created when missing)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".gpkg", ".shp"):
        raise InvalidArgumentError(f"the output must end in .gpkg or .shp, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"the output folder {folder} does not exist")
    layers = {name: read_layer(path, name) for name in LAYERS}
    crs = _existing_crs(path) or record.crs
    to_out = transformer(record.crs, crs)
    for name in LAYERS:
        layers[name] += [Feature(shapely_transform(lambda x, y, z=None: to_out(x, y), f.geometry), f.properties)
                         for f in record.layer(name)]
    tmp = tempfile.mkdtemp(prefix=".earthgptx-", dir=folder)
    try:
        if ext == ".gpkg":
            files, split = _write_gpkg(os.path.join(tmp, os.path.basename(path)), layers, crs), []
        else:
            files, split = _write_shapefiles(tmp, _stem(path), layers, crs)
        final = [os.path.join(folder, os.path.basename(f)) for f in files]
        for src, dst in zip(files, final):
            os.replace(src, dst)
        if ext == ".shp":
            _remove_stale_shapefiles(path, keep=final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    written = {name: len(record.layer(name)) for name in LAYERS}
    return WriteReport(written=written, files=sorted({f for f in final if not f.endswith((".shx", ".dbf", ".prj", ".cpg"))}),
                       split_fields=split)


def read_layer(path: str, name: str) -> List[Feature]:
    """Features of layer ``name`` in an existing output (empty when there is none), with shapefile
    names and continuation fields mapped back to the full schema."""
    out: List[Feature] = []
    for file, layer in _sources(path, name):
        with fiona.open(file, layer=layer) as src:
            for f in src:
                props = dict(f["properties"])
                out.append(Feature(shape(f["geometry"]), from_shapefile(props) if layer is None else props))
    return out


def _sources(path: str, name: str) -> List[Tuple[str, Optional[str]]]:
    if path.lower().endswith(".gpkg"):
        return [(path, name)] if os.path.exists(path) and name in fiona.listlayers(path) else []
    folder, stem = os.path.dirname(os.path.abspath(path)), _stem(path)
    return [(os.path.join(folder, f), None) for f in sorted(os.listdir(folder))
            if f.startswith(f"{stem}_{name}") and f.endswith(".shp")]


def _existing_crs(path: str) -> Optional[CRS]:
    for name in LAYERS:
        for file, layer in _sources(path, name):
            with fiona.open(file, layer=layer) as src:
                if src.crs_wkt:
                    return CRS.from_wkt(src.crs_wkt)
    return None


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _geometry_family(geom: BaseGeometry) -> str:
    return {"Point": "point", "MultiPoint": "point", "LineString": "line", "MultiLineString": "line"}.get(
        geom.geom_type, "polygon")


def _write_gpkg(file: str, layers: Dict[str, List[Feature]], crs: CRS) -> List[str]:
    for name in LAYERS:
        schema = {"geometry": "Unknown", "properties": dict(FIELDS[name])}
        with fiona.open(file, "w", driver="GPKG", layer=name, schema=schema, crs=FionaCRS.from_wkt(crs.to_wkt())) as dst:
            dst.writerecords({"geometry": mapping(f.geometry), "properties": complete(name, f.properties)}
                             for f in layers[name])
    return [file]


def _write_shapefiles(tmp: str, stem: str, layers: Dict[str, List[Feature]], crs: CRS) -> Tuple[List[str], List[str]]:
    files: List[str] = []
    split: List[str] = []
    for name in LAYERS:
        groups: Dict[str, List[Feature]] = {}
        for f in layers[name]:
            groups.setdefault(_geometry_family(f.geometry), []).append(f)
        single = len(groups) == 1 and name != "prompts"
        for fam, feats in groups.items():
            props = [to_shapefile(complete(name, f.properties)) for f in feats]
            parts = text_parts(props)
            split += [k for k, n in parts.items() if n > 1 and k not in split]
            schema_props = {}
            for key, kind in FIELDS[name]:
                short = SHAPEFILE_NAMES.get(key, key)
                if kind == "str":
                    for k in range(parts.get(short, 1)):
                        schema_props[part_name(short, k)] = f"str:{SHAPEFILE_TEXT_LIMIT}"
                else:
                    schema_props[short] = kind
            base = f"{stem}_{name}" if single else f"{stem}_{name}_{fam}"
            geom_type = {"point": "Point", "line": "LineString", "polygon": "Polygon"}[fam]
            file = os.path.join(tmp, base + ".shp")
            with fiona.open(file, "w", driver="ESRI Shapefile", schema={"geometry": geom_type, "properties": schema_props},
                            crs=FionaCRS.from_wkt(crs.to_wkt()), encoding="utf-8") as dst:
                for f, p in zip(feats, props):
                    dst.write({"geometry": mapping(f.geometry), "properties": split_text(p, parts)})
            files += [os.path.join(tmp, base + e) for e in (".shp", ".shx", ".dbf", ".prj", ".cpg")
                      if os.path.exists(os.path.join(tmp, base + e))]
    return files, split


def _remove_stale_shapefiles(path: str, keep: List[str]) -> None:
    """Shapefile sets of this output that the new write does not contain any more (a layer that
    changed from one geometry type to several)."""
    keep_bases = {os.path.splitext(k)[0] for k in keep}
    for name in LAYERS:
        for file, _ in _sources(path, name):
            base = os.path.splitext(file)[0]
            if base not in keep_bases:
                for e in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
                    if os.path.exists(base + e):
                        os.remove(base + e)
