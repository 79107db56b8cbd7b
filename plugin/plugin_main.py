"""The plugin object QGIS loads: menu entry and lifecycle."""

from __future__ import annotations

import os

from qgis.core import Qgis
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .. import model_backend

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MENU = "&EarthGPT-X"


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


class EarthGPTXPlugin:
    """Adds the EarthGPT-X menu to QGIS and removes it on unload."""

    def __init__(self, iface):
        self.iface = iface
        self.actions: list = []

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        icon = QIcon(os.path.join(PLUGIN_DIR, "resources", "icon.svg"))
        about = QAction(icon, tr("About EarthGPT-X"), self.iface.mainWindow())
        about.triggered.connect(self.show_about)
        self.iface.addPluginToRasterMenu(MENU, about)
        self.actions.append(about)

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
        self.actions.clear()

    def show_about(self) -> None:
        self.iface.messageBar().pushMessage(
            "EarthGPT-X", tr("Version {0}: spatial core ready; model runtime not installed yet.").format(
                model_backend.__version__), level=Qgis.Info, duration=5)
