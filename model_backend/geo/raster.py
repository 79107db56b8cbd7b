"""Headless raster access with rasterio: georeferencing, pixel <-> CRS transforms and chip reads.

A raster is read through a *view*: the file itself when it has a geotransform (north-up, rotated or
sheared, read directly so the chip affine is exact), or GDAL's warped north-up VRT when it has only
GCPs (the grid QGIS shows). Raw pixel space always means the file's own pixels (GDAL's transformer:
the geotransform, or the GCP polynomial).
"""

from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import GCPTransformer
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window as RioWindow

from ..core.affine import Affine
from ..core.chip import Chip
from ..core.chip_plan import ChipPlan
from ..core.errors import InsufficientMemoryError, NoCRSError, UnreadableRasterError, UnsupportedDataError
from ..core.normalise import Modality, ModalityGuess, check_bands, default_bands, guess_modality, to_model_rgb

_MODALITY_SAMPLE = 256


def check_gcps(name: str, gcps: Sequence[Tuple[float, float, float, float]]) -> None:
    """Refuse GCPs (pixel col, row; map x, y) no polynomial can be fitted to: fewer than three,
    non-finite values, or all on one line (or one point) in pixel or in map space."""
    if len(gcps) < 3:
        raise UnsupportedDataError(f"{name} has {len(gcps)} GCP(s): at least three, not on one line, are needed "
                                   f"to place it; add GCPs (QGIS's Georeferencer)")
    points = np.asarray(gcps, dtype=float)
    if not np.isfinite(points).all():
        raise UnsupportedDataError(f"{name} has GCPs with missing (NaN or infinite) coordinates; fix its GCPs")
    for space, xy in (("pixel", points[:, :2]), ("map", points[:, 2:])):
        centred = xy - xy.mean(axis=0)
        singular = np.linalg.svd(centred, compute_uv=False)
        if singular[-1] <= 1e-9 * max(singular[0], 1e-300):
            raise UnsupportedDataError(f"{name} has GCPs that all lie on one line (or one point) in {space} "
                                       f"space: they cannot place the raster; fix or add GCPs")


