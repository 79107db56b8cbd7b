"""EarthGPT-X for QGIS: the worker-side package (never imports ``qgis``). ARCHITECTURE.md walks it.

``core/``      pure (numpy + standard library): pixel geometry, prompts, chips, encodings, marks,
               normalisation, tiling plans, the request/answer contract, schema, errors. The only
               package the QGIS process imports, with ``worker.client``.
``geo/``       headless geospatial IO (rasterio, pyproj, shapely, fiona): raster reading, CRS,
               geometries, prompt placement, vector outputs.
``models/``    from a request to an answer: task templates, prompting, parsing, the ``Engine``
               interface, loading, and one module per engine (``local``, ``remote``, ``earthgptx/``).
``jobs/``      headless jobs (raster + engine in, vector layers out): ``ask``, ``find``.
``commands/``  the command lines (argument parsing only; nothing imports them but ``__main__``s).
``worker/``    the worker process, its protocol, its client (pure), its environment report.
``eval/``      the evaluation harness; ``testing/`` tiny random models for tests.

The flat module paths of earlier releases (``model_backend.raster``...) still import (``_moved``).
"""

from . import _moved

__version__ = "0.1.0"

_moved.install()
