"""Run by ``qgis --code`` (``make run``): open the EarthGPT-X dock once QGIS has started. With
EARTHGPTX_HEADLESS set (no display: QGIS runs under Xvfb), save the window to out/run.png and quit."""

import os

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

plugins["earthgptx"].toggle_dock(True)
if os.environ.get("EARTHGPTX_HEADLESS"):
    out = os.path.join(os.environ["EARTHGPTX_ROOT"], "out", "run.png")
    QTimer.singleShot(5000, lambda: (iface.mainWindow().grab().save(out), print(f"QGIS ran with the plugin; "
                                     f"window saved to {out}"), QgsApplication.exit(0)))
