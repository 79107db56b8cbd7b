"""Model answers -> chip-pixel regions (model_backend.models.parsing)."""

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from model_backend.core.encoding import Convention, CoordinateFrame
from model_backend.core.errors import InvalidArgumentError
from model_backend.models.parsing import MAX_TEXT_CHARS, parse_regions
from model_backend.core.prompts import PromptKind

REL = CoordinateFrame(Convention.REL_1000, 1000, 500)
RESIZED = CoordinateFrame(Convention.RESIZED_PIXELS, 1000, 500, resized_width=812, resized_height=420)
SQUARE = CoordinateFrame(Convention.SQUARE_UNIT, 800, 400)  # padded to 800x800: 200 px above and below

QWEN3_SHIPS = ('```json\n[\n  {"bbox_2d": [120, 340, 260, 480], "label": "ship"},\n'
               '  {"bbox_2d": [600, 100, 720, 210], "label": "ship"}\n]\n```')


def _bounds(regions):
    return [r.shape.bounds() for r in regions]


def _assert_inside(regions, frame):
    for r in regions:
        v = np.array(r.shape.vertices, float)
        assert np.all(v >= 0) and np.all(v[:, 0] <= frame.chip_width) and np.all(v[:, 1] <= frame.chip_height)


# -- qwen: JSON ---------------------------------------------------------------------------------
def test_qwen3_fenced_json_boxes_to_exact_chip_pixels_with_spans():
    regions, dropped = parse_regions(QWEN3_SHIPS, REL, "qwen")
    assert dropped == 0
    assert [r.shape.kind for r in regions] == [PromptKind.BOX, PromptKind.BOX]
    assert _bounds(regions) == [(120, 170, 260, 240), (600, 50, 720, 105)]
    assert [r.label for r in regions] == ["ship", "ship"]
    first = QWEN3_SHIPS[slice(*regions[0].span)]
    assert first == '{"bbox_2d": [120, 340, 260, 480], "label": "ship"}'
    assert "600, 100, 720, 210" in QWEN3_SHIPS[slice(*regions[1].span)]


def test_qwen25_absolute_resized_pixels_with_prose_around_and_label_first():
    text = ('Here are the cars:\n```json\n[\n\t{"bbox_2d": [406, 210, 812, 420], "label": "white car"},\n'
            '\t{"label": "red car", "bbox_2d": [203, 105, 609, 315]}\n]\n```\nBoth are parked.')
    regions, dropped = parse_regions(text, RESIZED, "qwen")
    assert dropped == 0
    assert np.allclose(_bounds(regions), [(500, 250, 1000, 500), (250, 125, 750, 375)])
    assert [r.label for r in regions] == ["white car", "red car"]
    assert text[slice(*regions[1].span)].startswith('{"label": "red car"')


def test_qwen_points_are_decoded_and_clamped():
    text = '[{"point_2d": [250, 800], "label": "tower"}, {"point": [1200, -10]}]'
    regions, dropped = parse_regions(text, REL, "qwen")
    assert dropped == 0
    assert [r.shape.kind for r in regions] == [PromptKind.POINT, PromptKind.POINT]
    assert [r.shape.vertices[0] for r in regions] == [(250, 400), (1000, 0)]
    assert [r.label for r in regions] == ["tower", ""]


def test_qwen_single_objects_single_quotes_trailing_commas_and_other_keys():
    text = ("The plane is {'bbox_2d': [100, 100, 300, 300,], 'name': 'plane', 'score': 0.9} and the "
            'tank is {"box": [[500, 600], [600, 700]], "category": "tank \\"T-72\\""}; '
            'also {"bbox": [0, 0, 10, 10], "text": "sign", "extra": [1, 2]}.')
    regions, dropped = parse_regions(text, REL, "qwen")
    assert dropped == 0
    assert _bounds(regions) == [(100, 50, 300, 150), (500, 300, 600, 350), (0, 0, 10, 5)]
    assert [r.label for r in regions] == ["plane", 'tank "T-72"', "sign"]


def test_qwen_two_geometry_keys_in_one_object_share_its_label_and_span():
    text = 'Found: {"bbox_2d": [100, 100, 300, 300], "point_2d": [200, 200], "label": "car"}.'
    span = (text.index("{"), text.index("}") + 1)
    regions, dropped = parse_regions(text, REL, "qwen")
    assert dropped == 0
    assert [(r.shape.kind, r.label, r.span) for r in regions] == [(PromptKind.BOX, "car", span),
                                                                   (PromptKind.POINT, "car", span)]


