"""Georeferenced outputs of questions (DESIGN §4): ``prompts``, ``answers``, ``detections`` and (once
outlines are written) ``masks``, to a GeoPackage or to ESRI shapefiles (headless side: fiona, shapely).

- GeoPackage: one file, a layer each, full text. An append adds the features in one transaction on the
  existing file (``core.gpkg``): nothing else in it is touched, a kill loses only that append, and
  parallel writers wait for each other (``OutputBusyError`` after ``timeout_s``).
- Shapefile: one set per layer and geometry type (``NAME_prompts_point.shp``, ``NAME_answers.shp``,
  ``NAME_detections.shp``, ...; a shapefile holds one geometry type), field names cut to 10
  characters by ``SHAPEFILE_NAMES``, and text longer than 254 bytes split over continuation fields
  ``answer``, ``answer_2``, ... (``split_fields`` reports it). The output owns exactly the sets it wrote
  and replaces them as a set (``core.shapefile_sets``). Spaces at the ends of a text, which DBF cannot
  keep, are dropped and reported (``trimmed_fields``); text it cannot keep otherwise (a run of spaces
  longer than a field, more than ~60 KB) is refused before anything is written.

NUL characters and lone surrogates in text are written as ``\\uXXXX`` (``escaped_fields`` reports it).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import fiona
import shapely
from fiona.crs import CRS as FionaCRS
from pyproj import CRS
from pyproj.enums import WktVersion
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as shapely_transform

from ..core import gpkg
from ..core.errors import InvalidArgumentError, OutputError
from ..core.schema import (FIELDS, LAYERS, OPTIONAL_LAYERS, SHAPEFILE_NAMES, SHAPEFILE_TEXT_LIMIT, complete,
                           escape_unstorable, from_shapefile, has_shapefile_fields, part_name, shapefile_refusal,
                           split_text, text_parts, to_shapefile, trim_for_shapefile)
from ..core.shapefile_sets import ShapefileSets, remove_stale_temporary
from .crs import transformer

#: bytes written by the probe that checks an output folder before the work
PROBE_BYTES = 1 << 20
BUSY_TIMEOUT_S = 30.0


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
    masks: List[Feature] = field(default_factory=list)

    def layer(self, name: str) -> List[Feature]:
        return getattr(self, name)


@dataclass
class WriteReport:
    """``written``: features added per layer; ``files``: the GeoPackage or each set's ``.shp``;
    ``split_fields``: shapefile text continued over ``NAME_2``, ...; ``escaped_fields``: fields whose NUL or
    lone surrogates were written as ``\\uXXXX``; ``trimmed_fields``: shapefile fields (new values) whose
    spaces at the ends were dropped, which a shapefile cannot keep."""

    written: Dict[str, int]
    files: List[str]
    split_fields: List[str]
    escaped_fields: List[str] = field(default_factory=list)
    trimmed_fields: List[str] = field(default_factory=list)


def check_output(path: str) -> None:
    """Refuse, before any work, an output that ``write_record`` would refuse: another extension, a
    missing, read-only or full folder (a small probe file is written and removed), a folder in the
    file's place, an existing file that is not a GeoPackage or layers and shapefiles that are not ours."""
    _check_path(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, probe = tempfile.mkstemp(prefix=".earthgptx-probe-", dir=folder)
    except OSError as error:
        raise OutputError(f"cannot write in the output folder {folder}: {error.strerror}") from error
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        raise OutputError(f"cannot write in the output folder {folder}: {error.strerror}") from error
    finally:
        os.remove(probe)
    if path.lower().endswith(".gpkg"):
        if os.path.exists(path):
            gpkg.recover(path)
            _check_gpkg(path)
    else:
        with ShapefileSets(path, legacy=_is_legacy_set, timeout_s=BUSY_TIMEOUT_S) as sets:
            sets.check_free(sets.candidates())


def write_record(path: str, record: QuestionRecord, timeout_s: float = BUSY_TIMEOUT_S,
                 replacing: Sequence[str] = ()) -> WriteReport:
    """Append ``record`` to the GeoPackage or shapefile output ``path`` (created when missing).
    ``replacing`` (GeoPackage only): answer ids whose detections, written earlier by this program, are
    removed in the same transaction (a search rebuilding its merged detections), and their masks too
    when ``record`` carries masks (a search rebuilding its merged outlines)."""
    _check_path(path)
    if replacing and not path.lower().endswith(".gpkg"):
        raise InvalidArgumentError("replacing detections needs a GeoPackage output (.gpkg)")
    escaped: List[str] = []
    storable = QuestionRecord(crs=record.crs)
    for name in LAYERS:
        for f in record.layer(name):
            props, changed = escape_unstorable(complete(name, f.properties))
            storable.layer(name).append(Feature(f.geometry, props))
            escaped += [k for k in changed if k not in escaped]
    record = storable
    remove_stale_temporary(os.path.dirname(os.path.abspath(path)))
    if path.lower().endswith(".gpkg"):
        files, split, trimmed = _append_gpkg(path, record, timeout_s, replacing), [], []
    else:
        files, split, trimmed = _append_shapefiles(path, record, timeout_s)
    return WriteReport(written={name: len(record.layer(name)) for name in LAYERS}, files=files,
                       split_fields=split, escaped_fields=escaped, trimmed_fields=trimmed)


def read_layer(path: str, name: str, crs: Optional[CRS] = None) -> List[Feature]:
    """Features of layer ``name`` in an existing output (empty when there is none), with shapefile
    names and continuation fields mapped back to the full schema; geometries in ``crs`` when given
    (a GeoPackage layer is reprojected from its own), else as stored."""
    if path.lower().endswith(".gpkg"):
        gpkg.recover(path)
        if not os.path.exists(path) or name not in fiona.listlayers(path):
            return []
        with fiona.open(path, layer=name) as src:
            stored = CRS.from_wkt(src.crs_wkt) if crs is not None and src.crs_wkt else crs
            return [Feature(reproject(stored, crs, shape(f["geometry"])) if crs is not None else shape(f["geometry"]),
                            dict(f["properties"])) for f in src]
    with ShapefileSets(path, legacy=_is_legacy_set) as sets:
        return _read_sets(sets.folder, [b for b in sets.owned() if sets.layer_of(b) == name])


def _check_path(path: str) -> None:
    if os.path.splitext(path)[1].lower() not in (".gpkg", ".shp"):
        raise InvalidArgumentError(f"the output must end in .gpkg or .shp, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"the output folder {folder} does not exist")
    if os.path.isdir(path):
        raise InvalidArgumentError(f"the output {path} is a folder, not a file")


def _check_gpkg(path: str) -> None:
    """Refuse an existing ``path`` that is not a GeoPackage, or whose layers of our names are not ours."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(gpkg.SQLITE_MAGIC))
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except (OSError, sqlite3.Error) as error:
        raise OutputError(f"cannot read the output {path}: {error}") from error
    try:
        tables = ({row[0] for row in db.execute("SELECT name FROM sqlite_master")} if magic == gpkg.SQLITE_MAGIC
                  else None)
        if tables is None or (tables and "gpkg_contents" not in tables):
            raise OutputError(f"{path} exists and is not a GeoPackage: write to another file")
        for name in LAYERS:
            if name in tables:
                columns = {row[1] for row in db.execute(f'PRAGMA table_info("{name}")')}
                missing = [key for key, _ in FIELDS[name] if key not in columns]
                if missing:
                    raise OutputError(f"the layer {name!r} of {path} was not written by EarthGPT-X (no field "
                                      f"{missing[0]!r}): write to another GeoPackage")
    except sqlite3.Error as error:
        raise OutputError(f"{path} exists and is not a GeoPackage ({error}): write to another file") from error
    finally:
        db.close()


def _spatial_ref(crs: CRS) -> gpkg.SpatialRef:
    authority = crs.to_authority(min_confidence=100)
    wkt = crs.to_wkt(WktVersion.WKT1_GDAL) or crs.to_wkt()
    return gpkg.SpatialRef(name=crs.name, wkt=wkt, authority=authority[0] if authority else None,
                           code=int(authority[1]) if authority and authority[1].isdigit() else None)


def reproject(crs: CRS, target: CRS, geometry: BaseGeometry) -> BaseGeometry:
    """``geometry`` (in ``crs``) in ``target``, vertex by vertex."""
    if crs == target:
        return geometry
    to_out = transformer(crs, target)
    return shapely_transform(lambda x, y, z=None: to_out(x, y), geometry)


def _append_gpkg(path: str, record: QuestionRecord, timeout_s: float, replacing: Sequence[str] = ()) -> List[str]:
    with gpkg.appending(path, timeout_s) as out:
        for name in LAYERS:
            existing = out.layer_crs(name)
            if existing is None and name in OPTIONAL_LAYERS and not record.layer(name):
                continue
            target = CRS.from_wkt(existing) if existing else record.crs
            out.ensure_layer(name, FIELDS[name], _spatial_ref(target))
            if replacing and (name == "detections" or (name == "masks" and record.masks)):
                out.delete(name, "answer_id", replacing)
            rows = []
            for f in record.layer(name):
                geometry = reproject(record.crs, target, f.geometry)
                rows.append(gpkg.Row(shapely.to_wkb(geometry, byte_order=1, output_dimension=2),
                                     None if geometry.is_empty else geometry.bounds, f.properties))
            out.insert(name, rows)
    return [path]


def _is_legacy_set(shp: str, layer: str) -> bool:
    """True when ``shp`` (a set named like ours, written before sets were listed) has exactly the fields
    of schema layer ``layer``."""
    try:
        with fiona.open(shp) as src:
            return has_shapefile_fields(layer, list(src.schema["properties"]))
    except fiona.errors.FionaError:
        return False


def _read_sets(folder: str, bases: List[str]) -> List[Feature]:
    out: List[Feature] = []
    for base in bases:
        with fiona.open(os.path.join(folder, base + ".shp")) as src:
            out += [Feature(shape(f["geometry"]), from_shapefile(dict(f["properties"]))) for f in src]
    return out


def _existing_crs(folder: str, bases: List[str]) -> Optional[CRS]:
    for base in bases:
        with fiona.open(os.path.join(folder, base + ".shp")) as src:
            if src.crs_wkt:
                return CRS.from_wkt(src.crs_wkt)
    return None


def _geometry_family(geom: BaseGeometry) -> str:
    return {"Point": "point", "MultiPoint": "point", "LineString": "line", "MultiLineString": "line"}.get(
        geom.geom_type, "polygon")


def _append_shapefiles(path: str, record: QuestionRecord, timeout_s: float) -> Tuple[List[str], List[str], List[str]]:
    """Read the sets this output owns, add ``record``, write every set beside and swap them in. Returns
    the ``.shp`` files, the text fields continued and the fields whose new values lost end spaces."""
    with ShapefileSets(path, legacy=_is_legacy_set, timeout_s=timeout_s) as sets:
        owned = sets.owned()
        crs = _existing_crs(sets.folder, owned) or record.crs
        plan: List[Tuple[str, str, List[Feature], List[Dict[str, object]], Dict[str, int]]] = []
        split: List[str] = []
        trimmed: List[str] = []
        new: set = set()
        for name in LAYERS:
            feats = _read_sets(sets.folder, [b for b in owned if sets.layer_of(b) == name])
            added = [Feature(reproject(record.crs, crs, f.geometry), f.properties) for f in record.layer(name)]
            feats += added
            new.update(id(f) for f in added)
            groups: Dict[str, List[Feature]] = {}
            for f in feats:
                groups.setdefault(_geometry_family(f.geometry), []).append(f)
            single = len(groups) == 1 and name != "prompts"
            for family, members in groups.items():
                base = f"{sets.stem}_{name}" if single else f"{sets.stem}_{name}_{family}"
                props = []
                for f in members:
                    row, cut = trim_for_shapefile(to_shapefile(complete(name, f.properties)))
                    props.append(row)
                    trimmed += [k for k in cut if k not in trimmed and id(f) in new]
                parts = text_parts(props)
                refusal = shapefile_refusal(name, props, parts)
                if refusal:
                    raise OutputError(f"cannot write {base}.shp: {refusal}; write a GeoPackage (.gpkg) instead. "
                                      "Nothing was written")
                split += [k for k, n in parts.items() if n > 1 and k not in split]
                plan.append((base, family, members, props, parts))
        sets.check_free([base for base, *_ in plan])
        for base, family, members, props, parts in plan:
            _write_set(os.path.join(sets.staging(), base + ".shp"), _schema(sets.layer_of(base), parts, family),
                       crs, members, [split_text(p, parts) for p in props])
        return sets.commit([base for base, *_ in plan]), split, trimmed


def _schema(layer: str, parts: Dict[str, int], family: str) -> dict:
    """The fiona schema of one set of schema layer ``layer``, text continued over ``parts`` fields."""
    props = {}
    for key, kind in FIELDS[layer]:
        short = SHAPEFILE_NAMES.get(key, key)
        if kind == "str":
            for k in range(parts.get(short, 1)):
                props[part_name(short, k)] = f"str:{SHAPEFILE_TEXT_LIMIT}"
        else:
            props[short] = kind
    return {"geometry": {"point": "Point", "line": "LineString", "polygon": "Polygon"}[family], "properties": props}


def _write_set(file: str, schema: dict, crs: CRS, feats: List[Feature], props: List[Dict[str, object]]) -> None:
    try:
        with fiona.open(file, "w", driver="ESRI Shapefile", schema=schema, crs=FionaCRS.from_wkt(crs.to_wkt()),
                        encoding="utf-8") as dst:
            for f, p in zip(feats, props):
                dst.write({"geometry": mapping(f.geometry), "properties": p})
    except (OSError, fiona.errors.FionaError) as error:
        raise OutputError(f"cannot write {os.path.basename(file)}: {error}; nothing was replaced") from error
