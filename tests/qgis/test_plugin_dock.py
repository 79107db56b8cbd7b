"""The plugin against real QGIS, headless: mouse events on a real canvas in EPSG:3857 over a UTM raster
give the pixel prompts the spatial core computes directly; whole questions through the dock, the task
manager and a worker process add features where the model's regions point, on north-up, rotated and
GCP-only rasters; the main thread keeps turning while a question runs."""

import json
import os
import re
import sys
import time

import numpy as np
import pytest
from pyproj import CRS
from qgis.core import (Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsGeometry,
                       QgsPointXY, QgsProject, QgsRasterLayer, QgsRectangle, QgsWkbTypes)
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, QPointF, Qt, QTimer, QUrl
from qgis.PyQt.QtGui import QMouseEvent
from qgis.PyQt.QtWidgets import QApplication

from conftest import RASTERS
from model_backend.core.prompts import VisualPrompt
from model_backend.geo.locate import locate_prompt
from model_backend.geo.raster import RasterSource
from model_backend.core.chip_plan import ChipSettings
from openai_server import serve, sse_events, stream, url

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def pkg(plugin_package):
    return plugin_package


@pytest.fixture
def canvas_3857(qgis_app, qgis_new_project):
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "landsat", "gdal")
    QgsProject.instance().addMapLayer(layer)
    crs = QgsCoordinateReferenceSystem("EPSG:3857")
    QgsProject.instance().setCrs(crs)
    qgis_canvas = QgsMapCanvas()
    qgis_canvas.setDestinationCrs(crs)
    qgis_canvas.resize(800, 600)
    qgis_canvas.show()  # the map settings take the widget's size only once it is shown
    QgsApplication.processEvents()
    ext = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance()).transformBoundingBox(layer.extent())
    qgis_canvas.setExtent(ext)
    qgis_canvas.refresh()
    assert qgis_canvas.mapSettings().outputSize().width() > 700
    yield qgis_canvas, layer
    qgis_canvas.hide()
    qgis_canvas.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def mouse(canvas, kind, x, y, button=Qt.MouseButton.LeftButton, buttons=None):
    types = {"press": QEvent.Type.MouseButtonPress, "release": QEvent.Type.MouseButtonRelease,
             "move": QEvent.Type.MouseMove, "double": QEvent.Type.MouseButtonDblClick}
    held = buttons if buttons is not None else (button if kind != "release" else Qt.MouseButton.NoButton)
    event = QMouseEvent(types[kind], QPointF(x, y), button, held, Qt.KeyboardModifier.NoModifier)
    return QgsMapMouseEvent(canvas, event)


def drawn(tool):
    got = []
    tool.promptDrawn.connect(lambda kind, geom: got.append((kind, QgsGeometry(geom))))
    return got


def headless_pixels(canvas, px, py):
    """What the headless spatial core (pyproj, rasterio) says about the canvas pixel (px, py)."""
    p = canvas.getCoordinateTransform().toMapCoordinates(QPoint(px, py))
    with RasterSource(RASTERS["utm_landsat"]) as src:
        loc = locate_prompt(src, VisualPrompt.point(p.x(), p.y()), CRS.from_epsg(3857), ChipSettings(min_size=1024))
    return loc.pixel_geometry.x, loc.pixel_geometry.y


def test_point_click_gives_the_spatial_cores_pixel(pkg, canvas_3857):
    from earthgptx.plugin.map_tools.point_tool import PointTool
    from earthgptx.plugin.raster_view import DrawnPrompt, LayerView, view_prompts
    from earthgptx.model_backend.core.prompts import PromptKind
    canvas, layer = canvas_3857
    tool = PointTool(canvas)
    got = drawn(tool)
    tool.canvasReleaseEvent(mouse(canvas, "release", 333, 222))
    (kind, geom), = got
    prompts, clipped = view_prompts(LayerView.of(layer), [DrawnPrompt(PromptKind(kind), 1, geom, canvas.mapSettings().destinationCrs())])
    x, y = prompts[0].vertices[0]
    hx, hy = headless_pixels(canvas, 333, 222)
    assert not clipped and abs(x - hx) < 1e-6 and abs(y - hy) < 1e-6


