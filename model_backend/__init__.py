"""EarthGPT-X for QGIS: the worker-side package (never imports ``qgis``).

Pure modules importable from the QGIS process (numpy and the standard library only):
``affine``, ``prompts``, ``chip_plan``, ``encoding``, ``normalise``, ``marks``, ``chip``, ``errors``.
Headless modules (rasterio, pyproj, shapely): ``raster``, ``crs``, ``geometry``, ``locate``, ``cli``.
"""

__version__ = "0.1.0"
