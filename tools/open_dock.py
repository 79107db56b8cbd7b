"""Run by ``qgis --code`` (``make run``): open the EarthGPT-X dock once QGIS has started."""

from qgis.utils import plugins

plugins["earthgptx"].toggle_dock(True)
