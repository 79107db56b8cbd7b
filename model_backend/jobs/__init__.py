"""Headless jobs, raster and engine in, vector layers out: ``ask`` (one question about prompts on a
raster), ``find`` (tiled grounding over a raster or an extent). They take an ``Engine`` and write
through ``geo.outputs``; a new job is one module here and a command in ``commands``.
"""
