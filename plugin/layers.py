"""The session's output layers in QGIS (DESIGN §4): ``prompts``, ``answers``, ``detections`` and ``masks``
in one layer-tree group "EarthGPT-X", styled and labelled, each a table of the session GeoPackage
(``session.SessionStore``): every feature is on disk as soon as it is added, and reopening the project
shows them, styled (the style is saved in the GeoPackage). Without a session store they are memory
layers. Outlines, ``masks``, are multipolygons: one feature per outline, however many parts it has.

A layer holds one geometry type, while prompts, answers (a prompt's geometry or a chip footprint)
and detections may each be points, lines or polygons. So each schema layer is one layer per
geometry family, created when its first feature arrives and named ``prompts (points)``,
``detections (polygons)``, ... The layers are found again through a custom property, never through a
name or a stored reference, so they survive renaming and moving; a layer (or the whole group) the user
removed is found again in the GeoPackage (with its features) when next needed. All of this runs on the
main thread only.

Fields come from memory-provider URIs (``field=answer:string(0)``), which read the same on Qt5 and
Qt6, rather than from ``QVariant`` types; the GeoPackage tables are written from those layers."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from qgis.core import (Qgis, QgsCoordinateTransform, QgsFeature, QgsFields, QgsFillSymbol, QgsGeometry,
                       QgsLayerTreeGroup, QgsLayerTreeLayer, QgsLineSymbol, QgsMarkerSymbol, QgsMessageLog,
                       QgsPalLayerSettings, QgsProject, QgsSingleSymbolRenderer, QgsSymbol, QgsTextBufferSettings,
                       QgsTextFormat, QgsVectorLayer, QgsVectorLayerSimpleLabeling, QgsWkbTypes)
from qgis.PyQt.QtCore import QCoreApplication, QThread
from qgis.PyQt.QtGui import QColor

from ..model_backend.core.errors import EarthGPTXError, InvalidArgumentError
from ..model_backend.core.schema import FIELDS, LAYERS
from .session import SessionStore

#: geometry families, in the order their layers are stacked within a schema layer
FAMILIES = ("point", "line", "polygon")
ROLE_KEY = "earthgptx/output"
GROUP_KEY = "earthgptx/group"

#: one feature to add: geometry in the project CRS and attributes by schema field name
Item = Tuple[QgsGeometry, Mapping[str, object]]

_MEMORY_TYPES = {"str": "string(0)", "int": "integer", "float": "double"}
_WKB_NAMES = {"point": "Point", "line": "LineString", "polygon": "Polygon"}
_FAMILY_OF = {QgsWkbTypes.GeometryType.PointGeometry: "point", QgsWkbTypes.GeometryType.LineGeometry: "line",
              QgsWkbTypes.GeometryType.PolygonGeometry: "polygon"}
#: stroke, fill (RGBA), stroke style, stroke width (mm) of each schema layer
_STYLES = {
    "prompts": ("255,120,0,255", "255,120,0,0", "dash", "0.6"),
    "answers": ("215,175,30,255", "255,235,140,0", "solid", "0.5"),   # footprints as outlines: no tint
    "detections": ("220,20,60,255", "220,20,60,0", "solid", "1.0"),
    "masks": ("0,160,255,255", "0,160,255,70", "solid", "0.6"),
}
_LABELS = {
    "prompts": '"prompt_index"',
    "answers": """left("answer", 40) || if(length("answer") > 40, '…', '')""",
    "detections": "\"rank\" || '. ' || \"label\"",   # 3. ship: the row of the results list
    "masks": '"label"',
}
#: drawing order within the group, top first: outlines over fills
_ORDER = [f"{name}:{family}" for name in ("detections", "masks", "prompts", "answers") for family in FAMILIES]


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


def require_main_thread() -> None:
    """QGIS layers and the layer tree belong to the main thread."""
    if QThread.currentThread() != QCoreApplication.instance().thread():
        raise RuntimeError("EarthGPT-X output layers are used from the main thread only")


def family_of(geometry: QgsGeometry) -> Optional[str]:
    """``point``, ``line`` or ``polygon``; None for a null or empty geometry."""
    if geometry is None or geometry.isNull() or geometry.isEmpty():
        return None
    return _FAMILY_OF.get(geometry.type())


def schema_fields(name: str) -> QgsFields:
    """The fields of schema layer ``name`` as QGIS fields."""
    return QgsVectorLayer(f"None?{_fields_uri(name)}", name, "memory").fields()


def _fields_uri(name: str) -> str:
    return "&".join(f"field={key}:{_MEMORY_TYPES[kind]}" for key, kind in FIELDS[name])


def _display_name(name: str, family: str) -> str:
    families = {"point": tr("points"), "line": tr("lines"), "polygon": tr("polygons")}
    return tr("{layer} ({family})").format(layer=name, family=families[family])


class OutputLayers:
    """Creates, finds and fills the output layers of ``project`` (the current project by default)."""

    def __init__(self, project: Optional[QgsProject] = None, session: Optional[SessionStore] = None) -> None:
        self._project = project or QgsProject.instance()
        #: where new layers are written (None: memory layers, e.g. for a throwaway project)
        self.session = session
        #: what the last ``add_question`` stored: (schema layer, its QGIS layer, feature id), in order
        self.added: List[Tuple[str, QgsVectorLayer, int]] = []

    def layers(self) -> Dict[str, List[QgsVectorLayer]]:
        """The layers of each schema layer in the layer tree (points, lines, polygons order), for export."""
        require_main_thread()
        return {name: [layer for layer in (self._find(f"{name}:{family}") for family in FAMILIES) if layer]
                for name in LAYERS}

    def add_question(self, prompts: Sequence[Item], answer: Optional[Item],
                     detections: Sequence[Item], masks: Sequence[Item] = ()) -> Dict[str, int]:
        """Add one question's features (geometries in the project CRS, attributes by schema name; missing
        ones are NULL) and return how many went to each schema layer. Bad geometry raises
        ``InvalidArgumentError`` before anything is added."""
        require_main_thread()
        items = ([("prompts", item) for item in prompts] + ([("answers", answer)] if answer else [])
                 + [("detections", item) for item in detections] + [("masks", item) for item in masks])
        for name, (geometry, _) in items:
            if family_of(geometry) is None:
                raise InvalidArgumentError(tr("A {layer} feature has no point, line or polygon geometry.")
                                           .format(layer=name))
        batches: Dict[str, Tuple[QgsVectorLayer, List[QgsFeature]]] = {}
        for name, (geometry, attributes) in items:
            role = f"{name}:{family_of(geometry)}"
            if role not in batches:
                batches[role] = (self._find(role) or self._create(role), [])
            layer, features = batches[role]
            features.append(self._feature(layer, name, geometry, attributes))
        self.added = []
        for role, (layer, features) in batches.items():
            ok, stored = layer.dataProvider().addFeatures(features)
            if not ok:
                raise RuntimeError("; ".join(layer.dataProvider().errors()))
            self.added += [(role.split(":")[0], layer, f.id()) for f in stored]
            layer.updateExtents()
            layer.triggerRepaint()
        return {name: sum(1 for n, _ in items if n == name) for name in LAYERS}

    def _feature(self, layer: QgsVectorLayer, name: str, geometry: QgsGeometry,
                 attributes: Mapping[str, object]) -> QgsFeature:
        geometry = QgsGeometry(geometry)
        source = self._project.crs()
        if source.isValid() and layer.crs().isValid() and source != layer.crs():
            geometry.transform(QgsCoordinateTransform(source, layer.crs(), self._project))
        feature = QgsFeature(layer.fields())
        feature.setGeometry(geometry)
        for key, _ in FIELDS[name]:
            index = layer.fields().indexOf(key)
            if index >= 0 and attributes.get(key) is not None:
                feature.setAttribute(index, attributes[key])
        return feature

    def _find(self, role: str) -> Optional[QgsVectorLayer]:
        root = self._project.layerTreeRoot()
        for layer in self._project.mapLayers().values():
            if (isinstance(layer, QgsVectorLayer) and layer.customProperty(ROLE_KEY) == role
                    and root.findLayer(layer.id()) is not None):
                return layer
        return None

    def _create(self, role: str) -> QgsVectorLayer:
        """The layer of ``role`` in the session GeoPackage (a memory layer, said in the message log, when
        the GeoPackage cannot be written: the session then lives until an export)."""
        name, family = role.split(":")
        wkb = "MultiPolygon" if name == "masks" else _WKB_NAMES[family]
        layer = QgsVectorLayer(f"{wkb}?{_fields_uri(name)}", _display_name(name, family), "memory")
        layer.setCrs(self._project.crs())
        if self.session is not None:
            try:
                layer = self.session.layer(self._project, layer, f"{name}_{family}")
            except EarthGPTXError as exc:
                QgsMessageLog.logMessage(tr("{0}; the results stay in memory layers until you export them")
                                         .format(exc), "EarthGPT-X", Qgis.MessageLevel.Warning)
        layer.setCustomProperty(ROLE_KEY, role)
        _style(layer, name, family)
        if layer.providerType() == "ogr":
            layer.saveStyleToDatabase(name, tr("EarthGPT-X style"), True, "")   # reopens styled
        self._project.addMapLayer(layer, False)
        group = self._group()
        above = set(_ORDER[:_ORDER.index(role)])
        index = sum(1 for child in group.children()
                    if isinstance(child, QgsLayerTreeLayer) and child.layer() is not None
                    and child.layer().customProperty(ROLE_KEY) in above)
        group.insertLayer(index, layer)
        return layer

    def _group(self) -> QgsLayerTreeGroup:
        root = self._project.layerTreeRoot()
        for group in root.findGroups(True):
            if group.customProperty(GROUP_KEY):
                return group
        group = root.insertGroup(0, tr("EarthGPT-X"))
        group.setCustomProperty(GROUP_KEY, True)
        return group


def _style(layer: QgsVectorLayer, name: str, family: str) -> None:
    stroke, fill, style, width = _STYLES[name]
    symbol: QgsSymbol
    if family == "polygon":
        symbol = QgsFillSymbol.createSimple({"color": fill, "outline_color": stroke, "outline_style": style,
                                             "outline_width": width})
    elif family == "line":
        symbol = QgsLineSymbol.createSimple({"line_color": stroke, "line_style": style, "line_width": width})
    else:
        symbol = QgsMarkerSymbol.createSimple({"name": "circle", "size": "3.5", "color": fill,
                                               "outline_color": stroke, "outline_style": style,
                                               "outline_width": width})
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))

    text = QgsTextFormat()
    text.setSize(9)
    text.setColor(QColor(*(int(c) for c in stroke.split(",")[:3])))
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setSize(0.8)
    text.setBuffer(buffer)
    settings = QgsPalLayerSettings()
    settings.fieldName = _LABELS[name]
    settings.isExpression = True
    settings.setFormat(text)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(name != "answers")   # an answer is read in the dock, not over the raster