def test_box_drag_and_freeform_tools(pkg, canvas_3857):
    from earthgptx.plugin.map_tools.box_tool import BoxTool
    from earthgptx.plugin.map_tools.freeform_tool import FreeformTool
    from earthgptx.plugin.raster_view import DrawnPrompt, LayerView, view_prompts
    from earthgptx.model_backend.core.prompts import PromptKind
    canvas, layer = canvas_3857
    crs = canvas.mapSettings().destinationCrs()
    view = LayerView.of(layer)
    box = BoxTool(canvas)
    got = drawn(box)
    box.canvasPressEvent(mouse(canvas, "press", 300, 200))
    box.canvasMoveEvent(mouse(canvas, "move", 350, 260, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton))
    box.canvasReleaseEvent(mouse(canvas, "release", 420, 330))
    (kind, geom), = got
    assert kind == "box"
    (prompt,), _ = view_prompts(view, [DrawnPrompt(PromptKind.BOX, 1, geom, crs)])
    corners = [headless_pixels(canvas, x, y) for x, y in ((300, 200), (420, 200), (420, 330), (300, 330))]
    cols, rows = zip(*corners)
    assert prompt.bounds() == pytest.approx((min(cols), min(rows), max(cols), max(rows)), abs=1e-6)

    free = FreeformTool(canvas)
    got = drawn(free)
    for x, y in ((100, 100), (200, 110), (180, 220)):
        free.canvasPressEvent(mouse(canvas, "press", x, y))
        free.canvasReleaseEvent(mouse(canvas, "release", x, y))
    free.canvasReleaseEvent(mouse(canvas, "release", 180, 220, Qt.MouseButton.RightButton))
    free.canvasPressEvent(mouse(canvas, "press", 500, 400))
    for k in range(1, 8):
        free.canvasMoveEvent(mouse(canvas, "move", 500 + 5 * k, 400 + 3 * k, Qt.MouseButton.NoButton,
                                   Qt.MouseButton.LeftButton))
    free.canvasReleaseEvent(mouse(canvas, "release", 535, 421))
    assert [k for k, _ in got] == ["polygon", "scribble"]
    (poly, line), _ = view_prompts(view, [DrawnPrompt(PromptKind.POLYGON, 1, got[0][1], crs),
                                          DrawnPrompt(PromptKind.SCRIBBLE, 2, got[1][1], crs)])
    assert poly.outline().tolist()[0] == pytest.approx(headless_pixels(canvas, 100, 100), abs=1e-6)
    assert len(line.vertices) >= 7


def test_prompt_off_the_raster_is_refused_with_a_message(pkg, canvas_3857):
    from earthgptx.plugin.raster_view import DrawnPrompt, LayerView, view_prompts
    from earthgptx.model_backend.core.errors import PromptOutsideRasterError
    from earthgptx.model_backend.core.prompts import PromptKind
    canvas, layer = canvas_3857
    far = QgsGeometry.fromPointXY(QgsPointXY(0, 0))  # the Gulf of Guinea, far from the Bahamas
    with pytest.raises(PromptOutsideRasterError, match="outside the raster"):
        view_prompts(LayerView.of(layer), [DrawnPrompt(PromptKind.POINT, 1, far, canvas.mapSettings().destinationCrs())])


def test_a_layer_with_a_crs_but_no_geotransform_is_refused(pkg, qgis_new_project, tmp_path):
    """QGIS draws it at pixel coordinates (0, -64)-(64, 0): answers there would be nowhere on the map."""
    import rasterio
    from qgis.core import QgsRasterLayer
    from earthgptx.plugin.raster_view import LayerView
    from earthgptx.model_backend.core.errors import NoCRSError
    path = str(tmp_path / "crs_only.tif")
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs="EPSG:32618") as d:
        d.write(np.zeros((1, 64, 64), np.uint8))
    layer = QgsRasterLayer(path, "crs_only")
    assert layer.isValid() and layer.crs().isValid()
    with pytest.raises(NoCRSError, match="crs_only has a CRS but no geotransform or GCPs"):
        LayerView.of(layer)
    placed = QgsRasterLayer(RASTERS["gcp_grd"], "gcps")
    assert LayerView.of(placed).width == placed.width()


def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.005)
    return condition()


