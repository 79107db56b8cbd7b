"""Run by ``qgis --code`` under Xvfb (``make screenshot``): ask a grounding question about the Manila
aerial in the EarthGPT-X dock and save QGIS's main window, the dock's results panel shown, to
docs/screenshot.png.

No GPU or model weights exist on the machines that build this project, so the answer comes from a
scripted OpenAI-compatible endpoint started here on 127.0.0.1 (its car boxes were placed by hand on
the image); everything else — the dock, the worker process, the remote engine, parsing, mapping back
through the chip's affine and the output layers — is the real plugin.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from qgis.core import QgsApplication, QgsGeometry, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

ROOT = os.environ["EARTHGPTX_ROOT"]  # qgis --code runs this file without __file__
RASTER = os.path.join(ROOT, "tests", "data", "optical", "5b90f92da0d7280005fab355_4310.tif")
OUT = os.path.join(ROOT, "docs", "screenshot.png")
REGION = (1440, 420, 2048, 960)  # the parking lot, full-resolution pixels (col, row)
CARS = [  # hand-placed on cars of the image, full-resolution pixels
    (1620, 530, 1652, 572), (1542, 580, 1580, 622), (1670, 500, 1698, 536), (1725, 480, 1758, 518),
    (1484, 732, 1520, 770), (1924, 586, 1954, 622), (1696, 652, 1730, 688), (1744, 615, 1778, 650),
    (1906, 522, 1940, 558), (1954, 482, 1986, 518), (1835, 585, 1870, 625),
]


class Scripted(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer = ""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = self.answer.split(" ")
        for k, word in enumerate(words):
            piece = word + (" " if k < len(words) - 1 else "")
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(0.02)
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True


def main():
    earth = plugins["earthgptx"]
    from earthgptx.model_backend.core.encoding import Convention, CoordinateFrame
    from earthgptx.model_backend.core.prompts import VisualPrompt
    from earthgptx.plugin.raster_view import DrawnPrompt, LayerView, plan_chip, view_prompts
    from earthgptx.plugin.settings import PluginSettings

    layer = QgsRasterLayer(RASTER, "Manila aerial (0.1 m)", "gdal")
    QgsProject.instance().addMapLayer(layer)
    QgsProject.instance().setCrs(layer.crs())
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    earth.toggle_dock(True)
    dock = earth.dock
    view = LayerView.of(layer)
    x0, y0 = view.affine.apply(REGION[0], REGION[1])
    x1, y1 = view.affine.apply(REGION[2], REGION[3])
    box = QgsGeometry.fromRect(QgsRectangle(float(x0), float(y1), float(x1), float(y0)))
    settings = PluginSettings.load()
    prompts, _ = view_prompts(view, [DrawnPrompt(VisualPrompt.box(0, 0, 1, 1).kind, 1, box, layer.crs())])
    plan = plan_chip(view, prompts, settings.chip_settings())
    frame = CoordinateFrame(Convention.REL_1000, plan.out_width, plan.out_height)
    to_chip = plan.view_to_chip()
    boxes = []
    for c0, r0, c1, r1 in CARS:
        (cx0, cx1), (cy0, cy1) = to_chip.apply([c0, c1], [r0, r1])
        mx, my = frame.to_model([cx0, cx1], [cy0, cy1])
        boxes.append({"bbox_2d": [int(round(v)) for v in (mx[0], my[0], mx[1], my[1])], "label": "car"})
    Scripted.answer = ("Region 1 is an open-air car park beside the Pasig River, about two thirds full. "
                       f"I found {len(boxes)} cars: ```json\n" + json.dumps(boxes) + "\n```")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dock.apply_settings(PluginSettings(backend="openai", endpoint=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                       model="scripted-demo-endpoint", family="qwen3_vl",
                                       worker_python=settings.worker_python))
    dock.layer_box.setLayer(layer)
    dock.add_prompt("box", box)
    dock.task_box.setCurrentIndex(dock.task_box.findData("grounding"))
    dock.question.setPlainText("cars in region 1")

    def save():
        dock.tabs.setCurrentWidget(dock.results)   # the results list, its third car selected and flashed
        rows = dock.results.rows()
        if len(rows) > 2:
            rows[2].setSelected(True)
        focus = box.boundingBox()
        focus.scale(1.25)
        canvas.setExtent(focus)
        group = QgsProject.instance().layerTreeRoot().findGroup("EarthGPT-X")
        if group is not None:
            group.setExpanded(True)
        canvas.refreshAllLayers()
        QTimer.singleShot(3000, lambda: (iface.mainWindow().grab().save(OUT), print(f"saved {OUT}"),
                                         dock.shutdown(), QgsApplication.exit(0)))

    dock.questionFinished.connect(lambda _: save())
    QTimer.singleShot(60_000, lambda: (print("screenshot: no answer within 60 s"), QgsApplication.exit(1)))
    dock.ask()


QTimer.singleShot(2000, main)
