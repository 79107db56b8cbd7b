"""Multi-source normalisation and modality guessing on real rasters."""

import numpy as np
import pytest

from conftest import RASTERS, shared
from model_backend.core.errors import AllNodataError, InvalidArgumentError, UnsupportedDataError
from model_backend.core.normalise import Modality, check_bands, default_bands, guess_modality, to_model_rgb
from model_backend.geo.raster import RasterSource

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("name, modality", [
    ("utm_landsat", Modality.OPTICAL), ("mercator_aerial", Modality.OPTICAL), ("sar_db_nodata", Modality.SAR),
    ("gcp_grd", Modality.SAR), ("gcp_slc", Modality.SAR), ("rotated_complex", Modality.SAR),
    ("thermal", Modality.INFRARED),
])
def test_modality_guess_on_real_rasters(name, modality):
    with RasterSource(RASTERS[name]) as src:
        assert src.guess_modality().modality is modality


@pytest.mark.parametrize("parts, modality", [
    (("sar", "sar_masked.tif"), Modality.SAR),       # 4 float dB bands, NaN-masked, no keyword in the name
    (("optical", "ms1.tif"), Modality.OPTICAL),      # 4 float bands of positive DN
    (("sar", "capella_sar_vv_rotated.tif"), Modality.SAR),
])
def test_modality_guess_on_local_rasters(parts, modality):
    with RasterSource(shared(*parts)) as src:
        assert src.guess_modality().modality is modality


def test_negative_float_values_read_as_db_without_metadata():
    sample = RNG.normal(-12, 4, 1000)
    assert guess_modality("float32", 1, "", sample).modality is Modality.SAR
    assert guess_modality("float32", 1, "", np.abs(sample)).modality is Modality.OPTICAL


def test_bands_by_colour_interpretation():
    assert default_bands(Modality.OPTICAL, 4, ("blue", "green", "red", "undefined")) == (3, 2, 1)
    assert default_bands(Modality.OPTICAL, 4, ("gray", "undefined", "undefined", "undefined")) == (1, 2, 3)
    assert default_bands(Modality.SAR, 4) == (1,)
    with pytest.raises(InvalidArgumentError, match="band 5 does not exist"):
        check_bands((1, 2, 5), 4)
    with pytest.raises(InvalidArgumentError, match="1 band"):
        check_bands((1, 2), 4)


def test_uint8_optical_passes_through():
    data = RNG.integers(0, 256, (3, 20, 30), dtype=np.uint8)
    rgb, valid = to_model_rgb(data, np.ones((20, 30), bool), Modality.OPTICAL)
    assert rgb.shape == (20, 30, 3) and np.array_equal(rgb, np.moveaxis(data, 0, -1))


def test_nodata_values_never_enter_the_stretch():
    data = RNG.uniform(-25, 0, (1, 50, 50)).astype(np.float32)
    valid = np.ones((50, 50), bool)
    valid[:10] = False
    a = data.copy()
    a[0, :10] = -99.0
    b = data.copy()
    b[0, :10] = 1e30
    ra, _ = to_model_rgb(a, valid, Modality.SAR)
    rb, _ = to_model_rgb(b, valid, Modality.SAR)
    assert np.array_equal(ra, rb)
    assert (ra[:10] == 0).all()
    assert ra[10:].max() == 255 and ra[10:].min() == 0  # the valid pixels use the whole range


def test_sar_amplitude_and_intensity_give_the_same_image():
    amplitude = RNG.rayleigh(100.0, (1, 64, 64))
    ones = np.ones((64, 64), bool)
    ra, _ = to_model_rgb(amplitude, ones, Modality.SAR)
    ri, _ = to_model_rgb(amplitude ** 2, ones, Modality.SAR)
    assert np.abs(ra.astype(int) - ri.astype(int)).max() <= 1


def test_complex_sar_is_intensity_in_db():
    z = (RNG.normal(size=(1, 40, 40)) + 1j * RNG.normal(size=(1, 40, 40))).astype(np.complex64)
    ones = np.ones((40, 40), bool)
    rz, _ = to_model_rgb(z, ones, Modality.SAR)
    rp, _ = to_model_rgb(np.abs(z).astype(np.float64) ** 2, ones, Modality.SAR)
    assert np.abs(rz.astype(int) - rp.astype(int)).max() <= 1


def test_non_positive_linear_sar_is_masked():
    data = RNG.uniform(1, 100, (1, 10, 10))
    data[0, 0, 0] = 0.0
    rgb, valid = to_model_rgb(data, np.ones((10, 10), bool), Modality.SAR)
    assert not valid[0, 0] and valid.sum() == 99 and (rgb[0, 0] == 0).all()


def test_thermal_single_band_is_stretched_grey():
    data = RNG.integers(20000, 30000, (1, 30, 30)).astype(np.uint16)
    rgb, _ = to_model_rgb(data, np.ones((30, 30), bool), Modality.INFRARED)
    assert np.array_equal(rgb[..., 0], rgb[..., 2]) and rgb.max() == 255 and rgb.min() == 0


def test_all_nodata_and_unsupported_types():
    with pytest.raises(AllNodataError):
        to_model_rgb(np.full((1, 5, 5), np.nan), np.ones((5, 5), bool), Modality.OPTICAL)
    with pytest.raises(AllNodataError):
        to_model_rgb(np.ones((1, 5, 5)), np.zeros((5, 5), bool), Modality.OPTICAL)
    with pytest.raises(UnsupportedDataError, match="bool"):
        to_model_rgb(np.ones((1, 5, 5), bool), np.ones((5, 5), bool), Modality.OPTICAL)
    with pytest.raises(UnsupportedDataError, match="1 or 3 bands"):
        to_model_rgb(np.ones((2, 5, 5)), np.ones((5, 5), bool), Modality.OPTICAL)