class StallProbe:
    """Measures the longest gap between 5 ms timer ticks on the main thread."""

    def __init__(self):
        self.last = time.perf_counter()
        self.longest = 0.0
        self.timer = QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(5)

    def tick(self):
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now


@pytest.mark.parametrize("name", ["utm_landsat", "rotated_complex", "gcp_grd"])
def test_grounding_question_through_the_dock_lands_where_the_model_points(pkg, qgis_iface, qgis_new_project, name):
    from earthgptx.plugin.dock import EarthGPTXDock
    from earthgptx.plugin.raster_view import LayerView, plan_chip
    from earthgptx.plugin.settings import PluginSettings
    layer = QgsRasterLayer(RASTERS[name], name, "gdal")
    QgsProject.instance().addMapLayer(layer)
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    answer = 'Found: ```json\n[{"bbox_2d": [100, 200, 300, 450], "label": "ship"}]\n```'
    with serve(stream(sse_events([answer[:15], answer[15:]], ), delay=0.05)) as srv:
        dock = EarthGPTXDock(qgis_iface)
        try:
            dock.apply_settings(PluginSettings(backend="openai", endpoint=url(srv), model="scripted",
                                               worker_python=sys.executable, max_pixels=65536))
            dock.layer_box.setLayer(layer)
            dock.task_box.setCurrentIndex(dock.task_box.findData("grounding"))
            dock.question.setPlainText("ships")
            done = []
            dock.questionFinished.connect(done.append)
            probe = StallProbe()
            dock.ask()
            assert wait_for(lambda: done, 120), dock.conversation.toPlainText()
            probe.timer.stop()
            print(f"\nlongest main-thread stall while asking ({name}): {probe.longest * 1000:.1f} ms")
            said = dock.conversation.toPlainText()
            assert "Model: 1 ship" in said and "bbox_2d" not in said and "Show the raw answer" in said
            assert re.search(r"1\. ship \([\d.]+ × [\d.]+ k?m\)", said), said
            dock._show_reasoning(QUrl(f"raw:{done[0]}"))    # the link: the model's text as it came
            assert '"bbox_2d": [100, 200, 300, 450]' in dock.conversation.toPlainText()
            det = [f for lyr in dock.outputs.layers()["detections"] for f in lyr.getFeatures()]
            assert len(det) == 1 and det[0]["label"] == "ship"
            view = LayerView.of(layer)
            plan = plan_chip(view, [], dock.settings.chip_settings())
            chip_affine = plan.chip_affine(view.affine)
            cols = np.array([100, 300, 300, 100]) / 1000 * plan.out_width
            rows = np.array([200, 200, 450, 450]) / 1000 * plan.out_height
            xs, ys = chip_affine.apply(cols, rows)
            ct = QgsCoordinateTransform(layer.crs(), QgsProject.instance().crs(), QgsProject.instance())
            expected = [ct.transform(QgsPointXY(float(x), float(y))) for x, y in zip(xs, ys)]
            got = [QgsPointXY(v) for v in det[0].geometry().vertices()][:4]
            scale = max(abs(p.x()) + abs(p.y()) for p in expected)
            assert max(g.distance(e) for g, e in zip(got, expected)) < 1e-9 * scale
            answers = [f for lyr in dock.outputs.layers()["answers"] for f in lyr.getFeatures()]
            assert answers[0]["answer"] == answer and answers[0]["backend"] == "openai"
        finally:
            dock.shutdown()
            dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def _thinking_events(leaked):
    thought = 'Is it {"bbox_2d": [10, 10, 60, 60], "label": "a thought"}? No.'
    answer = '[{"bbox_2d": [100, 200, 300, 450], "label": "ship"}]'
    if leaked:                                     # a server without a reasoning parser
        return sse_events(["<think>\n" + thought[:20], thought[20:] + "\n</think>\n\n", answer])
    chunk = lambda delta: "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events = [chunk({"reasoning": thought[:20]}), chunk({"reasoning": thought[20:]}), chunk({"content": answer})]
    return [e + "\n\n" for e in events] + sse_events([], finish="stop")[1:]


