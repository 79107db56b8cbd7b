"""Against real QGIS (pytest-qgis, headless): the plugin's output layers (group, CRS, schema fields,
recreated after the user removes them) and their GeoPackage and shapefile exports (full text, split
shapefile text joined back exactly, atomic replacement)."""

import gc
import hashlib
import importlib
import os
import threading

import pytest
from qgis.core import (QgsCoordinateReferenceSystem, QgsExpression, QgsExpressionContext, QgsFeature, QgsGeometry,
                       QgsProject, QgsVectorFileWriter, QgsVectorLayer)
from qgis.PyQt.QtCore import QCoreApplication

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRS = "EPSG:32631"
# 2,000 characters, non-ASCII (2- and 3-byte UTF-8) and spaces, no space at either end
ANSWER = ("Les bâtiments près de la Saône ont été inondés ; 洪水区域 ≈ 3 km², routes coupées. " * 30)[:1999] + "."


@pytest.fixture(scope="module")
def pkg(plugin_package):
    """Modules of the plugin package ``earthgptx``."""
    return {name: importlib.import_module(f"earthgptx.{name}")
            for name in ("plugin.layers", "plugin.export", "plugin.session", "model_backend.core.schema",
                         "model_backend.core.errors")}


@pytest.fixture
def outputs(pkg, qgis_new_project):
    """Output layers of a fresh project in UTM 31N; layers leave with the project (QGIS 3.22 exit crash)."""
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem(CRS))
    yield pkg["plugin.layers"].OutputLayers()
    QgsProject.instance().clear()
    gc.collect()


def ask(outputs, qid="q1", detection_wkts=("POLYGON((500010 5000010, 500040 5000010, 500040 5000030, "
                                           "500010 5000030, 500010 5000010))",
                                           "POLYGON((500060 5000060, 500090 5000060, 500090 5000090, "
                                           "500060 5000090, 500060 5000060))")):
    """One question: a point prompt and a polygon prompt, a 2,000-character answer, detections."""
    prompts = [(QgsGeometry.fromWkt("POINT(500020 5000020)"), {"question_id": qid, "prompt_index": 1, "kind": "point"}),
               (QgsGeometry.fromWkt("POLYGON((500050 5000050, 500100 5000050, 500100 5000100, 500050 5000050))"),
                {"question_id": qid, "prompt_index": 2, "kind": "polygon"})]
    answer = (QgsGeometry.fromWkt("POLYGON((500000 5000000, 500128 5000000, 500128 5000128, 500000 5000128, "
                                  "500000 5000000))"),
              {"answer_id": f"a-{qid}", "question_id": qid, "question": "Qu'est-ce qui relie la région 1 à la 2 ?",
               "answer": ANSWER, "task": "relation", "model": "tiny", "chip_resolution": 0.5,
               "created": "2024-05-01T10:00:00+00:00"})
    detections = [(QgsGeometry.fromWkt(wkt), {"answer_id": f"a-{qid}", "label": f"bâtiment {i}", "rank": i,
                                              "kind": "box"}) for i, wkt in enumerate(detection_wkts, 1)]
    return outputs.add_question(prompts, answer, detections)


def read(uri):
    """Features of a file layer as (WKT, attributes) pairs; the layer is gone before returning."""
    layer = QgsVectorLayer(uri, "check", "ogr")
    assert layer.isValid(), uri
    rows = [(f.geometry().asWkt(), {k: f[k] for k in f.fields().names()}) for f in layer.getFeatures()]
    names = layer.fields().names()
    del layer
    return rows, names


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".earthgptx-")]


def test_layers_in_group_in_project_crs_with_schema_fields(outputs, pkg):
    assert ask(outputs) == {"prompts": 2, "answers": 1, "detections": 2, "masks": 0}
    root = QgsProject.instance().layerTreeRoot()
    group = root.children()[0]
    assert group.name() == "EarthGPT-X"
    names = sorted(node.layer().name() for node in group.findLayers())
    assert names == ["answers (polygons)", "detections (polygons)", "prompts (points)", "prompts (polygons)"]
    schema = pkg["model_backend.core.schema"]
    for name, layers in outputs.layers().items():
        for layer in layers:
            assert layer.crs().authid() == CRS and layer.providerType() == "memory"
            types = {"str": "string", "int": "integer", "float": "double"}
            assert [(f.name(), f.typeName()) for f in layer.fields()] == [
                (key, types[kind]) for key, kind in schema.FIELDS[name]]
            assert layer.labelsEnabled() == (name != "answers")   # an answer is read in the dock, not on the map
    [answers] = outputs.layers()["answers"]
    [feature] = answers.getFeatures()
    assert feature["answer"] == ANSWER and feature["chip_resolution"] == 0.5
    context = QgsExpressionContext()
    context.setFeature(feature)
    label = QgsExpression(answers.labeling().settings().fieldName).evaluate(context)
    assert label == ANSWER[:40] + "…"   # ready for an analyst who turns the labels on
    # a second question goes to the same layers
    ask(outputs, "q2")
    assert [layer.featureCount() for layer in outputs.layers()["prompts"]] == [2, 2]


