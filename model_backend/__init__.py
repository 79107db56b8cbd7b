"""EarthGPT-X for QGIS: the worker-side package (never imports ``qgis``).

Pure modules importable from the QGIS process (numpy and the standard library only; listed in
tests/test_purity.py): ``affine``, ``prompts``, ``chip_plan``, ``encoding``, ``normalise``, ``marks``,
``chip``, ``errors``, ``interface``, ``parsing``, ``families``, ``tasks``, ``prompting``, ``engine``,
``schema``, ``tiling``, ``worker.client``.
Headless modules (rasterio, pyproj, shapely, fiona): ``raster``, ``crs``, ``geometry``, ``locate``,
``outputs``, ``ask``, ``find``, ``cli*``; model runtime (torch, transformers): ``loading``,
``local_engine``, ``earthgptx``; ``remote`` (stdlib HTTP, Pillow); ``eval``.
"""

__version__ = "0.1.0"