@pytest.mark.parametrize("leaked", [False, True])
def test_a_thinking_models_thoughts_never_reach_the_answer_or_the_map(pkg, qgis_iface, qgis_new_project, leaked):
    from earthgptx.plugin.dock import EarthGPTXDock
    from earthgptx.plugin.settings import PluginSettings
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "utm", "gdal")
    QgsProject.instance().addMapLayer(layer)
    with serve(stream(_thinking_events(leaked), delay=0.05)) as srv:
        dock = EarthGPTXDock(qgis_iface)
        try:
            dock.apply_settings(PluginSettings(backend="openai", endpoint=url(srv), model="scripted", family="qwen3_5",
                                               worker_python=sys.executable, max_pixels=65536))
            dock.layer_box.setLayer(layer)
            dock.task_box.setCurrentIndex(dock.task_box.findData("grounding"))
            dock.question.setPlainText("ships")
            done = []
            dock.questionFinished.connect(done.append)
            dock.ask()
            assert wait_for(lambda: done, 120), dock.conversation.toPlainText()
            det = [f for lyr in dock.outputs.layers()["detections"] for f in lyr.getFeatures()]
            assert [f["label"] for f in det] == ["ship"]
            (answer,) = [f for lyr in dock.outputs.layers()["answers"] for f in lyr.getFeatures()]
            assert "a thought" not in answer["answer"] and answer["answer"].startswith("[")
            assert srv.received[0]["body"]["chat_template_kwargs"] == {"enable_thinking": False}
            shown = dock.conversation.toPlainText()
            assert "Show the model's reasoning" in shown and "a thought" not in shown
            (question_id,) = dock.reasonings
            dock._show_reasoning(QUrl(f"reasoning:{question_id}"))
            assert "a thought" in dock.conversation.toPlainText()
        finally:
            dock.shutdown()
            dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def make_dock(pkg, iface, layer, **settings):
    from earthgptx.plugin.dock import EarthGPTXDock
    from earthgptx.plugin.settings import PluginSettings
    dock = EarthGPTXDock(iface)
    dock.apply_settings(PluginSettings(worker_python=sys.executable, **settings))
    dock.layer_box.setLayer(layer)
    return dock


