"""EarthGPT-X for QGIS: plugin entry point (QGIS calls ``classFactory``)."""


def classFactory(iface):  # noqa: N802 - name fixed by QGIS
    """Create the plugin for the QGIS interface ``iface``."""
    from .plugin.plugin_main import EarthGPTXPlugin

    return EarthGPTXPlugin(iface)
