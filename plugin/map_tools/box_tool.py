"""Box prompt: press, drag, release; the rubber band follows the mouse."""

from __future__ import annotations

from typing import Optional

from qgis.core import QgsGeometry, QgsPointXY, QgsRectangle, QgsWkbTypes
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import Qt

from .base import PromptTool


class BoxTool(PromptTool):
    def __init__(self, canvas: QgsMapCanvas):
        super().__init__(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self.start: Optional[QgsPointXY] = None

    def reset(self) -> None:
        self.start = None
        super().reset()

    def canvasPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.start = event.mapPoint()

    def canvasMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self.start is not None:
            self.rubber.setToGeometry(QgsGeometry.fromRect(QgsRectangle(self.start, event.mapPoint())), None)

    def canvasReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() != Qt.MouseButton.LeftButton or self.start is None:
            return
        rect = QgsRectangle(self.start, event.mapPoint())
        if rect.width() > 0 and rect.height() > 0:
            self.finish("box", QgsGeometry.fromRect(rect))
        else:
            self.reset()
