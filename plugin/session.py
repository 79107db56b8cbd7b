"""The session GeoPackage: where the plugin's output layers live, so that closing QGIS (or a crash)
loses at most the answer in flight and reopening the project shows every question again.

Beside a saved project ``NAME.qgz`` it is ``NAME_earthgptx.gpkg``; for a project not saved yet it is
``session-YYYYmmdd-HHMMSS-XXXXXX.gpkg`` in the folder of *Settings > Session folder* (default
``<QGIS settings>/earthgptx/sessions``). Each output layer is a table of it (``prompts_point``,
``masks_polygon``, ...), created empty with the schema's fields, never overwriting a table that exists
(a layer removed from the project and needed again is the same table, its features kept).
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from typing import Dict, Optional

from qgis.core import QgsApplication, QgsProject, QgsVectorFileWriter, QgsVectorLayer

from ..model_backend.core.errors import OutputError
from ..model_backend.core.schema import new_id


def default_session_folder() -> str:
    return os.path.join(QgsApplication.qgisSettingsDirPath(), "earthgptx", "sessions")


class SessionStore:
    """The session GeoPackage of each project this QGIS session writes to."""

    def __init__(self, folder: str = "") -> None:
        self.folder = folder
        self._unsaved: Optional[str] = None
        self._paths: Dict[str, str] = {}

    def path(self, project: QgsProject) -> str:
        """The session GeoPackage of ``project`` (the same file for the whole QGIS session)."""
        name = project.absoluteFilePath()
        if not name:
            if self._unsaved is None:
                folder = self.folder or default_session_folder()
                try:
                    os.makedirs(folder, exist_ok=True)
                except OSError as exc:
                    raise OutputError(f"cannot make the session folder {folder}: {exc.strerror or exc}") from None
                self._unsaved = os.path.join(folder, f"session-{datetime.now():%Y%m%d-%H%M%S}-{new_id()[:6]}.gpkg")
            return self._unsaved
        return self._paths.setdefault(name, os.path.splitext(name)[0] + "_earthgptx.gpkg")

    def layer(self, project: QgsProject, template: QgsVectorLayer, table: str) -> QgsVectorLayer:
        """The session's table ``table`` as a layer: created from ``template`` (an empty memory layer with
        the fields, geometry type and CRS) when the GeoPackage does not hold it yet."""
        path = self.path(project)
        if table not in _tables(path):
            options = QgsVectorFileWriter.SaveVectorOptions()
            options.driverName, options.layerName = "GPKG", table
            options.actionOnExistingFile = (QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
                                            if os.path.exists(path) else
                                            QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteFile)
            error, message, _, _ = QgsVectorFileWriter.writeAsVectorFormatV3(template, path,
                                                                            project.transformContext(), options)
            if error != QgsVectorFileWriter.WriterError.NoError:
                raise OutputError(f"cannot write the session GeoPackage {path}: {message}")
        layer = QgsVectorLayer(f"{path}|layername={table}", template.name(), "ogr")
        if not layer.isValid():
            raise OutputError(f"cannot open the table {table} of the session GeoPackage {path}")
        return layer


def _tables(path: str) -> set:
    """The tables a GeoPackage lists (none for a missing file)."""
    if not os.path.exists(path):
        return set()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return {row[0] for row in db.execute("SELECT table_name FROM gpkg_contents")}
    except sqlite3.Error as exc:
        raise OutputError(f"the session file {path} is not a GeoPackage ({exc}): move it away") from None
