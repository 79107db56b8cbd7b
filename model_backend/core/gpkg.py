"""Adding features to a GeoPackage (OGC 12-128, 1.2) in one SQLite transaction, standard library only,
so that the headless writer and the QGIS export share one way of writing.

Only ever adds, except what it wrote itself and replaces (``delete``): ``appending(path)`` opens ``BEGIN IMMEDIATE`` on the file itself, creates what is
missing (the file's base tables, a layer with its spatial index and triggers as GDAL makes them) and
inserts rows; nothing else in the file is rewritten, so an append costs the same whatever the file
holds, and other layers are never touched. SQLite serialises writers: one that waits longer than
``timeout_s`` for the lock gets ``OutputBusyError``. A failure or a kill at any moment leaves the file as
it was before the transaction (SQLite's rollback journal, replayed by the next opener).

Geometries come as ISO WKB (2D) with their bounds, in the layer's CRS: the caller reprojects to
``layer_crs(name)`` first.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, Mapping, Optional, Sequence, Tuple

from .errors import OutputBusyError, OutputError

#: (minx, miny, maxx, maxy) in the layer's CRS
Bounds = Tuple[float, float, float, float]
SQLITE_MAGIC = b"SQLite format 3\x00"
_APPLICATION_ID = 0x47504B47  # "GPKG"
_USER_VERSION = 10200
_SQL_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL"}
_COMPATIBLE = {"str": ("TEXT",), "int": ("INTEGER", "INT", "MEDIUMINT", "SMALLINT", "TINYINT", "BOOLEAN"),
               "float": ("REAL", "DOUBLE", "FLOAT")}
_WGS84_WKT = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
              'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",'
              '0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
              'AUTHORITY["EPSG","4326"]]')


@dataclass(frozen=True)
class Row:
    """One feature: ISO WKB (2D), its bounds (``None`` for an empty geometry) and its field values."""

    wkb: bytes
    bounds: Optional[Bounds]
    values: Mapping[str, object]


@dataclass(frozen=True)
class SpatialRef:
    """A CRS as the GeoPackage records it: WKT, and its authority code where it has one."""

    name: str
    wkt: str
    authority: Optional[str] = None
    code: Optional[int] = None


@dataclass
class _Layer:
    table: str
    column: str
    srs_id: int
    bounds: Optional[Bounds] = None


class GeoPackage:
    """A GeoPackage inside an open append transaction (see ``appending``)."""

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._db = connection
        self._path = path
        self._layers: Dict[str, _Layer] = {}

    def layer_crs(self, name: str) -> Optional[str]:
        """The WKT of layer ``name``'s CRS; ``None`` when the file has no such layer."""
        layer = self._existing(name)
        if layer is None:
            return None
        found = self._db.execute("SELECT definition FROM gpkg_spatial_ref_sys WHERE srs_id = ?",
                                 (layer.srs_id,)).fetchone()
        if layer.srs_id <= 0 or found is None or found[0].strip().lower() == "undefined":
            raise OutputError(f"the layer {name!r} of {self._path} has no coordinate reference system: "
                              "write to another GeoPackage")
        return found[0]

    def ensure_layer(self, name: str, fields: Sequence[Tuple[str, str]], srs: SpatialRef) -> None:
        """Make layer ``name`` ready for ``insert``: an existing one must hold ``fields`` (name, kind
        "str" | "int" | "float"), a missing one is created in ``srs``."""
        layer = self._existing(name)
        if layer is None:
            self._layers[name] = self._create(name, fields, srs)
            return
        columns = {row[1].lower(): (row[2] or "").upper() for row in
                   self._db.execute(f"PRAGMA table_info({_quote(layer.table)})")}
        for key, kind in fields:
            if key.lower() not in columns or not columns[key.lower()].startswith(_COMPATIBLE[kind]):
                raise OutputError(f"the layer {name!r} of {self._path} was not written by EarthGPT-X (no "
                                  f"{kind} field {key!r}): write to another GeoPackage or layer name")
        self._layers[name] = layer

    def insert(self, name: str, rows: Iterable[Row], unique: Sequence[str] = ()) -> int:
        """Add ``rows`` to layer ``name`` (after ``ensure_layer``); with ``unique`` field names, rows whose
        values of those fields are already in the layer are left out. Returns the number added."""
        layer = self._layers[name]
        seen = set(self._db.execute(f"SELECT {', '.join(map(_quote, unique))} FROM {_quote(layer.table)}")
                   ) if unique else set()
        added = 0
        for row in rows:
            if unique:
                key = tuple(row.values.get(k) for k in unique)
                if key in seen:
                    continue
                seen.add(key)
            columns = [layer.column] + list(row.values)
            try:
                self._db.execute(f"INSERT INTO {_quote(layer.table)} ({', '.join(map(_quote, columns))}) "
                                 f"VALUES ({', '.join('?' * len(columns))})",
                                 [_blob(row.wkb, row.bounds, layer.srs_id)] + list(row.values.values()))
            except UnicodeEncodeError as error:
                raise OutputError(f"a text value cannot be stored ({error.reason}); nothing was written") from error
            added += 1
            if row.bounds is not None:
                layer.bounds = row.bounds if layer.bounds is None else _union(layer.bounds, row.bounds)
        return added

    def delete(self, name: str, field: str, values: Iterable[object]) -> int:
        """Remove the features of layer ``name`` (after ``ensure_layer``) whose ``field`` is one of
        ``values``: for rows this program wrote and now replaces (a search's merged detections). The
        spatial index and feature count follow through their triggers. Returns the number removed."""
        layer = self._layers[name]
        values = list(dict.fromkeys(values))
        removed = 0
        for at in range(0, len(values), 500):
            chunk = values[at:at + 500]
            removed += self._db.execute(f"DELETE FROM {_quote(layer.table)} WHERE {_quote(field)} IN "
                                        f"({', '.join('?' * len(chunk))})", chunk).rowcount
        if removed:
            self._db.execute("UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                             "WHERE lower(table_name) = lower(?)", (layer.table,))
        return removed

    def _existing(self, name: str) -> Optional[_Layer]:
        if name in self._layers:
            return self._layers[name]
        found = self._db.execute("SELECT c.table_name, c.data_type, g.column_name, g.srs_id FROM gpkg_contents c "
                                 "LEFT JOIN gpkg_geometry_columns g ON lower(g.table_name) = lower(c.table_name) "
                                 "WHERE lower(c.table_name) = lower(?)", (name,)).fetchone()
        if found is None:
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE lower(name) = lower(?)", (name,)).fetchone():
                raise OutputError(f"{self._path} already has a table {name!r} that is not a vector layer: "
                                  "write to another GeoPackage")
            return None
        if found[1] != "features" or found[2] is None:
            raise OutputError(f"the layer {name!r} of {self._path} is not a vector layer ({found[1]}): "
                              "write to another GeoPackage")
        return _Layer(table=found[0], column=found[2], srs_id=int(found[3]))

    def _create(self, name: str, fields: Sequence[Tuple[str, str]], srs: SpatialRef) -> _Layer:
        srs_id = self._srs_id(srs)
        table, rtree = _quote(name), _quote(f"rtree_{name}_geom")
        columns = "".join(f", {_quote(key)} {_SQL_TYPES[kind]}" for key, kind in fields)
        db = self._db
        db.execute(f"CREATE TABLE {table} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom GEOMETRY{columns})")
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) "
                   "VALUES (?, 'features', ?, '', ?)", (name, name, srs_id))
        db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'GEOMETRY', ?, 0, 0)", (name, srs_id))
        if _create_rtree(db, rtree):
            envelope = "NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom), ST_MinY(NEW.geom), ST_MaxY(NEW.geom)"
            filled, empty = "NEW.geom NOT NULL AND NOT ST_IsEmpty(NEW.geom)", "NEW.geom IS NULL OR ST_IsEmpty(NEW.geom)"
            db.execute("CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT, column_name TEXT, extension_name "
                       "TEXT NOT NULL, definition TEXT NOT NULL, scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE "
                       "(table_name, column_name, extension_name))")
            db.execute("INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', "
                       "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')", (name,))
            triggers = {
                "insert": f"AFTER INSERT ON {table} WHEN ({filled}) BEGIN INSERT OR REPLACE INTO {rtree} VALUES "
                          f"({envelope}); END",
                "update1": f"AFTER UPDATE OF geom ON {table} WHEN OLD.fid = NEW.fid AND ({filled}) BEGIN INSERT OR "
                           f"REPLACE INTO {rtree} VALUES ({envelope}); END",
                "update2": f"AFTER UPDATE OF geom ON {table} WHEN OLD.fid = NEW.fid AND ({empty}) BEGIN DELETE FROM "
                           f"{rtree} WHERE id = OLD.fid; END",
                "update3": f"AFTER UPDATE ON {table} WHEN OLD.fid != NEW.fid AND ({filled}) BEGIN DELETE FROM "
                           f"{rtree} WHERE id = OLD.fid; INSERT OR REPLACE INTO {rtree} VALUES ({envelope}); END",
                "update4": f"AFTER UPDATE ON {table} WHEN OLD.fid != NEW.fid AND ({empty}) BEGIN DELETE FROM "
                           f"{rtree} WHERE id IN (OLD.fid, NEW.fid); END",
                "delete": f"AFTER DELETE ON {table} WHEN OLD.geom NOT NULL BEGIN DELETE FROM {rtree} "
                          "WHERE id = OLD.fid; END",
            }
            for suffix, body in triggers.items():
                db.execute(f"CREATE TRIGGER {_quote(f'rtree_{name}_geom_{suffix}')} {body}")
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_ogr_contents'").fetchone():
            # GDAL's feature count cache: kept true by the same triggers GDAL makes
            db.execute("INSERT INTO gpkg_ogr_contents (table_name, feature_count) VALUES (?, 0)", (name,))
            for event, sign in (("insert", "+"), ("delete", "-")):
                db.execute(f"CREATE TRIGGER {_quote(f'trigger_{event}_feature_count_{name}')} AFTER {event.upper()} "
                           f"ON {table} BEGIN UPDATE gpkg_ogr_contents SET feature_count = feature_count {sign} 1 "
                           f"WHERE lower(table_name) = lower({_literal(name)}); END")
        return _Layer(table=name, column="geom", srs_id=srs_id)

    def _srs_id(self, srs: SpatialRef) -> int:
        """The id of ``srs`` in gpkg_spatial_ref_sys, added when the file has no entry for it."""
        db = self._db
        found = None
        if srs.authority and srs.code is not None:
            found = db.execute("SELECT srs_id FROM gpkg_spatial_ref_sys WHERE upper(organization) = upper(?) AND "
                               "organization_coordsys_id = ?", (srs.authority, srs.code)).fetchone()
        found = found or db.execute("SELECT srs_id FROM gpkg_spatial_ref_sys WHERE definition = ?",
                                    (srs.wkt,)).fetchone()
        if found:
            return int(found[0])
        taken = {row[0] for row in db.execute("SELECT srs_id FROM gpkg_spatial_ref_sys")}
        srs_id = srs.code if srs.authority and srs.code is not None and srs.code > 0 and srs.code not in taken \
            else max(max(taken, default=0) + 1, 100000)
        db.execute("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, NULL)",
                   (srs.name, srs_id, srs.authority or "NONE", srs.code if srs.authority else srs_id, srs.wkt))
        return srs_id

    def _finish(self) -> None:
        """Extents and change times of the layers written to (part of the transaction)."""
        for layer in self._layers.values():
            if layer.bounds is None:
                continue
            x0, y0, x1, y1 = layer.bounds
            self._db.execute("UPDATE gpkg_contents SET min_x = min(coalesce(min_x, ?), ?), min_y = min(coalesce(min_y, "
                             "?), ?), max_x = max(coalesce(max_x, ?), ?), max_y = max(coalesce(max_y, ?), ?), "
                             "last_change = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE lower(table_name) = lower(?)",
                             (x0, x0, y0, y0, x1, x1, y1, y1, layer.table))


