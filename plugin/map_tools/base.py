"""Common base of the prompt map tools: a rubber band, Esc to cancel, and one signal per finished
prompt carrying its kind and geometry in the canvas CRS."""

from __future__ import annotations

from qgis.core import QgsGeometry, QgsWkbTypes
from qgis.gui import QgsMapCanvas, QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

RUBBER_COLOUR = QColor(255, 210, 0, 220)
RUBBER_FILL = QColor(255, 210, 0, 50)


class PromptTool(QgsMapTool):
    """Emits ``promptDrawn(kind, geometry)`` with ``kind`` one of point, box, polygon, scribble and the
    geometry in the canvas CRS; ``cancelled`` when Esc drops a prompt being drawn."""

    promptDrawn = pyqtSignal(str, QgsGeometry)
    cancelled = pyqtSignal()

    def __init__(self, canvas: QgsMapCanvas, geometry_type: QgsWkbTypes.GeometryType):
        super().__init__(canvas)
        self.rubber = QgsRubberBand(canvas, geometry_type)
        self.rubber.setStrokeColor(RUBBER_COLOUR)
        self.rubber.setFillColor(RUBBER_FILL)
        self.rubber.setWidth(2)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def reset(self) -> None:
        """Drop what is being drawn."""
        self.rubber.reset(self.rubber.asGeometry().type())

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Escape:
            self.reset()
            self.cancelled.emit()
            event.accept()

    def deactivate(self) -> None:
        self.reset()
        super().deactivate()

    def finish(self, kind: str, geometry: QgsGeometry) -> None:
        self.reset()
        if not geometry.isEmpty():
            self.promptDrawn.emit(kind, geometry)