def test_bad_geometry_adds_nothing(outputs, pkg):
    with pytest.raises(pkg["model_backend.core.errors"].InvalidArgumentError):
        outputs.add_question([(QgsGeometry(), {"prompt_index": 1})], None, [])
    assert outputs.layers() == {"prompts": [], "answers": [], "detections": [], "masks": []}


def test_only_the_main_thread_may_add(outputs):
    errors = []

    def add_from_worker():
        try:
            outputs.add_question([], None, [])
        except RuntimeError as error:
            errors.append(error)

    worker = threading.Thread(target=add_from_worker)
    worker.start()
    worker.join()
    assert len(errors) == 1


def test_layers_recreated_after_user_removes_them(outputs):
    ask(outputs)
    root = QgsProject.instance().layerTreeRoot()
    root.removeChildNode(root.children()[0])
    ask(outputs, "q2")  # before QGIS removes the layers of the group from the project (queued)
    QCoreApplication.processEvents()
    group = root.children()[0]
    assert group.name() == "EarthGPT-X" and len(group.findLayers()) == 4
    assert len(QgsProject.instance().mapLayers()) == 4
    [answers] = outputs.layers()["answers"]
    assert [f["question_id"] for f in answers.getFeatures()] == ["q2"]
    # one layer removed: only it comes back, inside the group
    QgsProject.instance().removeMapLayer(answers.id())
    ask(outputs, "q3")
    assert len(root.children()[0].findLayers()) == 4
    assert [f["question_id"] for f in outputs.layers()["answers"][0].getFeatures()] == ["q3"]
    assert outputs.layers()["prompts"][0].featureCount() == 2


def test_gpkg_round_trip_keeps_full_text(outputs, pkg, tmp_path):
    ask(outputs)
    path = str(tmp_path / "out.gpkg")
    report = pkg["plugin.export"].export_gpkg(outputs.layers(), path)
    assert report.files == [path] and report.features == {"prompts": 2, "answers": 1, "detections": 2, "masks": 0}
    prompts, _ = read(f"{path}|layername=prompts")
    assert sorted(wkt.split(" ")[0] for wkt, _ in prompts) == ["Point", "Polygon"]
    [(_, answer)], names = read(f"{path}|layername=answers")
    assert answer["answer"] == ANSWER and len(answer["answer"]) == 2000
    assert names[1:] == [key for key, _ in pkg["model_backend.core.schema"].FIELDS["answers"]]
    detections, _ = read(f"{path}|layername=detections")
    assert [a["label"] for _, a in detections] == ["bâtiment 1", "bâtiment 2"]
    assert leftovers(tmp_path) == []
    # again, with a second question: only what is new is added, and the file holds both
    ask(outputs, "q2")
    report = pkg["plugin.export"].export_gpkg(outputs, path)  # the outputs object itself will do
    assert report.features == {"prompts": 4, "answers": 2, "detections": 4, "masks": 0}
    assert report.added == {"prompts": 2, "answers": 1, "detections": 2, "masks": 0}
    answers, _ = read(f"{path}|layername=answers")
    assert [a["question_id"] for _, a in answers] == ["q1", "q2"]
    assert sorted(os.listdir(tmp_path)) == ["out.gpkg"]


def test_gpkg_export_into_a_users_geopackage_keeps_its_layers(outputs, pkg, tmp_path):
    path = str(tmp_path / "site.gpkg")
    roads = QgsVectorLayer("LineString?crs=EPSG:32631&field=name:string", "roads", "memory")
    feature = QgsFeature(roads.fields())
    feature.setGeometry(QgsGeometry.fromWkt("LINESTRING(500000 5000000, 500100 5000100)"))
    feature["name"] = "quay road"
    roads.dataProvider().addFeatures([feature])
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName, options.layerName = "GPKG", "roads"
    error = QgsVectorFileWriter.writeAsVectorFormatV3(roads, path, QgsProject.instance().transformContext(), options)
    assert error[0] == QgsVectorFileWriter.WriterError.NoError
    ask(outputs)
    pkg["plugin.export"].export_gpkg(outputs, path)
    [(wkt, props)], _ = read(f"{path}|layername=roads")
    assert props["name"] == "quay road" and wkt.startswith("LineString")
    [(_, answer)], _ = read(f"{path}|layername=answers")
    assert answer["answer"] == ANSWER


