"""Prompt encodings in each model convention, and their inverse."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from model_backend.core.affine import Affine
from model_backend.core.encoding import (Convention, CoordinateFrame, box_corners, chip_to_crs, crs_to_chip,
                                    pad_to_aspect, resample_vertices)
from model_backend.core.errors import InvalidArgumentError
from model_backend.core.families import family as lookup_family
from model_backend.core.prompts import VisualPrompt
from model_backend.models.parsing import parse_regions


def test_square_unit_pads_centred_and_uses_two_decimals():
    f = CoordinateFrame(Convention.SQUARE_UNIT, 800, 400)  # padded to 800x800, 200 px above and below
    assert f.format_prompt(VisualPrompt.point(400, 0)) == "[0.50, 0.25]"
    assert f.format_prompt(VisualPrompt.box(0, 0, 800, 400)) == "[0.00, 0.25, 1.00, 0.75]"
    assert f.decode_point(0.5, 0.25) == pytest.approx((400, 0))


def test_rel_1000_and_clamping():
    f = CoordinateFrame(Convention.REL_1000, 640, 512)
    assert f.format_prompt(VisualPrompt.box(64, 51.2, 320, 512)) == "[100, 100, 500, 1000]"
    assert f.decode_box(500, 1000, 100, 100) == pytest.approx((64, 51.2, 320, 512))
    assert f.decode_point(1200, -5) == pytest.approx((640, 0))  # clamped into the image


def test_resized_pixels_needs_size_and_maps_back():
    with pytest.raises(InvalidArgumentError):
        CoordinateFrame(Convention.RESIZED_PIXELS, 1000, 500)
    f = CoordinateFrame(Convention.RESIZED_PIXELS, 1000, 500, resized_width=812, resized_height=420)
    assert f.format_prompt(VisualPrompt.point(500, 250)) == "[406, 210]"
    assert f.decode_point(406, 210) == pytest.approx((500, 250))


frames = st.one_of(
    st.builds(lambda c, w, h: CoordinateFrame(c, w, h), st.sampled_from(
        [Convention.CHIP_PIXELS, Convention.SQUARE_UNIT, Convention.REL_1000]),
        st.integers(1, 4096), st.integers(1, 4096)),
    st.builds(lambda w, h, rw, rh: CoordinateFrame(Convention.RESIZED_PIXELS, w, h, rw, rh),
              st.integers(1, 4096), st.integers(1, 4096), st.integers(28, 2048), st.integers(28, 2048)))


@given(frames, st.floats(0, 1), st.floats(0, 1))
def test_round_trip_within_rounding(frame, u, v):
    x, y = u * frame.chip_width, v * frame.chip_height
    mx, my = frame.to_model(x, y)
    rx, ry = frame.round(mx), frame.round(my)
    bx, by = frame.decode_point(float(rx), float(ry))
    # one model unit of rounding, expressed in chip pixels
    sx, _, sy, _ = frame._linear()
    step = {Convention.SQUARE_UNIT: 0.005, Convention.CHIP_PIXELS: 0.05}.get(frame.convention, 0.5)
    assert abs(bx - x) <= step / sx + 1e-9 and abs(by - y) <= step / sy + 1e-9
    assert np.isclose(frame.from_model(mx, my), (x, y), atol=1e-6 * max(frame.chip_width, frame.chip_height)).all()


def test_polygon_encoding_resamples_long_scribbles():
    t = np.linspace(0, 1, 500)
    s = VisualPrompt.scribble(np.column_stack([t * 100, t * 50]).tolist())
    enc = CoordinateFrame(Convention.REL_1000, 100, 50).encode(s, max_vertices=8)
    assert len(enc) == 8 and enc[0] == [0, 0] and enc[-1] == [1000, 1000]


def test_resample_ring_keeps_few_vertices_unchanged():
    ring = np.array([(0, 0), (1, 0), (1, 1)], float)
    assert resample_vertices(ring, 8, closed=True) is ring
    assert len(resample_vertices(np.random.default_rng(0).random((100, 2)), 10, closed=True)) == 10


def test_box_to_crs_polygon_on_rotated_chip():
    a = Affine.from_gdal((1000, 0, -2, 5000, 2, 0))  # 90 degree rotation
    corners = chip_to_crs(box_corners(0, 0, 10, 5), a)
    assert corners.tolist() == [[1000, 5000], [1000, 5020], [990, 5020], [990, 5000]]
    assert np.allclose(crs_to_chip(corners, a), box_corners(0, 0, 10, 5))


@pytest.mark.parametrize("h, w", [(4, 4000), (2000, 3), (1, 101), (5, 500), (64, 64), (3, 300)])
def test_pad_to_aspect_pads_bottom_or_right_only_as_much_as_needed(h, w):
    image = np.full((h, w, 3), 200, np.uint8)
    padded = pad_to_aspect(image, 100)
    ph, pw = padded.shape[:2]
    assert max(ph, pw) <= 100 * min(ph, pw) and padded.shape[2] == 3
    assert np.array_equal(padded[:h, :w], image) and (padded[h:] == 0).all() and (padded[:, w:] == 0).all()
    if max(h, w) <= 100 * min(h, w):
        assert padded is image
    else:
        assert max(ph, pw) > 100 * (min(ph, pw) - 1)       # no more than needed


@pytest.mark.parametrize("convention, resized", [
    (Convention.REL_1000, None), (Convention.SQUARE_UNIT, None), (Convention.CHIP_PIXELS, None),
    (Convention.RESIZED_PIXELS, (3920, 56))])
def test_a_padded_frame_reads_coordinates_on_the_padded_image_and_clamps_to_the_chip(convention, resized):
    frame = CoordinateFrame(convention, 4000, 4, *(resized or (None, None)), image_width=4000, image_height=40)
    plain = CoordinateFrame(convention, 4000, 40, *(resized or (None, None)))
    box = VisualPrompt.box(100, 1, 900, 3)
    assert frame.encode(box) == plain.encode(box)          # the chip sits at the padded image's top-left
    with pytest.raises(InvalidArgumentError, match="hold the chip"):
        CoordinateFrame(convention, 4000, 40, *(resized or (None, None)), image_width=4000, image_height=4)
    assert frame.decode_box(*plain.encode(box)) == pytest.approx(plain.decode_box(*plain.encode(box)))


def test_regions_in_the_padding_are_dropped_and_regions_across_it_clamped_to_the_chip():
    family = lookup_family("qwen3_vl")
    frame = CoordinateFrame(Convention.REL_1000, 4000, 4, image_width=4000, image_height=40)
    text = ('[{"bbox_2d": [25, 250, 225, 750], "label": "in the padding"}, '
            '{"bbox_2d": [250, 0, 500, 500], "label": "across"}]')
    regions, dropped = parse_regions(text, frame, family.parse_style)
    assert [r.label for r in regions] == ["across"] and dropped == 1
    (x1, y1), (x2, y2) = regions[0].shape.vertices
    assert (x1, y1, x2, y2) == pytest.approx((1000, 0, 2000, 4))
