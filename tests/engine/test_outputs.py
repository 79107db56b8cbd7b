"""GeoPackage and shapefile outputs: schema, long answers never truncated, appending keeps what was there."""

import os

import fiona
import pytest
from pyproj import CRS
from shapely.geometry import Point, Polygon

from model_backend.core.errors import InvalidArgumentError
from model_backend.geo.outputs import Feature, QuestionRecord, read_layer, write_record

UTM = CRS.from_epsg(32618)
LONG = ("Large vessel moored along the eastern quay; " * 60)[:2000] + "é end"


def record(answer_text: str, with_point: bool = False) -> QuestionRecord:
    r = QuestionRecord(crs=UTM)
    poly = Polygon([(100000, 2800000), (101000, 2800000), (101000, 2801000), (100000, 2801000)])
    r.prompts.append(Feature(poly, {"question_id": "q1", "prompt_index": 1, "kind": "box"}))
    if with_point:
        r.prompts.append(Feature(Point(100500, 2800500), {"question_id": "q1", "prompt_index": 2, "kind": "point"}))
    r.answers.append(Feature(poly, {"answer_id": "a1", "question_id": "q1", "question": "What is here?",
                                    "answer": answer_text, "task": "region_captioning", "modality": "optical",
                                    "model": "tiny", "backend": "local", "quantization": "fp32",
                                    "raster_source": "x.tif", "chip_resolution": 30.0, "finish_reason": "stop",
                                    "created": "2026-11-27T11:00:00+00:00"}))
    r.detections.append(Feature(poly.buffer(-100), {"answer_id": "a1", "label": "ship", "rank": 1, "kind": "box"}))
    return r


@pytest.mark.parametrize("ext", ["gpkg", "shp"])
def test_long_answer_round_trips_in_full(tmp_path, ext):
    out = str(tmp_path / f"out.{ext}")
    report = write_record(out, record(LONG, with_point=True))
    answers = read_layer(out, "answers")
    assert len(answers) == 1 and answers[0].properties["answer"] == LONG
    assert answers[0].properties["chip_resolution"] == 30.0
    assert len(read_layer(out, "prompts")) == 2
    assert read_layer(out, "detections")[0].properties["label"] == "ship"
    if ext == "shp":
        assert "answer" in report.split_fields
        with fiona.open(str(tmp_path / "out_answers.shp")) as src:
            names = list(src.schema["properties"])
            assert all(len(n) <= 10 for n in names) and "answer_8" in names
            assert all(len((v or "").encode()) <= 254 for v in next(iter(src))["properties"].values()
                       if isinstance(v, str))
        assert os.path.exists(tmp_path / "out_prompts_point.shp") and os.path.exists(tmp_path / "out_prompts_polygon.shp")
    else:
        assert fiona.listlayers(out) == ["prompts", "answers", "detections"]


@pytest.mark.parametrize("ext", ["gpkg", "shp"])
def test_append_keeps_existing_features_and_crs(tmp_path, ext):
    out = str(tmp_path / f"out.{ext}")
    write_record(out, record("first"))
    second = record("second")
    # features of a later question in another CRS are reprojected to the output's CRS
    square = Polygon([(-77.6, 24.3), (-77.5, 24.3), (-77.5, 24.4), (-77.6, 24.4)])
    write_record(out, QuestionRecord(crs=CRS.from_epsg(4326), answers=[Feature(square, second.answers[0].properties)]))
    answers = read_layer(out, "answers")
    assert [a.properties["answer"] for a in answers] == ["first", "second"]
    assert 100000 < answers[1].geometry.centroid.x < 900000  # reprojected to UTM eastings, not degrees
    assert len(read_layer(out, "prompts")) == 1


def test_bad_output_paths(tmp_path):
    with pytest.raises(InvalidArgumentError, match=".gpkg or .shp"):
        write_record(str(tmp_path / "out.csv"), record("x"))
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        write_record(str(tmp_path / "missing" / "out.gpkg"), record("x"))


def test_text_split_never_loses_characters():
    from model_backend.core.schema import SHAPEFILE_TEXT_LIMIT, from_shapefile, split_text, text_parts, utf8_chunks
    for text in ["a " * 400, "é" * 300 + " x", "word " * 51 + "end", "   lead and trail   " * 30]:
        chunks = utf8_chunks(text, SHAPEFILE_TEXT_LIMIT)
        assert "".join(chunks) == text and all(len(c.encode()) <= SHAPEFILE_TEXT_LIMIT for c in chunks)
        row = {"answer": text}
        parts = text_parts([row])
        assert parts["answer"] == len(chunks)
        assert from_shapefile(split_text(row, parts))["answer"] == text