def test_tiny_local_model_question_adds_prompt_and_answer_features(pkg, qgis_iface, qgis_new_project, tmp_path):
    from model_backend.testing.tiny_model import build_tiny_model
    os.environ["HF_HUB_OFFLINE"] = "1"
    tiny = build_tiny_model(str(tmp_path / "tiny"), "qwen3_vl")
    layer = QgsRasterLayer(RASTERS["rotated_complex"], "rotated", "gdal")
    QgsProject.instance().addMapLayer(layer)
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    dock = make_dock(pkg, qgis_iface, layer, model=tiny, device="cpu", quantization="fp32", max_new_tokens=12)
    try:
        e = layer.extent()
        box = QgsGeometry.fromRect(QgsRectangle(e.xMinimum() + 0.3 * e.width(), e.yMinimum() + 0.3 * e.height(),
                                                e.xMinimum() + 0.6 * e.width(), e.yMinimum() + 0.5 * e.height()))
        dock.canvas.setDestinationCrs(layer.crs())
        dock.add_prompt("box", box)
        dock.task_box.setCurrentIndex(dock.task_box.findData("region_captioning"))
        done = []
        dock.questionFinished.connect(done.append)
        dock.ask()
        assert wait_for(lambda: done, 240), dock.conversation.toPlainText()
        layers = dock.outputs.layers()
        (answer,) = [f for lyr in layers["answers"] for f in lyr.getFeatures()]
        assert answer["model"] == tiny and answer["quantization"] == "fp32" and answer["task"] == "region_captioning"
        expected = QgsGeometry(box)
        expected.transform(QgsCoordinateTransform(layer.crs(), QgsProject.instance().crs(), QgsProject.instance()))
        assert answer.geometry().equals(expected) or answer.geometry().symDifference(expected).area() < 1e-18
        (prompt,) = [f for lyr in layers["prompts"] for f in lyr.getFeatures()]
        assert prompt["prompt_index"] == 1 and prompt["kind"] == "box"
        assert "on cpu in fp32" in dock.status.text() or "fp32" in dock.status.text()
    finally:
        dock.shutdown()
        dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def test_stop_cancels_and_stale_tokens_are_dropped(pkg, qgis_iface, qgis_new_project):
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "landsat", "gdal")
    QgsProject.instance().addMapLayer(layer)
    pieces = [f"word{k} " for k in range(200)]
    with serve(stream(sse_events(pieces), delay=0.05)) as srv:
        dock = make_dock(pkg, qgis_iface, layer, backend="openai", endpoint=url(srv), model="slow", max_pixels=65536)
        try:
            dock.question.setPlainText("Tell me everything.")
            done = []
            dock.questionFinished.connect(done.append)
            dock.ask()
            assert wait_for(lambda: "word2" in dock.streamed, 60)
            dock._token("an-old-question", "STALE")
            dock.stop()
            assert wait_for(lambda: done, 30)
            text = dock.conversation.toPlainText()
            assert "STALE" not in text and "stopped" in text and "word199" not in text
            (answer,) = [f for lyr in dock.outputs.layers()["answers"] for f in lyr.getFeatures()]
            assert answer["finish_reason"] == "cancelled"
            assert dock.ask_button.isEnabled() and not dock.stop_button.isEnabled()
        finally:
            dock.shutdown()
            dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def test_worker_crash_gives_restart_action_and_next_question_works(pkg, qgis_iface, qgis_new_project):
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "landsat", "gdal")
    QgsProject.instance().addMapLayer(layer)
    pieces = [f"w{k} " for k in range(100)]
    with serve(stream(sse_events(pieces), delay=0.05)) as srv:
        dock = make_dock(pkg, qgis_iface, layer, backend="openai", endpoint=url(srv), model="slow", max_pixels=65536)
        try:
            dock.question.setPlainText("Tell me everything.")
            dock.ask()
            assert wait_for(lambda: "w3" in dock.streamed, 60)
            dock.client.process.kill()
            assert wait_for(lambda: dock.ask_button.isEnabled(), 30)
            said = dock.conversation.toPlainText()
            assert "killed" in said and dock.model is None and "message log" in said and "%|" not in said
            items = qgis_iface.messageBar().items() if hasattr(qgis_iface.messageBar(), "items") else []
            assert any("Restart" in b.text() for item in items for b in item.findChildren(type(dock.ask_button)))
            dock.restart_worker()
            done = []
            dock.questionFinished.connect(done.append)
            dock.ask()
            assert wait_for(lambda: done, 60)
        finally:
            dock.shutdown()
            dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def test_missing_worker_environment_is_a_clear_message(pkg, qgis_iface, qgis_new_project, tmp_path):
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "landsat", "gdal")
    QgsProject.instance().addMapLayer(layer)
    from earthgptx.plugin.dock import EarthGPTXDock
    from earthgptx.plugin.settings import PluginSettings
    dock = EarthGPTXDock(qgis_iface)
    try:
        dock.apply_settings(PluginSettings(worker_python=str(tmp_path / "no-venv" / "bin" / "python")))
        dock.layer_box.setLayer(layer)
        dock.question.setPlainText("What is this?")
        dock.ask()
        assert wait_for(lambda: dock.ask_button.isEnabled(), 30)
        assert "Backend setup" in dock.conversation.toPlainText()
    finally:
        dock.shutdown()
        dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def test_a_tiny_local_qwen3_5_answers_through_the_dock_and_keeps_its_thoughts_apart(pkg, qgis_iface, qgis_new_project,
                                                                                     tmp_path):
    from model_backend.testing.tiny_model import build_tiny_model
    os.environ["HF_HUB_OFFLINE"] = "1"
    tiny = build_tiny_model(str(tmp_path / "qwen3_5"), "qwen3_5")
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "utm", "gdal")
    QgsProject.instance().addMapLayer(layer)
    dock = make_dock(pkg, qgis_iface, layer, model=tiny, device="cpu", quantization="fp32", max_new_tokens=10,
                     thinking=True)
    try:
        dock.task_box.setCurrentIndex(dock.task_box.findData("grounding"))
        dock.question.setPlainText("ships")
        done = []
        dock.questionFinished.connect(done.append)
        dock.ask()
        assert wait_for(lambda: done, 240), dock.conversation.toPlainText()
        assert dock.model["family"] == "qwen3_5"
        (answer,) = [f for lyr in dock.outputs.layers()["answers"] for f in lyr.getFeatures()]
        assert answer["model"] == tiny and "<think>" not in answer["answer"]
        # thinking allowed, the template opened a <think> block: the noise the tiny model writes is thought
        assert dock.reasonings and "Show the model's reasoning" in dock.conversation.toPlainText()
    finally:
        dock.shutdown()
        dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def test_search_in_tiles_opens_find_objects_with_the_layer_phrase_and_drawn_extent(pkg, qgis_iface,
                                                                                   qgis_new_project, monkeypatch):
    """The dock's way to a tiled search: Find objects' dialog, filled with the chosen layer, the
    question as the phrase and the drawn box's bounds (canvas CRS) as the extent."""
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing
    from earthgptx.plugin.dock import EarthGPTXDock
    from earthgptx.plugin.processing.provider import EarthGPTXProvider

    from qgis.gui import QgsBrowserGuiModel

    browser = QgsBrowserGuiModel()   # what QGIS's own interface hands Processing's dialogs
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)
    Processing.initialize()
    registry = QgsApplication.processingRegistry()
    ours = registry.providerById("earthgptx") is None
    if ours:   # registered for this test only: the plugin's own registers at load (test_qgis)
        registry.addProvider(EarthGPTXProvider())
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "landsat", "gdal")
    QgsProject.instance().addMapLayer(layer)
    dock = EarthGPTXDock(qgis_iface)
    try:
        dock.layer_box.setLayer(layer)
        dock.question.setPlainText("ships")
        dock.canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
        crs = dock.canvas.mapSettings().destinationCrs()
        e = layer.extent() if crs == layer.crs() else QgsCoordinateTransform(
            layer.crs(), crs, QgsProject.instance()).transformBoundingBox(layer.extent())
        box = QgsRectangle(e.xMinimum() + 0.2 * e.width(), e.yMinimum() + 0.3 * e.height(),
                           e.xMinimum() + 0.6 * e.width(), e.yMinimum() + 0.7 * e.height())
        dock.add_prompt("box", QgsGeometry.fromRect(box))
        dialog = dock.search_in_tiles()
        values = dialog.mainWidget().createProcessingParameters()
        assert values["PHRASE"] == "ships"
        assert values["INPUT"] == [layer.id()] or values["INPUT"] == [layer.source()], values["INPUT"]
        extent, crs_text = str(values["EXTENT"]).split(" ")    # as typed in the dialog: the canvas CRS's bounds
        xmin, xmax, ymin, ymax = (float(v) for v in extent.split(","))
        assert (xmin, xmax, ymin, ymax) == pytest.approx((box.xMinimum(), box.xMaximum(), box.yMinimum(),
                                                          box.yMaximum()), abs=1e-3)   # the widget shows 4 decimals
        assert crs_text == f"[{crs.authid()}]"
        dialog.close()
    finally:
        dock.shutdown()
        dock.deleteLater()
        if ours:
            registry.removeProvider(registry.providerById("earthgptx"))
    QgsProject.instance().removeAllMapLayers()


