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
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence, Tuple

import fiona
from fiona.crs import CRS as FionaCRS
from pyproj import CRS
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as shapely_transform

from .crs import transformer
from .errors import InvalidArgumentError

SHAPEFILE_TEXT_LIMIT = 254
LAYERS = ("prompts", "answers", "detections")
FIELDS: Dict[str, List[Tuple[str, str]]] = {
    "prompts": [("question_id", "str"), ("prompt_index", "int"), ("kind", "str")],
    "answers": [("answer_id", "str"), ("question_id", "str"), ("question", "str"), ("answer", "str"),
                ("task", "str"), ("modality", "str"), ("model", "str"), ("backend", "str"),
                ("quantization", "str"), ("raster_source", "str"), ("chip_resolution", "float"),
                ("finish_reason", "str"), ("created", "str")],
    "detections": [("answer_id", "str"), ("label", "str"), ("rank", "int"), ("kind", "str")],
}
#: GeoPackage field name -> shapefile field name (at most 10 characters)
SHAPEFILE_NAMES = {"question_id": "question_i", "prompt_index": "prompt_idx", "quantization": "quantizatn",
                   "raster_source": "raster_src", "chip_resolution": "chip_res", "finish_reason": "finish"}


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


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


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
                out.append(Feature(shape(f["geometry"]), _from_shapefile(props) if layer is None else props))
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
            dst.writerecords({"geometry": mapping(f.geometry), "properties": _complete(name, f.properties)}
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
            props = [_to_shapefile(_complete(name, f.properties)) for f in feats]
            parts = _text_parts(props)
            split += [k for k, n in parts.items() if n > 1 and k not in split]
            schema_props = {}
            for key, kind in FIELDS[name]:
                short = SHAPEFILE_NAMES.get(key, key)
                if kind == "str":
                    for k in range(parts.get(short, 1)):
                        schema_props[_part_name(short, k)] = f"str:{SHAPEFILE_TEXT_LIMIT}"
                else:
                    schema_props[short] = kind
            base = f"{stem}_{name}" if single else f"{stem}_{name}_{fam}"
            geom_type = {"point": "Point", "line": "LineString", "polygon": "Polygon"}[fam]
            file = os.path.join(tmp, base + ".shp")
            with fiona.open(file, "w", driver="ESRI Shapefile", schema={"geometry": geom_type, "properties": schema_props},
                            crs=FionaCRS.from_wkt(crs.to_wkt()), encoding="utf-8") as dst:
                for f, p in zip(feats, props):
                    dst.write({"geometry": mapping(f.geometry), "properties": _split_text(p, parts)})
            files += [os.path.join(tmp, base + e) for e in (".shp", ".shx", ".dbf", ".prj", ".cpg")
                      if os.path.exists(os.path.join(tmp, base + e))]
    return files, split


def _part_name(short: str, k: int) -> str:
    """Continuation field names: answer, answer_2, answer_3, ... (at most 10 characters)."""
    if k == 0:
        return short
    suffix = f"_{k + 1}"
    return short[:10 - len(suffix)] + suffix


def _complete(name: str, props: Dict[str, object]) -> Dict[str, object]:
    return {key: props.get(key) for key, _ in FIELDS[name]}


def _to_shapefile(props: Dict[str, object]) -> Dict[str, object]:
    return {SHAPEFILE_NAMES.get(k, k): v for k, v in props.items()}


def _text_parts(rows: Sequence[Dict[str, object]]) -> Dict[str, int]:
    """Number of 254-character parts each text field needs over ``rows``."""
    parts: Dict[str, int] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, str):
                parts[key] = max(parts.get(key, 1), -(-len(value.encode("utf-8")) // SHAPEFILE_TEXT_LIMIT) or 1)
    return parts


def _split_text(row: Dict[str, object], parts: Dict[str, int]) -> Dict[str, object]:
    out: Dict[str, object] = {}
    for key, value in row.items():
        if isinstance(value, str) and parts.get(key, 1) > 1:
            chunks = _utf8_chunks(value, SHAPEFILE_TEXT_LIMIT)
            for k in range(parts[key]):
                out[_part_name(key, k)] = chunks[k] if k < len(chunks) else None
        else:
            out[key] = value
    return out


def _utf8_chunks(text: str, limit: int) -> List[str]:
    """Split ``text`` into pieces of at most ``limit`` UTF-8 bytes, never inside a character and,
    where possible, never beside white space (DBF pads text with spaces and GDAL strips spaces at
    both ends of a value, so a piece that starts or ends with one would lose it)."""
    chunks: List[str] = []
    rest = text
    while rest:
        end, size = 0, 0
        while end < len(rest) and size + len(rest[end].encode("utf-8")) <= limit:
            size += len(rest[end].encode("utf-8"))
            end += 1
        if end < len(rest):
            cut = end
            while cut > 0 and (rest[cut - 1].isspace() or rest[cut].isspace()):
                cut -= 1
            end = cut or end
        chunks.append(rest[:end])
        rest = rest[end:]
    return chunks or [""]


def _from_shapefile(props: Dict[str, object]) -> Dict[str, object]:
    """Shapefile fields back to full names, continuation fields joined."""
    long_names = {v: k for k, v in SHAPEFILE_NAMES.items()}
    out: Dict[str, object] = {}
    for layer_fields in FIELDS.values():
        for key, kind in layer_fields:
            short = SHAPEFILE_NAMES.get(key, key)
            if short not in props:
                continue
            if kind == "str":
                pieces, k = [], 0
                while _part_name(short, k) in props:
                    pieces.append(props[_part_name(short, k)] or "")
                    k += 1
                out[long_names.get(short, short)] = "".join(pieces) if any(pieces) else props[short]
            else:
                out[long_names.get(short, short)] = props[short]
    return out


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