def test_qwen_swapped_corners_are_normalised():
    regions, _ = parse_regions('{"bbox_2d": [260, 480, 120, 340], "label": "ship"}', REL, "qwen")
    assert _bounds(regions) == [(120, 170, 260, 240)]


def test_qwen_polygons_and_invalid_polygons():
    text = ('[{"polygon": [[100, 100], [400, 100], [400, 400], [100, 400]], "label": "field"},'
            ' {"points": [[0, 0], [10, 10], [0, 10], [10, 0]], "label": "bow tie"},'
            ' {"points": [[0, 0], [10, 10]], "label": "two"}]')
    regions, dropped = parse_regions(text, REL, "qwen")
    assert dropped == 2  # self-crossing, too few vertices
    (field,) = regions
    assert field.shape.kind is PromptKind.POLYGON and field.label == "field"
    assert field.shape.vertices == ((100, 50), (400, 50), (400, 200), (100, 200))


def test_qwen_truncated_list_keeps_complete_objects_and_drops_the_cut_one():
    for cut in ('  {"bbox_2d": [810, 4', '  {"bbox_2d": [810, 400, 900, 500], "lab',
                '  {"bbox_2d": [810, 400, 900, 500], "label": "sh'):
        text = QWEN3_SHIPS[:-6] + ",\n" + cut
        regions, dropped = parse_regions(text, REL, "qwen")
        assert _bounds(regions) == [(120, 170, 260, 240), (600, 50, 720, 105)], cut
        assert dropped == 1, cut


def test_qwen_bad_groups_are_dropped_and_counted():
    text = ('[{"bbox_2d": [100, 100, 100, 300]}, {"bbox_2d": [1100, 0, 1200, 100]},'
            ' {"bbox_2d": [1, 2, 3]}, {"bbox_2d": ["a", 2, 3, 4]}, {"bbox_2d": [NaN, 2, 3, 4]},'
            ' {"bbox_2d": null}, {"point_2d": [1e999, 5]}, {"bbox_2d": [1, 2, 3, 4, 5, 6]},'
            ' {"bbox_2d": [[[1, 2]], [3, 4]]}, {"point_2d": [1 2]},'
            ' {"bbox_2d": [10, 20, 30, 40], "label": "ok"}]')
    regions, dropped = parse_regions(text, REL, "qwen")
    assert dropped == 10
    assert [(r.label, r.shape.bounds()) for r in regions] == [("ok", (10, 10, 30, 20))]


def test_qwen2_tags_share_a_reference_and_truncated_tag_counts():
    text = ("<|object_ref_start|>the red car<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>"
            "<|box_start|>(500,500),(600,600)<|box_end|> and a point <|box_start|>(10,10)<|box_end|>"
            " then <|box_start|>(1,2")
    regions, dropped = parse_regions(text, REL, "qwen")
    assert dropped == 1
    assert [r.label for r in regions] == ["the red car", "the red car", ""]
    assert _bounds(regions) == [(100, 100, 300, 200), (500, 250, 600, 300), (10, 5, 10, 5)]
    assert text[slice(*regions[0].span)].startswith("<|object_ref_start|>")
    assert text[slice(*regions[0].span)].endswith("<|box_end|>")


def test_qwen_prose_lists_only_without_json():
    text = "The ship is at [120, 340, 260, 480], its bow at [130.5, 350.0]; see note [3] and [1, 2, 3]."
    regions, dropped = parse_regions(text, REL, "qwen")
    assert dropped == 0
    assert [r.shape.kind for r in regions] == [PromptKind.BOX, PromptKind.POINT]
    assert regions[0].shape.bounds() == (120, 170, 260, 240)
    assert regions[1].shape.vertices == ((130.5, 175.0),)
    assert [text[slice(*r.span)] for r in regions] == ["[120, 340, 260, 480]", "[130.5, 350.0]"]
    assert all(r.label == "" for r in regions)
    regions, _ = parse_regions('{"bbox_2d": [1, 2, 3, 4]} see also [500, 600]', REL, "qwen")
    assert len(regions) == 1 and regions[0].shape.kind is PromptKind.BOX