class RasterSource:
    """An open raster and its read view. Use as a context manager."""

    def __init__(self, path: str):
        self.path = str(path)
        if not os.path.exists(self.path) and "://" not in self.path and not self.path.startswith("/vsi"):
            raise UnreadableRasterError(f"no such file: {self.path}")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", NotGeoreferencedWarning)  # reported as NoCRSError below
                self._src = rasterio.open(self.path)
        except (RasterioError, OSError) as exc:
            raise UnreadableRasterError(f"cannot read {self.path} as a raster: {_first_line(exc)}") from None
        #: GDAL has neither a geotransform nor GCPs nor RPCs for the file (rasterio then says identity)
        self._ungeoreferenced = any(issubclass(w.category, NotGeoreferencedWarning) for w in caught)
        try:
            self._init_georeferencing()
        except Exception:
            self._src.close()
            raise
        self._modality: Optional[ModalityGuess] = None

    def _init_georeferencing(self) -> None:
        src = self._src
        if src.count == 0:
            hint = f"; it holds subdatasets, open one of them, e.g. {src.subdatasets[0]}" if src.subdatasets else ""
            raise UnsupportedDataError(f"{os.path.basename(self.path)} has no raster bands{hint}")
        name = os.path.basename(self.path)
        gcps, gcp_crs = src.gcps
        self._gcp_transformer = None
        if not gcps and (self._ungeoreferenced or src.transform.is_identity and src.rpcs):
            if src.rpcs:
                raise NoCRSError(f"{name} is placed by RPCs only, which this program does not apply: orthorectify "
                                 f"it first (gdalwarp -rpc, or QGIS's Warp with RPCs)")
            if src.crs is None:
                raise NoCRSError(f"{name} is not georeferenced (no geotransform, GCPs or CRS)")
            raise NoCRSError(f"{name} has a CRS but no geotransform or GCPs, so its pixels have no place on the map "
                             f"(QGIS would draw it at pixel coordinates); georeference it first (QGIS's "
                             f"Georeferencer, or gdal_translate -a_ullr)")
        if src.crs is None and not gcps:
            raise NoCRSError(f"{name} has a geotransform but no CRS; assign one first")
        if gcps and (src.crs is None or src.transform.is_identity):   # GDAL places it by its GCPs
            gcp_crs = gcp_crs or src.crs
            if gcp_crs is None:
                raise NoCRSError(f"{name} has GCPs without a CRS")
            self.crs = CRS.from_wkt(gcp_crs.to_wkt())
            self.georeferencing = "gcps"
            check_gcps(name, [(g.col, g.row, g.x, g.y) for g in gcps])
            try:
                self._gcp_transformer = GCPTransformer(gcps)
                self._view = WarpedVRT(src, crs=gcp_crs, add_alpha=True)
            except (RasterioError, ValueError) as exc:
                raise UnsupportedDataError(f"{name}: GDAL cannot fit a transform to its {len(gcps)} GCPs "
                                           f"({_first_line(exc)}); check or add GCPs") from None
            self.raw_affine: Optional[Affine] = None
        else:
            self.crs = CRS.from_wkt(src.crs.to_wkt())
            self.raw_affine = Affine.from_gdal(src.transform.to_gdal())
            self.georeferencing = "geotransform" if self.raw_affine.is_north_up else "rotated"
            self._view = src
        self.view_affine = Affine.from_gdal(self._view.transform.to_gdal())

    # -- context management -------------------------------------------------------------------
    def close(self) -> None:
        if self._view is not self._src:
            self._view.close()
        self._src.close()

    def __enter__(self) -> "RasterSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- properties -----------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Raw raster width in pixels."""
        return int(self._src.width)

    @property
    def height(self) -> int:
        return int(self._src.height)

    @property
    def view_size(self) -> Tuple[int, int]:
        """(width, height) of the read view in full-resolution pixels."""
        return int(self._view.width), int(self._view.height)

    @property
    def band_count(self) -> int:
        return int(self._src.count)

    @property
    def dtype(self) -> str:
        """The file's sample type as rasterio names it (e.g. ``uint16``, ``complex_int16``)."""
        return str(self._src.dtypes[0])

    @property
    def sample_dtype(self) -> np.dtype:
        """The numpy type samples are read as (``complex_int16`` reads as complex64)."""
        return np.dtype("complex64" if self.dtype == "complex_int16" else self.dtype)

    @property
    def nodata(self) -> Optional[float]:
        return self._src.nodata

    @property
    def overviews(self) -> Tuple[int, ...]:
        """Overview factors of the read view's first band."""
        return tuple(self._view.overviews(1))

    @property
    def is_paletted(self) -> bool:
        return self._src.colorinterp[0] == ColorInterp.palette

    # -- transforms -------------------------------------------------------------------------------
    def raw_to_crs(self, cols, rows) -> Tuple[np.ndarray, np.ndarray]:
        """Raw raster pixel coordinates -> raster CRS."""
        cols, rows = np.asarray(cols, float), np.asarray(rows, float)
        if self._gcp_transformer is not None:
            xs, ys = self._gcp_transformer.xy(rows.ravel(), cols.ravel(), offset="ul")
            return np.asarray(xs, float).reshape(cols.shape), np.asarray(ys, float).reshape(cols.shape)
        return self.raw_affine.apply(cols, rows)

    def crs_to_raw(self, xs, ys) -> Tuple[np.ndarray, np.ndarray]:
        """Raster CRS -> raw raster pixel coordinates (fractional)."""
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
        if self._gcp_transformer is not None:
            rows, cols = self._gcp_transformer.rowcol(xs.ravel(), ys.ravel(), op=_identity)
            return np.asarray(cols, float).reshape(xs.shape), np.asarray(rows, float).reshape(xs.shape)
        return self.raw_affine.inverse().apply(xs, ys)

    def crs_to_view(self, xs, ys) -> Tuple[np.ndarray, np.ndarray]:
        """Raster CRS -> read-view pixel coordinates (fractional)."""
        return self.view_affine.inverse().apply(xs, ys)

    # -- metadata ---------------------------------------------------------------------------------
    def metadata_text(self) -> str:
        """Tags, band descriptions and the file name, joined for modality guessing."""
        src = self._src
        parts = [os.path.basename(self.path)]
        parts += [f"{k} {v}" for k, v in src.tags().items()]
        parts += [f"{k} {v}" for k, v in src.tags(1).items()]
        parts += [d for d in src.descriptions if d]
        return " ".join(parts)

    def guess_modality(self) -> ModalityGuess:
        """The modality guess for the whole raster (cached)."""
        if self._modality is None:
            sample = None
            if self.sample_dtype.kind == "f":
                h, w = self._view.height, self._view.width
                f = max(1.0, max(w, h) / _MODALITY_SAMPLE)
                sample = self._view.read(1, out_shape=(max(1, int(h / f)), max(1, int(w / f))),
                                         resampling=Resampling.nearest, masked=True).compressed()
            self._modality = guess_modality(self.sample_dtype, self.band_count, self.metadata_text(), sample)
        return self._modality

    def colour_names(self) -> Tuple[str, ...]:
        return tuple(ci.name for ci in self._src.colorinterp)

    # -- reading ----------------------------------------------------------------------------------
    def read_chip(self, plan: ChipPlan, modality: Optional[Modality] = None,
                  bands: Optional[Sequence[int]] = None) -> Chip:
        """Read and normalise the planned window into a model-ready chip.

        ``modality`` None guesses it; ``bands`` None picks RGB or band 1 (DESIGN §4).
        """
        guess = self.guess_modality() if modality is None else ModalityGuess(Modality(modality), "chosen by the user")
        if self.is_paletted and bands is None:
            data, valid = self._read_paletted(plan)
            bands = (1,)
        else:
            bands = check_bands(bands, self.band_count) if bands is not None else \
                default_bands(guess.modality, self.band_count, self.colour_names())
            data, valid = self.read_raw(plan, bands)
        image, valid = to_model_rgb(data, valid, guess.modality)
        return Chip(image=image, valid=valid, affine=plan.chip_affine(self.view_affine), crs=self.crs.to_wkt(),
                    source=self.path, plan=plan, modality=guess.modality, modality_reason=guess.reason,
                    bands=tuple(bands), nodata=self.nodata)

    def read_raw(self, plan: ChipPlan, bands: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        """Raw samples (B, out_height, out_width) of 1-based ``bands`` and the valid mask (H, W).

        Decimated reads average (nearest for complex samples, whose average is not an amplitude)."""
        w = plan.window
        window = RioWindow(w.col_off, w.row_off, w.width, w.height)
        decimated = (plan.out_width, plan.out_height) != (w.width, w.height)
        complex_data = self.sample_dtype.kind == "c"
        resampling = Resampling.average if decimated and not complex_data else Resampling.nearest
        shape = (len(bands), plan.out_height, plan.out_width)
        check_memory_for(shape, self.sample_dtype)
        try:
            data = self._view.read(list(bands), window=window, out_shape=shape, resampling=resampling)
            masks = self._view.read_masks(list(bands), window=window, out_shape=shape, resampling=Resampling.nearest)
        except RasterioError as exc:
            raise UnreadableRasterError(f"cannot read pixels of {self.path}: {_first_line(exc)}") from None
        if data.dtype.kind not in "uifc":
            raise UnsupportedDataError(f"sample type {data.dtype} of {self.path} is not supported")
        return data, np.all(masks > 0, axis=0)

    def _read_paletted(self, plan: ChipPlan) -> Tuple[np.ndarray, np.ndarray]:
        index, valid = self.read_raw(plan, (1,))
        cmap = self._src.colormap(1)
        lut = np.zeros((max(256, max(cmap) + 1), 3), np.uint8)
        for k, rgba in cmap.items():
            lut[k] = rgba[:3]
        return np.moveaxis(lut[index[0]], -1, 0), valid


def check_memory_for(shape: Tuple[int, int, int], dtype: np.dtype) -> None:
    """Refuse a read of ``shape`` (bands, rows, cols) samples of ``dtype`` whose arrays (samples,
    masks, the float working copies of normalisation and the RGB chip) would not fit in the memory
    available now (psutil; not checked where psutil is missing)."""
    try:
        import psutil
    except ImportError:
        return
    bands, rows, cols = shape
    needed = rows * cols * (bands * (dtype.itemsize + 1 + 2 * 8) + 3 + 1)
    available = psutil.virtual_memory().available
    if needed > available:
        raise InsufficientMemoryError(f"a {cols}x{rows} chip of {bands} band(s) needs about {needed / 2 ** 30:.1f} GiB "
                                      f"but {available / 2 ** 30:.1f} GiB is free: lower the pixel budget "
                                      f"(--max-pixels) or the tile size")


def _identity(values):
    return values


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
