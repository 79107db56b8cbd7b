"""The plugin object QGIS loads: the dock, its menu and toolbar entries, settings and backend setup."""

from __future__ import annotations

import os

from qgis.core import Qgis
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .. import model_backend

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MENU = "&EarthGPT-X"


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


class EarthGPTXPlugin:
    """Adds the EarthGPT-X dock, menu and toolbar button to QGIS and removes them on unload."""

    def __init__(self, iface):
        from .i18n import install_translator

        self.iface = iface
        self.actions: list = []
        self.dock = None
        self.translator = install_translator(PLUGIN_DIR)  # before any widget is built
        self.provider = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API (also called by qgis_process)
        from qgis.core import QgsApplication

        from .processing.provider import EarthGPTXProvider

        self.provider = EarthGPTXProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        self.initProcessing()
        icon = QIcon(os.path.join(PLUGIN_DIR, "resources", "icon.svg"))
        show = QAction(icon, tr("EarthGPT-X"), self.iface.mainWindow())
        show.setCheckable(True)
        show.triggered.connect(self.toggle_dock)
        self.iface.addToolBarIcon(show)
        self._add(show)
        for label, slot in ((tr("Settings..."), self.show_settings), (tr("Backend setup..."), self.show_backend_setup),
                            (tr("About EarthGPT-X"), self.show_about)):
            action = QAction(label, self.iface.mainWindow())
            action.triggered.connect(slot)
            self._add(action)
        self.show_action = show

    def _add(self, action: QAction) -> None:
        self.iface.addPluginToRasterMenu(MENU, action)
        self.actions.append(action)

    def unload(self) -> None:
        if self.provider is not None:
            from qgis.core import QgsApplication

            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            self.iface.removeToolBarIcon(action)
        self.actions.clear()
        from .i18n import remove_translator

        remove_translator(self.translator)

    def toggle_dock(self, checked: bool = True) -> None:
        if self.dock is None:
            from .dock import EarthGPTXDock

            self.dock = EarthGPTXDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            self.dock.visibilityChanged.connect(self.show_action.setChecked)
        self.dock.setVisible(checked)

    def show_settings(self) -> None:
        from .settings import PluginSettings
        from .settings_dialog import SettingsDialog

        dialog = SettingsDialog(PluginSettings.load(), self.iface.mainWindow())
        if dialog.exec():
            new = dialog.settings()
            new.save()
            if self.dock is not None:
                self.dock.apply_settings(new)

    def show_backend_setup(self) -> None:
        from .setup.dialog import BackendSetupDialog

        dialog = BackendSetupDialog(parent=self.iface.mainWindow())
        dialog.workerReady.connect(self.use_worker_python)
        dialog.exec()

    def use_worker_python(self, python: str) -> None:
        """Remember the worker environment the setup dialog made; the next question uses it."""
        from .settings import PluginSettings

        settings = PluginSettings.load()
        settings.worker_python = python
        settings.save()
        if self.dock is not None:
            self.dock.apply_settings(settings)

    def show_about(self) -> None:
        self.iface.messageBar().pushMessage(
            "EarthGPT-X", tr("Version {0}. Models run in a separate worker process; see the README for GPU needs.")
            .format(model_backend.__version__), level=Qgis.MessageLevel.Info, duration=5)
