"""QGIS side of EarthGPT-X: UI, map tools, chip reading through QGIS. Never imports torch,
rasterio, pyproj or shapely (DESIGN §3)."""
