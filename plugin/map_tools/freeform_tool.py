"""Free-form prompt: click vertices for a polygon (right-click or double-click finishes), or press and
drag to sketch a scribble (release finishes). Esc cancels."""

from __future__ import annotations

from typing import List

from qgis.core import QgsGeometry, QgsPointXY, QgsWkbTypes
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import Qt

from .base import PromptTool

DRAG_PIXELS = 6  # a press followed by this much movement is a sketch, not a click


class FreeformTool(PromptTool):
    def __init__(self, canvas: QgsMapCanvas):
        super().__init__(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self.vertices: List[QgsPointXY] = []
        self.stroke: List[QgsPointXY] = []
        self.pressed_at = None

    def reset(self) -> None:
        self.vertices, self.stroke, self.pressed_at = [], [], None
        self.rubber.reset(QgsWkbTypes.GeometryType.PolygonGeometry)

    def _show(self, points: List[QgsPointXY], closed: bool) -> None:
        kind = QgsWkbTypes.GeometryType.PolygonGeometry if closed else QgsWkbTypes.GeometryType.LineGeometry
        self.rubber.reset(kind)
        for p in points:
            self.rubber.addPoint(p, False)
        self.rubber.show()
        self.rubber.updatePosition()

    def canvasPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton and not self.vertices:
            self.pressed_at = event.pos()
            self.stroke = [event.mapPoint()]

    def canvasMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self.pressed_at is not None and event.buttons() & Qt.MouseButton.LeftButton:
            moved = (event.pos() - self.pressed_at).manhattanLength()
            if moved >= DRAG_PIXELS or len(self.stroke) > 1:
                self.stroke.append(event.mapPoint())
                self._show(self.stroke, closed=False)
        elif self.vertices:
            self._show(self.vertices + [event.mapPoint()], closed=True)

    def canvasReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.RightButton:
            self._finish_polygon()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if len(self.stroke) > 1:  # a sketch
            stroke = self.stroke
            self.finish("scribble", QgsGeometry.fromPolylineXY(stroke))
            return
        self.pressed_at, self.stroke = None, []
        self.vertices.append(event.mapPoint())
        self._show(self.vertices, closed=True)

    def canvasDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._finish_polygon()

    def _finish_polygon(self) -> None:
        # a double click also delivered its own press/release: drop a repeated last vertex
        pts = [p for k, p in enumerate(self.vertices) if k == 0 or p != self.vertices[k - 1]]
        if len(pts) >= 3:
            self.finish("polygon", QgsGeometry.fromPolygonXY([pts]))
        else:
            self.reset()