def test_search_settings_round_trip_through_the_dialog_and_qgis_settings(pkg, qgis_app):
    """Questions in flight and tiles per generate (0: auto) survive the settings dialog and QgsSettings,
    and become the worker's find options for each backend."""
    from earthgptx.plugin.settings import PluginSettings
    from earthgptx.plugin.settings_dialog import SettingsDialog

    edited = SettingsDialog(PluginSettings(concurrency=12, batch_size=0, worker_python=sys.executable)).settings()
    assert (edited.concurrency, edited.batch_size) == (12, 0)
    assert edited.find_options() == {"concurrency": 1, "batch_size": "auto"}
    edited.save()
    loaded = PluginSettings.load()
    assert (loaded.concurrency, loaded.batch_size) == (12, 0)
    loaded.backend, loaded.batch_size = "openai", 3
    assert loaded.find_options() == {"concurrency": 12, "batch_size": 1}
    PluginSettings().save()


@pytest.fixture(scope="module")
def tiny_sam2(tmp_path_factory):
    from model_backend.testing.tiny_sam import build_tiny_sam
    return build_tiny_sam(str(tmp_path_factory.mktemp("sam2")), "sam2")


def test_segment_task_outlines_the_drawn_box_without_loading_a_vlm(pkg, qgis_iface, qgis_new_project, tiny_sam2):
    """The dock's Segment task: the box's outline in the masks layer (a multipolygon inside the chip,
    its ground area in m²), the prompt in the prompts layer, and no VLM loaded."""
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "landsat", "gdal")
    QgsProject.instance().addMapLayer(layer)
    QgsProject.instance().setCrs(layer.crs())
    dock = make_dock(pkg, qgis_iface, layer, model=str(ROOT), segmenter=tiny_sam2, device="cpu", max_pixels=65536)
    try:
        e = layer.extent()
        box = QgsGeometry.fromRect(QgsRectangle(e.xMinimum() + 0.3 * e.width(), e.yMinimum() + 0.3 * e.height(),
                                                e.xMinimum() + 0.6 * e.width(), e.yMinimum() + 0.5 * e.height()))
        dock.canvas.setDestinationCrs(layer.crs())
        dock.add_prompt("box", box)
        dock.task_box.setCurrentIndex(dock.task_box.findData("segment"))
        dock.question.setPlainText("field")
        done = []
        dock.questionFinished.connect(done.append)
        dock.ask()
        assert wait_for(lambda: done, 120), dock.conversation.toPlainText()
        assert "outline(s)" in dock.conversation.toPlainText() and dock.model is None
        layers = dock.outputs.layers()
        masks = [f for lyr in layers["masks"] for f in lyr.getFeatures()]
        assert len(masks) == 1 and all(lyr.wkbType() == QgsWkbTypes.Type.MultiPolygon for lyr in layers["masks"])
        for m in masks:
            assert (m["prompt_index"], m["prompt_kind"], m["label"]) == (1, "box", "field")
            assert layer.extent().contains(m.geometry().boundingBox())
            assert m["area_m2"] == pytest.approx(m.geometry().area(), rel=2e-3)   # UTM: ground area ~ map area
        (prompt,) = [f for lyr in layers["prompts"] for f in lyr.getFeatures()]
        assert prompt["kind"] == "box" and not [f for lyr in layers["answers"] for f in lyr.getFeatures()]
    finally:
        dock.shutdown()
        dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def test_find_all_with_outlines_puts_one_outline_per_region_under_its_answer(pkg, qgis_iface, qgis_new_project,
                                                                             tiny_sam2):
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "landsat", "gdal")
    QgsProject.instance().addMapLayer(layer)
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    answer = '[{"bbox_2d": [100, 200, 400, 450], "label": "ship"}, {"bbox_2d": [500, 500, 800, 700], "label": "tank"}]'
    with serve(stream(sse_events([answer]))) as srv:
        dock = make_dock(pkg, qgis_iface, layer, backend="openai", endpoint=url(srv), model="scripted",
                         segmenter=tiny_sam2, max_pixels=65536)
        try:
            dock.task_box.setCurrentIndex(dock.task_box.findData("grounding"))
            dock.outlines_box.setChecked(True)
            dock.question.setPlainText("ships")
            done = []
            dock.questionFinished.connect(done.append)
            dock.ask()
            assert wait_for(lambda: done, 120), dock.conversation.toPlainText()
            layers = dock.outputs.layers()
            (answer_row,) = [f for lyr in layers["answers"] for f in lyr.getFeatures()]
            masks = [f for lyr in layers["masks"] for f in lyr.getFeatures()]
            assert "2 outline(s)" in dock.conversation.toPlainText() and len(masks) == 2
            for m in masks:
                assert m["answer_id"] == answer_row["answer_id"] and m["prompt_kind"] == "detection"
                assert (m["rank"], m["label"]) in ((1, "ship"), (2, "tank")) and m["area_m2"] > 0
                # Web Mercator at 26 N inflates map areas; the ground area is smaller than the map area
                assert m["area_m2"] < m.geometry().area()
        finally:
            dock.shutdown()
            dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()


