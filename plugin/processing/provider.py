"""The EarthGPT-X Processing provider."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .ask_features import AskAboutFeatures
from .common import tr
from .describe_scene import DescribeScene
from .find_objects import FindObjects
from .segment_objects import SegmentObjects

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class EarthGPTXProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "earthgptx"

    def name(self) -> str:
        return tr("EarthGPT-X")

    def icon(self) -> QIcon:
        return QIcon(os.path.join(PLUGIN_DIR, "resources", "icon.svg"))

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        for alg in (AskAboutFeatures(), DescribeScene(), FindObjects(), SegmentObjects()):
            self.addAlgorithm(alg)