@contextmanager
def appending(path: str, timeout_s: float = 30.0) -> Iterator[GeoPackage]:
    """An append transaction on the GeoPackage ``path`` (created when missing or empty), committed when
    the block ends and rolled back when it raises. Raises ``OutputError`` for a
    path that is not a GeoPackage or cannot be written, ``OutputBusyError`` after ``timeout_s`` seconds of
    waiting for another writer."""
    if os.path.isdir(path):
        raise OutputError(f"{path} is a folder, not a GeoPackage")
    if os.path.exists(path) and os.path.getsize(path) > 0:  # an empty file is what another writer just created
        _check_sqlite(path)
    try:
        db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
    except sqlite3.Error as error:
        raise _output_error(error, path) from error
    try:
        for name, test in (("ST_MinX", 0), ("ST_MaxX", 1), ("ST_MinY", 2), ("ST_MaxY", 3)):
            db.create_function(name, 1, lambda blob, i=test: _envelope_part(blob, i), deterministic=True)
        db.create_function("ST_IsEmpty", 1, _is_empty, deterministic=True)
        _execute(db, "BEGIN IMMEDIATE", path, timeout_s)
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                _create_base_tables(db)
            elif "gpkg_contents" not in tables or "gpkg_geometry_columns" not in tables:
                raise OutputError(f"{path} is an SQLite file but not a GeoPackage: write to another file")
            gpkg = GeoPackage(db, path)
            yield gpkg
            gpkg._finish()
            _execute(db, "COMMIT", path, timeout_s)
        except BaseException:
            db.execute("ROLLBACK") if db.in_transaction else None
            raise
    except sqlite3.Error as error:
        raise _output_error(error, path) from error
    finally:
        db.close()