def test_the_workers_stderr_goes_to_the_message_log_and_a_log_file(pkg, qgis_app):
    from earthgptx.plugin.worker_pool import log_worker_line, worker_log_path
    got = []
    log = QgsApplication.messageLog()
    log.messageReceived[str, str, Qgis.MessageLevel].connect(lambda text, tag, level: got.append((tag, text)))
    log_worker_line("Loading weights: 100%|###| 70/70 [00:01<00:00, 51.2it/s]")
    log_worker_line("   ")
    QgsApplication.processEvents()
    assert got == [("EarthGPT-X", "Loading weights: 100%|###| 70/70 [00:01<00:00, 51.2it/s]")]
    with open(worker_log_path(), encoding="utf-8") as f:
        assert f.read().rstrip().endswith("Loading weights: 100%|###| 70/70 [00:01<00:00, 51.2it/s]")


def test_shortcuts_tooltips_empty_state_and_help(pkg, qgis_iface, qgis_new_project):
    from earthgptx.plugin.dock import EarthGPTXDock
    dock = EarthGPTXDock(qgis_iface)
    try:
        assert dock.ask_button.shortcut().toString() == "Ctrl+Return" and "Ctrl+Return" in dock.ask_button.toolTip()
        for key, shortcut in (("point", "Ctrl+Alt+P"), ("box", "Ctrl+Alt+B"), ("freeform", "Ctrl+Alt+F")):
            button = getattr(dock, f"{key}_button")
            assert button.shortcut().toString() == shortcut and shortcut in button.toolTip()
        assert "whole image" in dock.conversation.placeholderText()
        url = dock.open_help()
        assert url.isLocalFile() and os.path.isfile(url.toLocalFile()) and url.toLocalFile().endswith("README.md")
    finally:
        dock.shutdown()
        dock.deleteLater()


