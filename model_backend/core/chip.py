"""The chip: a model-ready image with its georeferencing (numpy/stdlib only).

The QGIS process builds chips from pixels it reads through its data provider; the headless reader
(``model_backend.geo.raster``) builds them with rasterio. Everything downstream works from ``affine``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .affine import Affine
from .chip_plan import ChipPlan
from .encoding import chip_to_crs, crs_to_chip
from .normalise import Modality


@dataclass
class Chip:
    """A chip read from a raster.

    image: (H, W, 3) uint8 RGB, model-ready. valid: (H, W) bool, False where nodata/NaN.
    affine: chip pixel -> ``crs`` coordinates (GDAL order; may be rotated).
    crs: the raster's CRS as WKT. source: the raster's path or URI.
    plan: the window (in the read view's full-resolution pixels) and read scale.
    modality, modality_reason: what the chip was normalised as, and why.
    bands: 1-based source bands shown (1 -> grey, 3 -> RGB).
    """

    image: np.ndarray
    valid: np.ndarray
    affine: Affine
    crs: str
    source: str
    plan: ChipPlan
    modality: Modality
    modality_reason: str = ""
    bands: Tuple[int, ...] = (1,)
    nodata: Optional[float] = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def resolution(self) -> Tuple[float, float]:
        """Ground size of one chip pixel along columns and rows, in CRS units."""
        return self.affine.pixel_size

    def to_crs(self, vertices: np.ndarray) -> np.ndarray:
        """Chip pixel vertices (N, 2) -> CRS coordinates (N, 2)."""
        return chip_to_crs(np.asarray(vertices, float).reshape(-1, 2), self.affine)

    def from_crs(self, vertices: np.ndarray) -> np.ndarray:
        """CRS coordinates (N, 2) -> chip pixel vertices (N, 2)."""
        return crs_to_chip(np.asarray(vertices, float).reshape(-1, 2), self.affine)
