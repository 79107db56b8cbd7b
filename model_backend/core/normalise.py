"""Multi-source normalisation: raw raster samples -> model-ready 8-bit RGB (numpy/stdlib only).

- optical: uint8 data is passed through as QGIS shows it; other types get a per-band 2–98 %
  cumulative-count stretch (QGIS's default for multiband non-byte rasters).
- SAR: complex samples -> intensity |z|^2; linear amplitude, intensity or DN -> 10 log10; values
  already in dB are kept; then a 2–98 % stretch of the dB values to grey. (10 log10 of an amplitude
  differs from 20 log10 by a factor of 2 only, which the percentile stretch removes.)
- thermal infrared: one band, 2–98 % stretch to grey.

NaN, infinities, nodata and non-positive linear SAR samples are masked: they never enter a
percentile and come out black with ``valid == False``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import AllNodataError, InvalidArgumentError, UnsupportedDataError

STRETCH_PERCENTILES = (2.0, 98.0)
_MAX_STAT_SAMPLES = 1_000_000


class Modality(str, enum.Enum):
    OPTICAL = "optical"
    SAR = "sar"
    INFRARED = "infrared"


@dataclass(frozen=True)
class ModalityGuess:
    modality: Modality
    reason: str


_SAR_WORDS = {
    "sar", "grd", "grdh", "grdm", "slc", "sentinel1", "s1a", "s1b", "s1c", "capella", "iceye", "terrasar",
    "tandem", "tsx", "cosmo", "csk", "radarsat", "rcm", "alos", "palsar", "umbra", "saocom", "vv", "vh",
    "hh", "hv", "db", "sigma0", "gamma0", "beta0", "backscatter", "polarisation", "polarization",
}
_THERMAL_WORDS = {"thermal", "infrared", "tir", "tirs", "lwir", "mwir", "brightness", "ir"}
_LANDSAT_WORDS = {"lc08", "lc09", "lc8", "lc9", "lo08", "landsat", "landsat8", "landsat9"}
_LANDSAT_THERMAL_BANDS = {"b10", "b11", "st", "b6"}


def _words(text: str) -> set:
    text = text.lower().replace("sentinel-1", "sentinel1").replace("sentinel 1", "sentinel1")
    return set(w for w in re.split(r"[^a-z0-9]+", text) if w)


def guess_modality(dtype: str, band_count: int, metadata_text: str = "",
                   sample: Optional[np.ndarray] = None) -> ModalityGuess:
    """Guess the modality from the sample type, band count, metadata (tags, band descriptions,
    file name, joined in ``metadata_text``) and optionally a sample of valid values."""
    kind = np.dtype(dtype).kind
    if kind == "c":
        return ModalityGuess(Modality.SAR, "complex samples (SAR single-look complex)")
    words = _words(metadata_text)
    sar_hits = sorted(words & _SAR_WORDS)
    if sar_hits:
        return ModalityGuess(Modality.SAR, "SAR keywords in metadata or name: " + ", ".join(sar_hits))
    thermal_hits = sorted(words & _THERMAL_WORDS)
    if not thermal_hits and words & _LANDSAT_WORDS:
        thermal_hits = sorted(words & _LANDSAT_THERMAL_BANDS)
    if thermal_hits and band_count <= 2:
        return ModalityGuess(Modality.INFRARED, "thermal keywords in metadata or name: " + ", ".join(thermal_hits))
    if kind == "f" and band_count <= 4 and sample is not None:
        finite = sample[np.isfinite(sample)]
        if finite.size and np.mean(finite < 0) > 0.5 and finite.min() > -100 and finite.max() < 60:
            return ModalityGuess(Modality.SAR, "floating-point values mostly negative, read as SAR backscatter in dB")
    if band_count >= 3:
        return ModalityGuess(Modality.OPTICAL, f"{band_count} bands and no SAR or thermal clue")
    return ModalityGuess(Modality.OPTICAL, "one band and no SAR or thermal clue (panchromatic); "
                                           "choose sar or infrared explicitly if that is wrong")


def default_bands(modality: Modality, band_count: int, colour_names: Sequence[str] = ()) -> Tuple[int, ...]:
    """1-based bands to show: RGB by colour interpretation (else 1, 2, 3) for optical with 3+ bands,
    band 1 otherwise."""
    if band_count < 1:
        raise UnsupportedDataError("the raster has no bands")
    if modality is Modality.OPTICAL and band_count >= 3:
        names = [n.lower() for n in colour_names]
        if all(c in names for c in ("red", "green", "blue")):
            return tuple(names.index(c) + 1 for c in ("red", "green", "blue"))
        return (1, 2, 3)
    return (1,)


def check_bands(bands: Sequence[int], band_count: int) -> Tuple[int, ...]:
    """Validate 1-based band indexes: one band (grey) or three (RGB), each within the raster."""
    bands = tuple(int(b) for b in bands)
    if len(bands) not in (1, 3):
        raise InvalidArgumentError(f"choose 1 band (grey) or 3 bands (RGB), got {len(bands)}")
    bad = [b for b in bands if not 1 <= b <= band_count]
    if bad:
        raise InvalidArgumentError(f"band {bad[0]} does not exist; the raster has {band_count} band(s)")
    return bands


def to_model_rgb(data: np.ndarray, valid: np.ndarray, modality: Modality) -> Tuple[np.ndarray, np.ndarray]:
    """Normalise ``data`` (B, H, W) with ``valid`` (H, W) bool to ``(rgb (H, W, 3) uint8, valid)``.

    B is 1 (grey) or 3 (RGB). Raises ``UnsupportedDataError`` for non-numeric samples and
    ``AllNodataError`` when no valid pixel remains.
    """
    if data.ndim != 3 or data.shape[0] not in (1, 3):
        raise UnsupportedDataError(f"expected 1 or 3 bands of shape (B, H, W), got {data.shape}")
    kind = data.dtype.kind
    if kind not in "uifc":
        raise UnsupportedDataError(f"sample type {data.dtype} cannot be shown as an image")
    valid = np.asarray(valid, bool).copy()
    if modality is Modality.SAR:
        values = _sar_db(data, valid)
    else:
        if kind == "c":
            data = np.abs(data)
        values = data
    valid &= np.all(np.isfinite(values), axis=0) if values.dtype.kind == "f" else True
    if not valid.any():
        raise AllNodataError("every pixel of the chip is nodata or NaN")
    if modality is Modality.OPTICAL and data.dtype == np.uint8:
        out = data.copy() if not valid.all() else data  # the transposed copy below is the only one needed
    else:
        out = np.stack([_stretch(band, valid) for band in values])
    if not valid.all():
        out[:, ~valid] = 0
    rgb = np.repeat(out, 3, axis=0) if out.shape[0] == 1 else out
    return np.ascontiguousarray(np.moveaxis(rgb, 0, -1)), valid


def _sar_db(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """SAR samples -> dB; ``valid`` is narrowed in place where no dB value exists."""
    if data.dtype.kind == "c":
        power = (data.real.astype(np.float64) ** 2 + data.imag.astype(np.float64) ** 2)
    else:
        values = data.astype(np.float64)
        sample = values[:, valid]
        finite = sample[np.isfinite(sample)]
        if finite.size and (finite < 0).any():
            return values
        power = values
    positive = np.all(power > 0, axis=0)
    valid &= positive
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(np.where(power > 0, power, np.nan))


def _stretch(band: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """One band -> uint8 by a 2–98 % cumulative cut over the valid pixels."""
    sample = band[valid]
    if sample.size > _MAX_STAT_SAMPLES:
        sample = sample[:: sample.size // _MAX_STAT_SAMPLES + 1]
    lo, hi = np.percentile(sample.astype(np.float64), STRETCH_PERCENTILES)
    if not hi > lo:
        hi = lo + 1.0
    scaled = (band.astype(np.float64) - lo) * (255.0 / (hi - lo))
    scaled = np.where(valid, scaled, 0.0)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)