def test_qwen_degenerate_prose_box_is_dropped():
    assert parse_regions("at [100, 200, 100, 400]", REL, "qwen") == ([], 1)


# -- sphinx -------------------------------------------------------------------------------------
def test_sphinx_multi_box_point_and_unlabelled():
    text = "There are <p>3 ships</p>[0.12,0.40,0.18,0.47; 0.61,0.30,0.66,0.36] and a buoy [0.50, 0.50]."
    regions, dropped = parse_regions(text, SQUARE, "sphinx")
    assert dropped == 0
    assert [r.label for r in regions] == ["ships", "ships", ""]
    assert np.allclose(_bounds(regions), [(96, 120, 144, 176), (488, 40, 528, 88), (400, 200, 400, 200)])
    assert [text[slice(*r.span)] for r in regions] == ["0.12,0.40,0.18,0.47", "0.61,0.30,0.66,0.36", "0.50, 0.50"]


def test_sphinx_spaces_clamping_bad_groups_and_truncation():
    text = ("<p> harbour </p> [ 0.10 , 0.30 , 0.90 , 0.70 ] <p>ship</p>[0.1,0.2,0.3] "
            "<p>tank</p>[0.5, 0.05] see [1] or [the map] <p>cars</p>[0.2,0.3,0.3,0.4;0.6,0.6,0.7,0.7;0.8,0.")
    regions, dropped = parse_regions(text, SQUARE, "sphinx")
    assert dropped == 2  # three numbers; the group cut by the end of the text
    assert [r.label for r in regions] == ["harbour", "tank", "cars", "cars"]
    assert np.allclose(regions[0].shape.bounds(), (80, 40, 720, 360))
    assert np.allclose(regions[1].shape.vertices, [(400, 0)])  # in the top padding: clamped to the chip
    assert np.allclose(_bounds(regions[2:]), [(160, 40, 240, 120), (480, 280, 560, 360)])


def test_sphinx_padding_is_clamped_on_a_tall_chip_and_six_numbers_are_no_box():
    tall = CoordinateFrame(Convention.SQUARE_UNIT, 400, 800)  # 200 px of padding left and right
    regions, dropped = parse_regions("<p>river</p>[0.1,0.1,0.9,0.9] <p>x</p>[0.1,0.1,0.2,0.2,0.3,0.1]", tall, "sphinx")
    assert dropped == 1
    assert np.allclose(_bounds(regions), [(0, 80, 400, 720)])


def test_qwen2_tag_with_three_vertices_is_a_polygon_but_prose_six_numbers_are_not():
    regions, dropped = parse_regions("<|box_start|>(100,100),(300,100),(200,300)<|box_end|>", REL, "qwen")
    assert dropped == 0 and regions[0].shape.kind is PromptKind.POLYGON
    assert regions[0].shape.vertices == ((100, 50), (300, 50), (200, 150))
    assert parse_regions("[100, 100, 300, 100, 200, 300]", REL, "qwen") == ([], 0)


# -- contract -----------------------------------------------------------------------------------
def test_unknown_style_is_an_argument_error():
    with pytest.raises(InvalidArgumentError):
        parse_regions("[1, 2]", REL, "llava")


def test_nothing_beyond_the_text_cap_is_read():
    assert parse_regions(" " * MAX_TEXT_CHARS + QWEN3_SHIPS, REL, "qwen") == ([], 0)
    assert len(parse_regions(QWEN3_SHIPS + " " * MAX_TEXT_CHARS, REL, "qwen")[0]) == 2


@pytest.mark.parametrize("hostile", [
    "[" * 150_000, "{" * 150_000, '{"bbox_2d": [' * 15_000, '"bbox_2d": [1, 2, 3, 4] ' * 8_000,
    "<p>" * 60_000, "<p>a</p>[" * 20_000, "<|box_start|>" * 15_000,
    "<|object_ref_start|>" + "x" * 150_000, "[" + "1" * 150_000, "[1, " * 50_000,
    '{"label": "' + "\\" * 150_000, "'bbox': [" + "9," * 80_000, "[0.1,0.2;" * 20_000,
], ids=lambda s: repr(s[:24]))
def test_hostile_inputs_are_fast_and_do_not_raise(hostile):
    t0 = time.perf_counter()
    for style, frame in (("qwen", REL), ("sphinx", SQUARE)):
        regions, dropped = parse_regions(hostile, frame, style)
        assert dropped >= 0
        _assert_inside(regions, frame)
    assert time.perf_counter() - t0 < 5.0


