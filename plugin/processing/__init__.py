"""QGIS Processing algorithms of EarthGPT-X (toolbox, modeler, batch, qgis_process)."""