def test_shapefile_round_trip_joins_split_text(outputs, pkg, tmp_path):
    schema, export = pkg["model_backend.core.schema"], pkg["plugin.export"]
    ask(outputs)
    report = export.export_shapefiles(outputs.layers(), str(tmp_path / "out.shp"))
    assert [os.path.basename(f) for f in report.files] == [
        "out_prompts_point.shp", "out_prompts_polygon.shp", "out_answers.shp", "out_detections.shp"]
    assert report.split_fields == ["answer"]
    [(wkt, props)], names = read(str(tmp_path / "out_answers.shp"))
    assert all(len(n) <= 10 for n in names) and "quantizatn" in names and "answer_8" in names
    full = schema.from_shapefile(props)
    assert full["answer"] == ANSWER and full["chip_resolution"] == 0.5 and full["question_id"] == "q1"
    assert "Polygon" in wkt  # OGR reads shapefile polygons as multipolygons
    [(wkt, props)], _ = read(str(tmp_path / "out_prompts_point.shp"))
    assert wkt.startswith("Point") and props["prompt_idx"] == 1
    assert leftovers(tmp_path) == []

    # again, now with a point detection too: detections split by family, the old set removed
    ask(outputs, "q2", detection_wkts=("POINT(500070 5000070)",))
    report = export.export_shapefiles(outputs.layers(), str(tmp_path / "out.shp"))
    assert [os.path.basename(f) for f in report.files][-2:] == ["out_detections_point.shp",
                                                                "out_detections_polygon.shp"]
    assert not any(n.startswith("out_detections.") for n in os.listdir(tmp_path))
    answers, _ = read(str(tmp_path / "out_answers.shp"))
    assert [schema.from_shapefile(p)["answer"] for _, p in answers] == [ANSWER, ANSWER]
    assert leftovers(tmp_path) == []


def test_a_refused_export_keeps_previous_files(outputs, pkg, tmp_path):
    """Real refusals: a user's shapefile with our name, a foreign layer of our name, too long a text."""
    export, error = pkg["plugin.export"], pkg["model_backend.core.errors"].OutputError
    ask(outputs)
    gpkg, shp = str(tmp_path / "out.gpkg"), str(tmp_path / "out.shp")
    export.export_gpkg(outputs.layers(), gpkg)
    export.export_shapefiles(outputs.layers(), shp)
    before = {n: digest(tmp_path / n) for n in os.listdir(tmp_path) if os.path.isfile(tmp_path / n)}
    # a user's own shapefile where our next set would go
    other = tmp_path / "mine"
    other.mkdir()
    user = QgsVectorLayer("Point?crs=EPSG:32631&field=note:string", "x", "memory")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "ESRI Shapefile"
    QgsVectorFileWriter.writeAsVectorFormatV3(user, str(other / "out_answers.shp"),
                                              QgsProject.instance().transformContext(), options)
    users = {n: digest(other / n) for n in os.listdir(other)}
    with pytest.raises(error, match="not written by EarthGPT-X"):
        export.export_shapefiles(outputs.layers(), str(other / "out.shp"))
    assert {n: digest(other / n) for n in os.listdir(other)} == users
    ask(outputs, "q2")
    [answers] = outputs.layers()["answers"]
    answers.startEditing()
    for feature in answers.getFeatures():
        answers.changeAttributeValue(feature.id(), answers.fields().indexOf("answer"), "word " * 20000)
    answers.commitChanges()
    with pytest.raises(error, match="too long for a shapefile"):
        export.export_shapefiles(outputs.layers(), shp)
    assert {n: digest(tmp_path / n) for n in os.listdir(tmp_path) if os.path.isfile(tmp_path / n)} == before


def test_bad_targets_are_clear_errors(outputs, pkg, tmp_path):
    export, error = pkg["plugin.export"], pkg["model_backend.core.errors"].InvalidArgumentError
    with pytest.raises(error, match="nothing to export"):
        export.export_gpkg(outputs.layers(), str(tmp_path / "out.gpkg"))
    ask(outputs)
    for write, path in [(export.export_gpkg, tmp_path / "out.shp"), (export.export_shapefiles, tmp_path / "out.gpkg"),
                        (export.export_gpkg, tmp_path / "missing" / "out.gpkg")]:
        with pytest.raises(error):
            write(outputs.layers(), str(path))
    assert os.listdir(tmp_path) == []