frames = st.one_of(
    st.builds(CoordinateFrame, st.sampled_from([Convention.CHIP_PIXELS, Convention.SQUARE_UNIT, Convention.REL_1000]),
              st.integers(1, 4096), st.integers(1, 4096)),
    st.builds(lambda w, h, rw, rh: CoordinateFrame(Convention.RESIZED_PIXELS, w, h, rw, rh),
              st.integers(1, 4096), st.integers(1, 4096), st.integers(28, 2048), st.integers(28, 2048)))

FRAGMENTS = ['{', '}', '[', ']', '"', "'", ',', ';', ':', ' ', '\n', '0', '1', '12', '.5', '-3', '1e9', 'NaN',
             'inf', '"bbox_2d":', "'point_2d':", '"polygon":', '"label": "x"', '<p>', '</p>', 'ship',
             '<|object_ref_start|>', '<|object_ref_end|>', '<|box_start|>', '<|box_end|>', '(', ')', '```json']


@settings(max_examples=100)
@given(st.one_of(st.text(), st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)),
       frames, st.sampled_from(["qwen", "sphinx"]))
def test_never_raises_and_regions_stay_inside_the_chip(text, frame, style):
    regions, dropped = parse_regions(text, frame, style)
    assert dropped >= 0
    _assert_inside(regions, frame)
    for r in regions:
        assert 0 <= r.span[0] < r.span[1] <= len(text)


finite_or_not = st.one_of(st.floats(-1e4, 1e4), st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-10**6, 10**6))


@settings(max_examples=60)
@given(frames, st.lists(st.tuples(st.sampled_from(["bbox_2d", "point_2d"]),
                                  st.lists(finite_or_not, min_size=1, max_size=5)), max_size=6))
def test_every_qwen_object_is_a_region_or_counted_as_dropped(frame, objects):
    items = [{key: values, "label": f"o{k}"} for k, (key, values) in enumerate(objects)]
    text = json.dumps(items)  # NaN / Infinity written as JSON's non-standard literals
    regions, dropped = parse_regions(text, frame, "qwen")
    assert len(regions) + dropped == len(objects)
    _assert_inside(regions, frame)
    assert all(r.label.startswith("o") for r in regions)


@settings(max_examples=80)
@given(frames, st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
                        min_size=1, max_size=4), st.sampled_from(["qwen", "sphinx"]))
def test_encoded_boxes_round_trip_within_one_model_unit(frame, unit_boxes, style):
    w, h = frame.chip_width, frame.chip_height
    boxes = [(a * w, b * h, c * w, d * h) for a, b, c, d in unit_boxes]
    encoded = []
    for x1, y1, x2, y2 in boxes:
        mx, my = (frame.round(v) for v in frame.to_model([x1, x2], [y1, y2]))
        encoded.append([float(mx[0]), float(my[0]), float(mx[1]), float(my[1])])
    fmt = frame.format_number
    if style == "qwen":
        text = "```json\n" + json.dumps([{"bbox_2d": e, "label": "b"} for e in encoded]) + "\n```"
    else:
        text = "<p>b</p>[" + ";".join(",".join(fmt(v) for v in e) for e in encoded) + "]"
    regions, dropped = parse_regions(text, frame, style)
    degenerate = [e[0] == e[2] or e[1] == e[3] for e in encoded]
    assert dropped == sum(degenerate)
    unit = {Convention.SQUARE_UNIT: 0.01, Convention.CHIP_PIXELS: 0.1}.get(frame.convention, 1.0)
    for r, e in zip(regions, [e for e, d in zip(encoded, degenerate) if not d]):
        assert r.shape.kind is PromptKind.BOX and r.label == "b"
        (x1, y1), (x2, y2) = r.shape.vertices
        mx, my = frame.to_model([x1, x2], [y1, y2])
        want = np.array([min(e[0], e[2]), min(e[1], e[3]), max(e[0], e[2]), max(e[1], e[3])])
        assert np.allclose([mx[0], my[0], mx[1], my[1]], want, atol=unit + 1e-9)
    _assert_inside(regions, frame)