def recover(path: str) -> None:
    """Roll back what a writer killed mid-transaction left in its journal (``path-journal``), so that
    readers opening ``path`` read-only (GDAL, QGIS) can open it; nothing when there is none or the file
    cannot be written."""
    if not os.path.exists(path + "-journal"):
        return
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5.0)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        pass


def _check_sqlite(path: str) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise OutputError(f"cannot read {path}: {error.strerror}") from error
    if head != SQLITE_MAGIC:
        raise OutputError(f"{path} exists and is not a GeoPackage: write to another file")


def _execute(db: sqlite3.Connection, sql: str, path: str, timeout_s: float) -> None:
    try:
        db.execute(sql)
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            raise OutputBusyError(f"output busy: another program kept {path} locked for more than "
                                  f"{timeout_s:g} s; nothing was written, try again") from error
        raise


def _output_error(error: sqlite3.Error, path: str) -> OutputError:
    text = str(error)
    if isinstance(error, sqlite3.DatabaseError) and "not a database" in text:
        return OutputError(f"{path} exists and is not a GeoPackage: write to another file")
    if "full" in text:
        return OutputError(f"no space left to write {path}; nothing was written")
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return OutputError(f"cannot write {path} (read-only file or folder); nothing was written")
    return OutputError(f"cannot write {path}: {text}; nothing was written")


