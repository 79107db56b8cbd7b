"""Pure code both processes share: numpy and the standard library only, so that QGIS's own Python
imports it (tests/unit/test_layout.py checks). Coordinates here are pixels of a raster's *view* (the
raster itself, or its GCP warp) or of a chip, as each module says; nothing here reads a file.

Modules: ``affine`` (pixel <-> CRS transforms), ``prompts`` (visual prompts), ``chip_plan`` (which
window to read, at which scale), ``chip`` (a read chip), ``normalise`` (bands to 8-bit per modality),
``encoding`` (prompt coordinates as each model convention writes them), ``marks`` (prompts drawn on a
chip), ``tiling`` (tile plans and merging of detections), ``interface`` (request and answer types),
``families`` (the coordinate convention and answer style of each model family), ``engine_options``,
``schema`` (output layers and fields), ``errors``.

Put code here only if the plugin needs it and it needs nothing heavier than numpy.
"""