def test_qwen_objects_with_nested_attribute_objects_keep_their_boxes_and_labels():
    """As the cookbooks' attribute examples write: every box of such an answer used to be lost."""
    text = ('```json\n[{"bbox_2d": [100, 100, 300, 300], "label": "car", "attrs": {"color": "red", '
            '"size": {"w": 3}}},\n {"label": "van", "attrs": {"color": "white"}, '
            '"bbox_2d": [400, 400, 500, 600]}]\n```')
    regions, dropped = parse_regions(text, REL, "qwen")
    assert dropped == 0 and [r.label for r in regions] == ["car", "van"]
    assert _bounds(regions) == [(100, 50, 300, 150), (400, 200, 500, 300)]


def test_qwen_labels_under_other_keys_and_label_objects():
    text = ('[{"bbox_2d": [1, 2, 30, 40], "names": {"zh": "船", "en": "ship"}}, '
            '{"bbox_2d": [5, 6, 70, 80], "object_name": "tank"}, {"bbox_2d": [5, 6, 70, 80], "class": "plane"}]')
    regions, _ = parse_regions(text, REL, "qwen")
    assert [r.label for r in regions] == ["ship", "tank", "plane"]


def test_qwen_one_object_with_repeated_keys_labels_each_box_by_the_name_before_it():
    text = ('{"object_name": "monitor", "bbox": [195, 138, 617, 480], '
            '"object_name": "laptop", "bbox": [663, 399, 917, 657]}')
    regions, _ = parse_regions(text, REL, "qwen")
    assert [r.label for r in regions] == ["monitor", "laptop"]


def test_qwen2_5_plain_text_lines_are_boxes_and_prose_numbers_are_not():
    regions, dropped = parse_regions("43,378,996,957 cakes\n 520, 101, 700, 300 cupcake with sprinkles\n",
                                     RESIZED, "qwen")
    assert dropped == 0 and [r.label for r in regions] == ["cakes", "cupcake with sprinkles"]
    assert parse_regions("In 2019, 20, 30, 40 ships were seen.\nThere are 3,4,5,6", RESIZED, "qwen") == ([], 0)


def test_sphinx_counts_in_the_phrase_and_oriented_boxes():
    text = ("<p>13 ships</p>[0.10,0.30,0.20,0.40;0.30,0.30,0.40,0.30,0.40,0.40,0.30,0.40]"
            "<p>3-way junction</p>[0.5,0.5,0.6,0.6]")
    regions, dropped = parse_regions(text, SQUARE, "sphinx")
    assert dropped == 0 and [(r.label, r.shape.kind) for r in regions] == [
        ("ships", PromptKind.BOX), ("ships", PromptKind.POLYGON), ("3-way junction", PromptKind.BOX)]
    assert len(regions[1].shape.vertices) == 4


def test_qwen_molmo_style_point_tags_and_a_tag_written_as_a_json_value():
    text = ('<points x1="154" y1="104" x2="885" y2="104" alt="roofs">roofs</points> and '
            '<point x="500" y="250" alt="car"></point>')
    regions, dropped = parse_regions(text, REL, "qwen")
    assert dropped == 0 and [(r.label, r.shape.kind) for r in regions] == [
        ("roofs", PromptKind.POINT), ("roofs", PromptKind.POINT), ("car", PromptKind.POINT)]
    assert [r.shape.vertices[0] for r in regions] == [(154, 52), (885, 52), (500, 125)]
    tagged = '[{"bbox": <|box_start|>(100,200),(300,400)<|box_end|>, "label": "tank"}]'
    regions, _ = parse_regions(tagged, REL, "qwen")
    assert [(r.label, _bounds([r])[0]) for r in regions] == [("tank", (100, 100, 300, 200))]


def test_qwen_an_attribute_list_of_objects_and_a_truncated_object_labelled_first():
    nested = '[{"bbox_2d": [100, 200, 300, 400], "label": "car", "parts": [{"name": "wheel"}]}]'
    regions, dropped = parse_regions(nested, REL, "qwen")
    assert dropped == 0 and [r.label for r in regions] == ["car"]
    cut = '[{"label": "a", "bbox_2d": [1, 2, 30, 40]}, {"label": "b", "bbox_2d": [500, 600, 700, 800]'
    regions, _ = parse_regions(cut, REL, "qwen")
    assert [r.label for r in regions] == ["a", "b"]          # cut after a whole box whose label came first