def _create_base_tables(db: sqlite3.Connection) -> None:
    """The tables every GeoPackage has, in a file that has none yet."""
    db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {_USER_VERSION}")
    db.execute("CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY, "
               "organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, "
               "description TEXT)")
    db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", [
        ("Undefined Cartesian SRS", -1, "NONE", -1, "undefined", "undefined Cartesian coordinate reference system"),
        ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
        ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84_WKT, "longitude/latitude coordinates in decimal degrees")])
    db.execute("CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, "
               "identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT "
               "(strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, "
               "srs_id INTEGER, CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES "
               "gpkg_spatial_ref_sys(srs_id))")
    db.execute("CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
               "geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, "
               "CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name), CONSTRAINT uk_gc_table_name UNIQUE "
               "(table_name), CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name), "
               "CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))")


def _create_rtree(db: sqlite3.Connection, rtree: str) -> bool:
    """Create the spatial index table ``rtree`` (quoted); False where this SQLite has no R*Tree module
    (the layer then has no spatial index, which GeoPackage allows)."""
    try:
        db.execute(f"CREATE VIRTUAL TABLE {rtree} USING rtree(id, minx, maxx, miny, maxy)")
    except sqlite3.OperationalError as error:
        if "no such module" in str(error):
            return False
        raise
    return True


def _blob(wkb: bytes, bounds: Optional[Bounds], srs_id: int) -> bytes:
    """A GeoPackage geometry: header (magic, version 0, flags: little endian, xy envelope or empty),
    then the WKB."""
    if bounds is None or not all(math.isfinite(v) for v in bounds):
        return struct.pack("<2sBBi", b"GP", 0, 0b00010001, srs_id) + wkb
    x0, y0, x1, y1 = bounds
    return struct.pack("<2sBBi4d", b"GP", 0, 0b00000011, srs_id, x0, x1, y0, y1) + wkb


def _envelope_part(blob: Optional[bytes], index: int) -> Optional[float]:
    """minx, maxx, miny or maxy (``index`` 0..3) of a geometry written by ``_blob``."""
    if not blob or len(blob) < 40 or blob[:2] != b"GP" or (blob[3] >> 1) & 0b111 == 0:
        return None
    return struct.unpack_from("<d" if blob[3] & 1 else ">d", blob, 8 + 8 * index)[0]


def _is_empty(blob: Optional[bytes]) -> int:
    return int(bool(blob) and len(blob) >= 4 and bool(blob[3] & 0b00010000))


def _union(a: Bounds, b: Bounds) -> Bounds:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
