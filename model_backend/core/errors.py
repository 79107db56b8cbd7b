"""Typed errors for every bad input a user can cause (DESIGN §8).

Standard library only: the QGIS process imports this module too. Each error carries a one-line,
user-facing message; the command line prints it on stderr and exits with ``EXIT_USAGE``.
"""

from __future__ import annotations

EXIT_USAGE = 2
#: Ctrl-C, as shells report SIGINT
EXIT_INTERRUPTED = 130


class EarthGPTXError(Exception):
    """Base class of the errors a user can cause; ``str(error)`` is the one-line message."""


class InvalidPromptError(EarthGPTXError, ValueError):
    """A visual prompt is empty, degenerate, self-intersecting or has non-finite coordinates."""


class PromptOutsideRasterError(EarthGPTXError):
    """A prompt lies wholly outside the raster (or outside its valid footprint)."""


class NoCRSError(EarthGPTXError):
    """The raster has no coordinate reference system, or no georeferencing at all."""


class InvalidCRSError(EarthGPTXError, ValueError):
    """A CRS given by the user cannot be understood (e.g. ``EPSG:999999``)."""


class AllNodataError(EarthGPTXError):
    """Every pixel of the window that would be read is nodata or NaN."""


class UnsupportedDataError(EarthGPTXError):
    """The raster's data type or band layout cannot be turned into a model-ready image."""


class UnreadableRasterError(EarthGPTXError):
    """The file does not exist, is not a raster, or cannot be read."""


class InvalidArgumentError(EarthGPTXError, ValueError):
    """An option has a value outside its range (e.g. a negative context margin)."""


class ModelNotFoundError(EarthGPTXError):
    """The model is neither a local folder nor downloadable (offline, unknown id)."""


class InsufficientMemoryError(EarthGPTXError):
    """The device does not have the memory the model needs (checked before loading, or an
    out-of-memory error while answering)."""


class WorkerError(EarthGPTXError):
    """The worker process died, was killed, or broke the protocol."""


class OutputError(EarthGPTXError):
    """The output cannot be written: a folder that is read-only or full, a file of another kind, a layer
    or file that is not ours. Nothing of the output was changed."""


class OutputBusyError(OutputError):
    """Another program kept the output locked for longer than the bounded wait."""
