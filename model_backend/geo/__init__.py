"""Headless geospatial IO (rasterio, pyproj, shapely, fiona), worker side only: ``raster`` (reading
chips from a raster or its GCP warp), ``crs`` (parsing and transforming), ``geometry`` (WKT and
prompts as shapely geometries), ``locate`` (where prompts in a CRS land on a raster: the chip and
the prompts in chip pixels), ``outputs`` (answers and detections appended to a GeoPackage or
shapefiles). Imports ``core``; never ``models``, ``jobs`` or ``commands``.
"""
