"""The worker process: one model kept warm, driven over JSON lines on stdin/stdout (PROTOCOL.md).

``client`` (standard library and numpy only) is imported by the QGIS process; ``server`` runs in the
worker's own Python environment and imports the engines; ``environment`` reports what that environment
holds (``python -m model_backend.commands.diagnostics``).
"""

PROTOCOL_VERSION = 1
