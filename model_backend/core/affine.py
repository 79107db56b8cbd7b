"""2-D affine transforms in GDAL geotransform order (numpy and standard library only).

A geotransform ``gt`` maps pixel space (col, row) — GDAL convention, (0, 0) the top-left corner of
the top-left pixel — to CRS coordinates::

    x = gt[0] + gt[1] * col + gt[2] * row
    y = gt[3] + gt[4] * col + gt[5] * row

Rotated and sheared transforms are represented exactly; nothing here assumes north-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

GDALTuple = Tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Affine:
    """An affine map in GDAL order: ``(x0, dx_dcol, dx_drow, y0, dy_dcol, dy_drow)``."""

    x0: float
    dx_dcol: float
    dx_drow: float
    y0: float
    dy_dcol: float
    dy_drow: float

    @classmethod
    def from_gdal(cls, gt: Sequence[float]) -> "Affine":
        """Build from a 6-number GDAL geotransform."""
        if len(gt) != 6:
            raise ValueError(f"a geotransform has 6 numbers, got {len(gt)}")
        return cls(*(float(v) for v in gt))

    @classmethod
    def identity(cls) -> "Affine":
        return cls(0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @classmethod
    def translation(cls, dx: float, dy: float) -> "Affine":
        return cls(float(dx), 1.0, 0.0, float(dy), 0.0, 1.0)

    @classmethod
    def scaling(cls, sx: float, sy: float) -> "Affine":
        return cls(0.0, float(sx), 0.0, 0.0, 0.0, float(sy))

    def to_gdal(self) -> GDALTuple:
        return (self.x0, self.dx_dcol, self.dx_drow, self.y0, self.dy_dcol, self.dy_drow)

    @property
    def determinant(self) -> float:
        return self.dx_dcol * self.dy_drow - self.dx_drow * self.dy_dcol

    @property
    def is_north_up(self) -> bool:
        """True when there is no rotation or shear term."""
        return self.dx_drow == 0.0 and self.dy_dcol == 0.0

    @property
    def pixel_size(self) -> Tuple[float, float]:
        """Ground size of one pixel along columns and along rows (CRS units, positive)."""
        return (float(np.hypot(self.dx_dcol, self.dy_dcol)), float(np.hypot(self.dx_drow, self.dy_drow)))

    def apply(self, cols, rows):
        """Map pixel coordinates to CRS coordinates; scalars or arrays, returns ``(xs, ys)``."""
        cols = np.asarray(cols, dtype=float)
        rows = np.asarray(rows, dtype=float)
        xs = self.x0 + self.dx_dcol * cols + self.dx_drow * rows
        ys = self.y0 + self.dy_dcol * cols + self.dy_drow * rows
        return xs, ys

    def inverse(self) -> "Affine":
        """The map from CRS coordinates back to pixel space."""
        det = self.determinant
        if det == 0.0 or not np.isfinite(det):
            raise ValueError("geotransform is degenerate (zero determinant) and cannot be inverted")
        a, b, d, e = self.dx_dcol, self.dx_drow, self.dy_dcol, self.dy_drow
        ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
        return Affine(-(ia * self.x0 + ib * self.y0), ia, ib, -(id_ * self.x0 + ie * self.y0), id_, ie)

    def __mul__(self, other: "Affine") -> "Affine":
        """Composition: ``(self * other).apply(p) == self.apply(*other.apply(p))``."""
        if not isinstance(other, Affine):
            return NotImplemented
        a, b, c, d, e, f = self.dx_dcol, self.dx_drow, self.x0, self.dy_dcol, self.dy_drow, self.y0
        oa, ob, oc, od, oe, of = other.dx_dcol, other.dx_drow, other.x0, other.dy_dcol, other.dy_drow, other.y0
        return Affine(
            a * oc + b * of + c, a * oa + b * od, a * ob + b * oe,
            d * oc + e * of + f, d * oa + e * od, d * ob + e * oe,
        )

    def window_affine(self, col_off: float, row_off: float, scale_x: float = 1.0, scale_y: float = 1.0) -> "Affine":
        """Affine of a sub-window read at a reduced resolution.

        Chip pixel (i, j) covers full-resolution pixels starting at
        ``(col_off + i * scale_x, row_off + j * scale_y)``.
        """
        return self * Affine.translation(col_off, row_off) * Affine.scaling(scale_x, scale_y)
