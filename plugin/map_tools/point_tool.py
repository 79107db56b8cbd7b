"""Point prompt: a left click."""

from __future__ import annotations

from qgis.core import QgsGeometry, QgsWkbTypes
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import Qt

from .base import PromptTool


class PointTool(PromptTool):
    def __init__(self, canvas: QgsMapCanvas):
        super().__init__(canvas, QgsWkbTypes.GeometryType.PointGeometry)

    def canvasReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.finish("point", QgsGeometry.fromPointXY(event.mapPoint()))