def test_results_panel_lists_detections_zooms_to_them_and_follows_the_map(pkg, qgis_iface, qgis_new_project):
    """A grounding answer through the scripted endpoint: a question row and a row per detection;
    selecting a row zooms the map to its detection and selects it; selecting the other feature on the
    map selects its row; Copy answer copies the raw text; Delete removes the question's features."""
    layer = QgsRasterLayer(RASTERS["utm_landsat"], "landsat", "gdal")
    QgsProject.instance().addMapLayer(layer)
    QgsProject.instance().setCrs(layer.crs())
    answer = '[{"bbox_2d": [100, 200, 300, 450], "label": "ship"}, {"bbox_2d": [600, 600, 700, 650], "label": "tank"}]'
    with serve(stream(sse_events([answer]))) as srv:
        dock = make_dock(pkg, qgis_iface, layer, backend="openai", endpoint=url(srv), model="scripted",
                         max_pixels=65536)
        try:
            dock.canvas.setDestinationCrs(layer.crs())
            dock.canvas.resize(800, 600)
            dock.canvas.setExtent(layer.extent())
            dock.task_box.setCurrentIndex(dock.task_box.findData("grounding"))
            dock.question.setPlainText("ships")
            done = []
            dock.questionFinished.connect(done.append)
            dock.ask()
            assert wait_for(lambda: done, 60), dock.conversation.toPlainText()
            panel = dock.results
            assert panel.tree.topLevelItemCount() == 1 and panel.tree.topLevelItem(0).text(0).startswith("ships:")
            rows = panel.rows()
            assert [r.text(0) for r in rows] == ["1. ship", "2. tank"]
            assert all(re.fullmatch(r"[\d.]+ × [\d.]+ k?m", r.text(1)) for r in rows), [r.text(1) for r in rows]
            (detections,) = dock.outputs.layers()["detections"]
            boxes = {f["rank"]: f for f in detections.getFeatures()}
            rows[1].setSelected(True)
            QgsApplication.processEvents()
            tank = boxes[2].geometry().boundingBox()
            assert dock.canvas.extent().contains(tank) and dock.canvas.extent().width() < 0.5 * layer.extent().width()
            assert detections.selectedFeatureIds() == [boxes[2].id()]
            panel.tree.clearSelection()
            detections.selectByIds([boxes[1].id()])
            assert [r.text(0) for r in panel.tree.selectedItems()] == ["1. ship"]
            panel.tree.clearSelection()
            panel.tree.topLevelItem(0).setSelected(True)
            assert panel.copy_answer() == answer and QApplication.clipboard().text() == answer
            panel.delete_selected()
            assert panel.tree.topLevelItemCount() == 0 and detections.featureCount() == 0
            assert sum(lyr.featureCount() for lyr in dock.outputs.layers()["answers"]) == 0
        finally:
            dock.shutdown()
            dock.deleteLater()
    QgsProject.instance().removeAllMapLayers()
