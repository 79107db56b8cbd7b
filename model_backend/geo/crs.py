"""CRS parsing and coordinate transformation between CRSs (pyproj; headless side only)."""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Tuple

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from ..core.errors import InvalidCRSError

CoordFunction = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def parse_crs(text: str) -> CRS:
    """A CRS from ``AUTH:CODE``, WKT or a PROJ string; ``InvalidCRSError`` when unknown."""
    if not text or not str(text).strip():
        raise InvalidCRSError("no CRS given; pass one such as EPSG:4326")
    try:
        return CRS.from_user_input(str(text).strip())
    except CRSError as exc:
        raise InvalidCRSError(f"unknown CRS {text!r}: {str(exc).splitlines()[0]}") from None


def crs_label(crs: CRS) -> str:
    """``AUTH:CODE`` when the CRS has one (exact match), otherwise its WKT."""
    auth = crs.to_authority(min_confidence=100)
    return f"{auth[0]}:{auth[1]}" if auth else crs.to_wkt()


@lru_cache(maxsize=64)
def _transformer(src_wkt: str, dst_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt), always_xy=True)


def transformer(src: CRS, dst: CRS) -> CoordFunction:
    """A vectorised ``(xs, ys) -> (xs, ys)`` from ``src`` to ``dst`` (x = easting/longitude).

    Raises ``InvalidCRSError`` on coordinates the transformation cannot handle.
    """
    if src == dst:
        return lambda xs, ys: (np.asarray(xs, float), np.asarray(ys, float))
    t = _transformer(src.to_wkt(), dst.to_wkt())

    def apply(xs, ys):
        ox, oy = t.transform(np.asarray(xs, float), np.asarray(ys, float), errcheck=False)
        ox, oy = np.asarray(ox, float), np.asarray(oy, float)
        if not (np.all(np.isfinite(ox)) and np.all(np.isfinite(oy))):
            raise InvalidCRSError(f"coordinates cannot be transformed from {crs_label(src)} to {crs_label(dst)}")
        return ox, oy

    return apply