def test_outlines_export_to_both_formats(outputs, pkg, tmp_path):
    ring = "((500010 5000010, 500040 5000010, 500040 5000030, 500010 5000030, 500010 5000010))"
    mask = (QgsGeometry.fromWkt(f"MULTIPOLYGON({ring})"),
            {"answer_id": "a1", "label": "ship", "score": 0.9, "area_m2": 600.0, "rank": 1, "prompt_kind": "detection",
             "model": "sam"})
    assert outputs.add_question([], None, [], [mask])["masks"] == 1
    report = pkg["plugin.export"].export_gpkg(outputs.layers(), str(tmp_path / "o.gpkg"))
    assert report.added["masks"] == 1
    import fiona
    with fiona.open(str(tmp_path / "o.gpkg"), layer="masks") as src:
        (f,) = list(src)
        assert f["properties"]["label"] == "ship" and f["properties"]["area_m2"] == 600.0
    assert pkg["plugin.export"].export_gpkg(outputs.layers(), str(tmp_path / "o.gpkg")).added["masks"] == 0
    shp = pkg["plugin.export"].export_shapefiles(outputs.layers(), str(tmp_path / "o.shp"))
    assert any(p.endswith("o_masks.shp") for p in shp.files)
    with fiona.open(str(tmp_path / "o_masks.shp")) as src:
        assert {"prompt_knd", "area_m2"} <= set(src.schema["properties"]) and len(src) == 1


def test_the_session_geopackage_holds_every_answer_after_the_project_is_closed_and_reopened(pkg, qgis_new_project,
                                                                                          tmp_path):
    """A saved project: the output layers are tables of NAME_earthgptx.gpkg beside it, every feature on
    disk as soon as it is added (read here with sqlite, before any save), and reopening the project file
    shows them again, styled, and the next question appends to the same tables."""
    import sqlite3

    project = QgsProject.instance()
    project.setCrs(QgsCoordinateReferenceSystem(CRS))
    path = str(tmp_path / "survey.qgz")
    assert project.write(path)
    session = pkg["plugin.session"].SessionStore()
    outputs = pkg["plugin.layers"].OutputLayers(session=session)
    ask(outputs)
    gpkg = str(tmp_path / "survey_earthgptx.gpkg")
    assert session.path(project) == gpkg
    with sqlite3.connect(gpkg) as db:   # what a crash would leave: already on disk
        tables = {r[0] for r in db.execute("SELECT table_name FROM gpkg_contents")}
        assert {"answers_polygon", "detections_polygon", "prompts_point", "prompts_polygon"} <= tables
        assert db.execute("SELECT count(*) FROM answers_polygon").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM detections_polygon").fetchone()[0] == 2
        assert db.execute("SELECT count(*) FROM layer_styles").fetchone()[0] >= 4   # styles travel with it
    assert project.write()
    project.clear()
    gc.collect()
    assert project.read(path)
    reopened = pkg["plugin.layers"].OutputLayers(session=pkg["plugin.session"].SessionStore())
    layers = reopened.layers()
    (answers,) = layers["answers"]
    assert answers.providerType() == "ogr" and answers.featureCount() == 1
    assert next(answers.getFeatures())["answer"] == ANSWER
    assert sum(layer.featureCount() for layer in layers["detections"]) == 2
    assert not answers.labelsEnabled() and layers["detections"][0].labelsEnabled()
    ask(reopened, "q2")
    with sqlite3.connect(gpkg) as db:
        assert db.execute("SELECT count(*) FROM answers_polygon").fetchone()[0] == 2
    project.clear()
    gc.collect()


def test_a_session_folder_that_cannot_be_written_leaves_memory_layers_and_says_so(pkg, qgis_new_project, tmp_path):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    outputs = pkg["plugin.layers"].OutputLayers(session=pkg["plugin.session"].SessionStore(str(blocked / "sub")))
    got = []
    from qgis.core import QgsApplication
    QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: got.append((tag, text)))
    assert ask(outputs)["answers"] == 1                      # the question is not lost
    (answers,) = outputs.layers()["answers"]
    assert answers.providerType() == "memory"
    QgsApplication.processEvents()
    assert any(tag == "EarthGPT-X" and "cannot make the session folder" in text and "export" in text
               for tag, text in got)


def test_detections_are_labelled_with_rank_and_label(outputs, pkg):
    ask(outputs)
    (detections,) = outputs.layers()["detections"]
    context = QgsExpressionContext()
    first = min(detections.getFeatures(), key=lambda f: f["rank"])
    context.setFeature(first)
    assert QgsExpression(detections.labeling().settings().fieldName).evaluate(context) == f"1. {first['label']}"
