"""The EarthGPT-X dock: pick a raster, draw prompts, ask, watch the answer stream, get layers."""

from __future__ import annotations

import html
import os
from collections import Counter
from typing import Dict, List, Optional

from qgis.core import (Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsGeometry,
                       QgsMapLayerProxyModel, QgsProject, QgsRasterLayer, QgsUnitTypes, QgsWkbTypes)
from qgis.gui import QgsMapLayerComboBox, QgsRubberBand
from qgis.PyQt.QtCore import QT_TRANSLATE_NOOP, QCoreApplication, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QColor, QDesktopServices, QKeySequence
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDockWidget, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                                 QLineEdit, QListWidget, QPlainTextEdit, QProgressBar, QPushButton, QTabWidget,
                                 QTextBrowser, QToolButton, QVBoxLayout, QWidget)

from ..model_backend.core.errors import EarthGPTXError, InvalidPromptError
from ..model_backend.core.interface import Role, Task, Turn, check_question
from ..model_backend.core.normalise import Modality
from ..model_backend.core.prompts import PromptKind, VisualPrompt
from ..model_backend.core.schema import SHAPEFILE_TEXT_LIMIT, new_id, utc_now
from .export import export_gpkg, export_shapefiles
from .layers import OutputLayers
from .map_tools.box_tool import BoxTool
from .map_tools.freeform_tool import FreeformTool
from .map_tools.point_tool import PointTool
from .raster_view import (DrawnPrompt, LayerView, RasterInfo, chip_polygons_geometry, chip_shape_geometry,
                          ground_area_m2, ground_measure, is_single_region, plan_chip, view_prompts)
from .results import ResultsPanel
from .session import SessionStore
from .settings import PluginSettings
from .tasks import LoadTask, QuestionTask
from .worker_pool import POOL


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


#: the task box's value for outlining the prompts (no question to the VLM)
SEGMENT = "segment"
TASK_LABELS = {  # marked for translation here, translated where shown
    Task.CHAT: QT_TRANSLATE_NOOP("EarthGPTX", "Free question"),
    Task.VQA: QT_TRANSLATE_NOOP("EarthGPTX", "Question (short answer)"),
    Task.CAPTIONING: QT_TRANSLATE_NOOP("EarthGPTX", "Describe the image"),
    Task.SCENE_CLASSIFICATION: QT_TRANSLATE_NOOP("EarthGPTX", "Classify the scene"),
    Task.REGION_CAPTIONING: QT_TRANSLATE_NOOP("EarthGPTX", "Describe region 1"),
    Task.REFERRING_CLASSIFICATION: QT_TRANSLATE_NOOP("EarthGPTX", "What is in region 1?"),
    Task.RELATION: QT_TRANSLATE_NOOP("EarthGPTX", "Relation between regions"),
    Task.GROUNDING: QT_TRANSLATE_NOOP("EarthGPTX", "Find all ... (boxes)"),
}
MODALITY_LABELS = ((Modality.OPTICAL, QT_TRANSLATE_NOOP("EarthGPTX", "Optical")),
                   (Modality.SAR, QT_TRANSLATE_NOOP("EarthGPTX", "SAR")),
                   (Modality.INFRARED, QT_TRANSLATE_NOOP("EarthGPTX", "Thermal infrared")))
TOOL_LABELS = (("point", QT_TRANSLATE_NOOP("EarthGPTX", "Point")), ("box", QT_TRANSLATE_NOOP("EarthGPTX", "Box")),
               ("freeform", QT_TRANSLATE_NOOP("EarthGPTX", "Free-form")))
KIND_LABELS = {"point": QT_TRANSLATE_NOOP("EarthGPTX", "point"), "box": QT_TRANSLATE_NOOP("EarthGPTX", "box"),
               "polygon": QT_TRANSLATE_NOOP("EarthGPTX", "polygon"),
               "scribble": QT_TRANSLATE_NOOP("EarthGPTX", "scribble")}
PROMPT_COLOUR = QColor(255, 210, 0, 230)
#: keyboard shortcuts of the dock (shown in the tooltips): prompt tools and Ask
SHORTCUTS = {"point": "Ctrl+Alt+P", "box": "Ctrl+Alt+B", "freeform": "Ctrl+Alt+F", "ask": "Ctrl+Return"}


class EarthGPTXDock(QDockWidget):
    """The dock. ``iface`` gives the canvas and message bar; ``client`` is the worker connection."""

    questionFinished = pyqtSignal(str)  # question id (for tests and the screenshot script)

    def __init__(self, iface, parent=None):
        super().__init__(tr("EarthGPT-X"), parent)
        self.setObjectName("EarthGPTXDock")
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.settings = PluginSettings.load()
        self.pool = POOL
        self.client = POOL.client
        self.model: Optional[dict] = None
        self.outputs = OutputLayers(session=SessionStore(self.settings.session_folder))
        self.prompts: List[DrawnPrompt] = []
        self.bands: List[QgsRubberBand] = []
        self.history: List[Turn] = []
        self.history_key: Optional[tuple] = None
        self.current: Optional[str] = None
        self.tasks: Dict[str, object] = {}
        self.streamed = ""
        self.tools = {"point": PointTool(self.canvas), "box": BoxTool(self.canvas), "freeform": FreeformTool(self.canvas)}
        for tool in self.tools.values():
            tool.promptDrawn.connect(self.add_prompt)
        self._build()
        self.update_status()

    # -- UI ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        lay = QVBoxLayout(body)
        form = QFormLayout()
        self.layer_box = QgsMapLayerComboBox()
        self.layer_box.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        form.addRow(tr("Raster"), self.layer_box)
        self.modality_box = QComboBox()
        self.modality_box.addItem(tr("Auto"), None)
        for m, label in MODALITY_LABELS:
            self.modality_box.addItem(tr(label), m.value)
        form.addRow(tr("Modality"), self.modality_box)
        self.bands_edit = QLineEdit()
        self.bands_edit.setPlaceholderText(tr("auto, or e.g. 4 3 2"))
        form.addRow(tr("Bands"), self.bands_edit)
        self.task_box = QComboBox()
        for t, label in TASK_LABELS.items():
            self.task_box.addItem(tr(label), t.value)
        self.task_box.addItem(tr("Segment (outline the prompts)"), SEGMENT)
        form.addRow(tr("Task"), self.task_box)
        self.outlines_box = QCheckBox(tr("Outline the regions found (segmenter)"))
        self.outlines_box.setToolTip(tr("Find all ...: outline each box found with the segmenter of the settings "
                                        "(SAM 2.1 by default); the outlines go to the masks layer"))
        form.addRow("", self.outlines_box)
        lay.addLayout(form)

        tools = QHBoxLayout()
        for key, label in TOOL_LABELS:
            button = QToolButton()
            button.setText(tr(label))
            button.setShortcut(QKeySequence(SHORTCUTS[key]))
            button.setToolTip(tr("{0} prompt ({1})").format(tr(label), SHORTCUTS[key]))
            button.setCheckable(True)
            button.clicked.connect(lambda checked, k=key: self.activate_tool(k))
            setattr(self, f"{key}_button", button)
            tools.addWidget(button)
        clear = QToolButton()
        clear.setText(tr("Clear"))
        clear.clicked.connect(self.clear_prompts)
        tools.addWidget(clear)
        lay.addLayout(tools)
        self.prompt_list = QListWidget()
        self.prompt_list.setMaximumHeight(70)
        lay.addWidget(self.prompt_list)

        self.question = QPlainTextEdit()
        self.question.setPlaceholderText(tr("Ask about the prompts, or the whole raster (for grounding: what to find)"))
        self.question.setMaximumHeight(60)
        lay.addWidget(self.question)
        row = QHBoxLayout()
        self.ask_button = QPushButton(tr("Ask"))
        self.ask_button.clicked.connect(self.ask)
        self.ask_button.setShortcut(QKeySequence(SHORTCUTS["ask"]))
        self.ask_button.setToolTip(tr("Ask the model ({0})").format(SHORTCUTS["ask"]))
        self.stop_button = QPushButton(tr("Stop"))
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.tiles_button = QPushButton(tr("Search in tiles..."))
        self.tiles_button.setToolTip(tr("Find all ... over the whole raster (or the drawn prompts' extent) tile by "
                                        "tile, written to a GeoPackage as it goes: opens Find objects"))
        self.tiles_button.clicked.connect(self.search_in_tiles)
        row.addWidget(self.ask_button)
        row.addWidget(self.stop_button)
        row.addWidget(self.tiles_button)
        lay.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        lay.addWidget(self.progress)
        self.conversation = QTextBrowser()
        self.conversation.setPlaceholderText(tr("Draw a prompt (point, box or free-form) and ask about it, or ask "
                                                "about the whole image."))
        self.conversation.setOpenLinks(False)   # links in it show a question's reasoning
        self.conversation.anchorClicked.connect(self._show_reasoning)
        self.reasonings: Dict[str, str] = {}
        self.raw_answers: Dict[str, str] = {}
        self.results = ResultsPanel(self.canvas)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.conversation, tr("Conversation"))
        self.tabs.addTab(self.results, tr("Results"))
        lay.addWidget(self.tabs, 1)
        exports = QHBoxLayout()
        help_button = QPushButton(tr("Help"))
        help_button.setToolTip(tr("The README: prompts, tasks, outlines, settings"))
        help_button.clicked.connect(self.open_help)
        exports.addWidget(help_button)
        for label, slot in ((tr("Export GeoPackage..."), self.export_gpkg), (tr("Export shapefile..."), self.export_shp)):
            b = QPushButton(label)
            b.clicked.connect(slot)
            exports.addWidget(b)
        lay.addLayout(exports)
        self.status = QLabel()
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.setWidget(body)

    def open_help(self) -> QUrl:
        """Open the README (shipped with the plugin) in the system's viewer; returns its URL."""
        url = QUrl.fromLocalFile(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                              "README.md"))
        QDesktopServices.openUrl(url)
        return url

    def activate_tool(self, key: str) -> None:
        for k in self.tools:
            getattr(self, f"{k}_button").setChecked(k == key)
        self.canvas.setMapTool(self.tools[key])

    def update_status(self, text: Optional[str] = None) -> None:
        if text is None:
            if self.model:
                m = self.model
                memory = f", ~{m['memory_estimate_gib']} GiB" if "memory_estimate_gib" in m else ""
                text = tr("Model: {0} ({1}, {2}, {3}{4})").format(m.get("model_id"), m.get("backend"), m.get("device"),
                                                                  m.get("quantization"), memory)
            else:
                text = tr("Model: not loaded (it loads with the first question)")
        self.status.setText(text)

    # -- prompts -----------------------------------------------------------------------------------
    def add_prompt(self, kind: str, geometry: QgsGeometry) -> None:
        index = len(self.prompts) + 1
        crs = self.canvas.mapSettings().destinationCrs()
        prompt = DrawnPrompt(PromptKind(kind), index, QgsGeometry(geometry), crs)
        layer = self.layer()
        if layer is not None:
            try:
                view_prompts(LayerView.of(layer), [prompt])
            except EarthGPTXError as exc:
                self.message(str(exc), Qgis.MessageLevel.Warning)
                return
        self.prompts.append(prompt)
        band = QgsRubberBand(self.canvas, geometry.type())
        band.setToGeometry(geometry, None)
        band.setStrokeColor(PROMPT_COLOUR)
        band.setFillColor(QColor(255, 210, 0, 40))
        band.setWidth(2)
        self.bands.append(band)
        self.prompt_list.addItem(tr("{0}: {1}").format(index, tr(KIND_LABELS[kind])))

    def clear_prompts(self) -> None:
        for band in self.bands:
            self.canvas.scene().removeItem(band)
        self.bands, self.prompts = [], []
        self.prompt_list.clear()

    def layer(self) -> Optional[QgsRasterLayer]:
        layer = self.layer_box.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def search_in_tiles(self):
        """Open *Find objects* (Processing) for the chosen layer, the question as the phrase and the drawn
        prompts' bounds (canvas CRS) as the extent; returns the dialog, or None without a layer."""
        import processing

        layer = self.layer()
        if layer is None:
            self.message(tr("Choose a raster layer first."), Qgis.MessageLevel.Warning)
            return None
        params = {"INPUT": [layer.id()], "PHRASE": self.question.toPlainText().strip()}
        rect = QgsGeometry.unaryUnion([p.geometry for p in self.prompts]).boundingBox() if self.prompts else None
        if rect is not None and rect.width() > 0 and rect.height() > 0:   # not a lone point
            crs = self.prompts[0].crs
            params["EXTENT"] = (f"{rect.xMinimum()!r},{rect.xMaximum()!r},{rect.yMinimum()!r},{rect.yMaximum()!r} "
                                f"[{crs.authid()}]")
        dialog = processing.createAlgorithmDialog("earthgptx:findobjects", params)
        dialog.show()
        return dialog

    # -- asking --------------------------------------------------------------------------------------
    def ask(self) -> None:
        """Plan the chip on the main thread (cheap), then read and ask in a background task."""
        layer = self.layer()
        if layer is None:
            self.message(tr("Choose a raster layer first."), Qgis.MessageLevel.Warning)
            return
        segment_only = self.task_box.currentData() == SEGMENT
        task = Task.GROUNDING if segment_only else Task(self.task_box.currentData())
        instruction = self.question.toPlainText().strip()
        try:
            if segment_only and not self.prompts:
                raise InvalidPromptError(tr("Draw a point, a box or a region to outline first."))
            if not segment_only:
                check_question(task, instruction, len(self.prompts))
            bands = [int(b) for b in self.bands_edit.text().split()] or None
            view = LayerView.of(layer)
            prompts, clipped = view_prompts(view, self.prompts)
            plan = plan_chip(view, prompts, self.settings.chip_settings())
        except ValueError as exc:
            self.message(str(exc) if isinstance(exc, EarthGPTXError) else tr("Bands must be numbers, e.g. 4 3 2"),
                         Qgis.MessageLevel.Warning)
            return
        except EarthGPTXError as exc:
            self.message(str(exc), Qgis.MessageLevel.Warning)
            return
        if clipped:
            self.message(tr("Part of a prompt lies outside the raster and was clipped."), Qgis.MessageLevel.Info)
        to_chip = plan.view_to_chip().apply
        chip_prompts = [p.transformed(to_chip) for p in prompts]
        key = (layer.id(), tuple(p.geometry.asWkt() for p in self.prompts))
        history = self.history if key == self.history_key else []
        question_id = new_id()
        self.current, self.streamed, self.thought = question_id, "", 0
        modality = self.modality_box.currentData()
        qtask = QuestionTask(question_id, self.client, layer.dataProvider().clone(), view, RasterInfo.of(layer), plan,
                             chip_prompts, instruction, task, Modality(modality) if modality else None, bands,
                             self.settings.max_new_tokens, history, self._question_done,
                             outline=self.settings.segment_request() if segment_only or (
                                 task is Task.GROUNDING and self.outlines_box.isChecked()) else None,
                             segment_only=segment_only,
                             start_worker=lambda: self.pool.started(self.settings.worker_python))
        qtask.tokenReceived.connect(self._token)
        qtask.reasoningReceived.connect(self._reasoning)
        qtask.progressMessage.connect(lambda qid, m: qid == self.current and self.update_status(m))
        qtask.drawn = list(self.prompts)
        qtask.history_key = key
        qtask.layer_name = layer.name()
        self.tasks[question_id] = qtask
        asked = instruction or (tr("Segment (outline the prompts)") if segment_only else tr(TASK_LABELS[task]))
        self.conversation.append(f"<p><b>{html.escape(tr('You'))}:</b> {html.escape(asked)}</p>")
        self.conversation.append(f"<p><b>{html.escape(tr('Model'))}:</b> </p>")
        self._busy(True)
        if self.model is None and not segment_only:
            self._load_then(qtask)
        else:
            QgsApplication.taskManager().addTask(qtask)

    def _load_then(self, qtask: QuestionTask) -> None:
        def done(model, error, died):
            self.tasks.pop("load", None)  # QGIS deletes finished tasks
            if model is None:
                self._failed(qtask.question_id, error, died)
                return
            self.model = model
            self.update_status()
            QgsApplication.taskManager().addTask(qtask)

        load = LoadTask(self.pool, self.settings.worker_python, self.settings.load_request(), done)
        load.progressMessage.connect(self.update_status)
        self.tasks["load"] = load
        QgsApplication.taskManager().addTask(load)

    def _token(self, question_id: str, text: str) -> None:
        if question_id != self.current:  # a stale reply of an earlier question
            return
        self.streamed += text
        task = self.tasks.get(question_id)
        if task is not None and task.task_kind is Task.GROUNDING:   # coordinates are for the map, not to read
            self.update_status(tr("The model is answering... ({0} characters)").format(len(self.streamed)))
            return
        cursor = self.conversation.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(text)
        self.conversation.setTextCursor(cursor)

    def _reasoning(self, question_id: str, text: str) -> None:
        """A thinking model's thoughts: counted in the status line, never written as the answer."""
        if question_id != self.current:
            return
        self.thought += len(text)
        self.update_status(tr("The model is thinking... ({0} characters)").format(self.thought))

    def _show_reasoning(self, url) -> None:
        """A click on a question's "Show the model's reasoning" (or "Show the raw answer") link: its
        thoughts (or the model's text as it came), below."""
        text = {"reasoning": self.reasonings, "raw": self.raw_answers}.get(url.scheme(), {}).get(url.path())
        if text:
            self.conversation.append(f"<blockquote style='color:gray'>{html.escape(text)}</blockquote>")

    def _question_done(self, task: QuestionTask) -> None:
        self.tasks.pop(task.question_id, None)
        if task.question_id != self.current:
            return
        if task.segment_only and task.outlines is not None:
            self._outlines_done(task)
            return
        if task.answer is None:
            self._failed(task.question_id, task.error or tr("the question was stopped"), task.worker_died)
            return
        self._busy(False)
        self.update_status()
        self._add_outputs(task)
        self.history = list(task.history) + [Turn(Role.USER, task.instruction), Turn(Role.ASSISTANT, task.answer.text)]
        self.history_key = task.history_key
        note = {"cancelled": tr("stopped"), "length": tr("cut at the token limit"),
                "incomplete": tr("the server stopped before the end of the answer")}.get(task.answer.meta.finish_reason)
        note = f" <i>({note})</i>" if note else ""
        if task.task_kind is Task.GROUNDING:
            self._say_regions(task)
        found = tr("{0} region(s) found").format(len(task.answer.regions))
        if task.answer.meta.cut_regions:
            cut = task.answer.meta.cut_regions
            found += " " + tr("({0} more past the cap of one answer were not kept)").format(cut)
        if task.outlines is not None:
            found += " · " + tr("{0} outline(s)").format(len(task.outlines["masks"]))
        self.conversation.append(f"<p style='color:gray'>{found}{note}</p>")
        if task.answer.reasoning:
            self.reasonings[task.question_id] = task.answer.reasoning
            label = tr("Show the model's reasoning ({0} characters)").format(len(task.answer.reasoning))
            self.conversation.append(f"<p><a href='reasoning:{task.question_id}'>{html.escape(label)}</a></p>")
        self.questionFinished.emit(task.question_id)

    def _add_outputs(self, task: QuestionTask) -> None:
        """Prompts, answer and detections to the memory layers, in the project CRS (main thread)."""
        project_crs = QgsProject.instance().crs()
        chip, answer, request = task.chip, task.answer, task.request
        chip_crs = QgsCoordinateReferenceSystem.fromWkt(chip.crs)
        prompts = []
        for p in task.drawn:
            g = QgsGeometry(p.geometry)
            if p.crs != project_crs:
                g.transform(QgsCoordinateTransform(p.crs, project_crs, QgsProject.instance()))
            prompts.append((g, {"question_id": task.question_id, "prompt_index": p.index, "kind": p.kind.value}))
        if is_single_region(task.drawn):
            answer_geometry = QgsGeometry(prompts[0][0])
        else:
            answer_geometry = chip_shape_geometry(chip, VisualPrompt.box(0, 0, chip.width, chip.height), project_crs,
                                                  chip_crs)
        meta = answer.meta
        answer_id = new_id()
        attrs = {"answer_id": answer_id, "question_id": task.question_id, "question": request.instruction,
                 "answer": answer.text, "task": request.task.value, "modality": request.modality.value,
                 "model": meta.model_id, "backend": meta.backend, "quantization": meta.quantization,
                 "raster_source": task.info.source, "chip_resolution": float(chip.resolution[0]),
                 "finish_reason": meta.finish_reason, "created": utc_now()}
        detections = [(chip_shape_geometry(chip, r.shape, project_crs, chip_crs),
                       {"answer_id": answer_id, "label": r.label, "rank": k, "kind": r.shape.kind.value})
                      for k, r in enumerate(answer.regions, start=1)]
        task.sizes = [_ground_size(chip_shape_geometry(chip, r.shape, chip_crs, chip_crs), chip_crs)
                      for r in answer.regions]
        masks = self._mask_items(task, {"answer_id": answer_id}) if task.outlines else []
        self.outputs.add_question(prompts, (answer_geometry, attrs), detections, masks)
        title = request.instruction or tr(TASK_LABELS[request.task])
        self.results.add_question(task.question_id, f"{title}: {_short(answer.text)}", answer.text,
                                  self.outputs.added, dict(enumerate(task.sizes, start=1)))

    def _say_regions(self, task: QuestionTask) -> None:
        """A grounding answer as a reader wants it: "3 ships, 1 tank", then the regions listed with their
        ground size; the model's raw text one click away (and stored as it is in the answers layer)."""
        regions = task.answer.regions
        counts = Counter(r.label or tr("region") for r in regions)
        sentence = ", ".join(f"{n} {_plural(label, n)}" for label, n in counts.most_common()) or tr("Nothing found.")
        cursor = self.conversation.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(sentence)
        rows = "<br>".join(f"{k}. {html.escape(r.label or tr('region'))}{html.escape(size)}"
                           for k, (r, size) in enumerate(zip(regions, task.sizes), start=1))
        if rows:
            self.conversation.append(f"<p>{rows}</p>")
        self.raw_answers[task.question_id] = task.answer.text
        self.conversation.append(f"<p><a href='raw:{task.question_id}'>{html.escape(tr('Show the raw answer'))}"
                                 f"</a></p>")

    def _outlines_done(self, task: QuestionTask) -> None:
        """A Segment task's outlines: the prompts and their masks to the layers (main thread)."""
        self._busy(False)
        self.update_status()
        prompts = [(self._in_project(p), {"question_id": task.question_id, "prompt_index": p.index,
                                          "kind": p.kind.value}) for p in task.drawn]
        masks = self._mask_items(task, {"question_id": task.question_id})
        self.outputs.add_question(prompts, None, [], masks)
        self.results.add_question(task.question_id, tr("Outlines: {0}").format(task.instruction or task.layer_name),
                                  "", self.outputs.added)
        empty = task.outlines.get("empty", 0)
        said = tr("{0} outline(s)").format(len(masks)) + (
            " " + tr("({0} empty after dropping specks)").format(empty) if empty else "")
        self.conversation.append(f"<p style='color:gray'>{html.escape(said)}</p>")
        self.questionFinished.emit(task.question_id)

    def _mask_items(self, task: QuestionTask, ids: Dict[str, str]) -> List[tuple]:
        """The outlines the worker answered, as masks items in the project CRS with their ground area."""
        project_crs = QgsProject.instance().crs()
        chip_crs = QgsCoordinateReferenceSystem.fromWkt(task.chip.crs)
        items = []
        for m in task.outlines["masks"]:
            in_chip_crs = chip_polygons_geometry(task.chip, m["polygons"], chip_crs, chip_crs)
            from_detection = m["kind"] == "detection"
            items.append((chip_polygons_geometry(task.chip, m["polygons"], project_crs, chip_crs), {
                **ids, "label": m.get("label") or m["kind"], "score": float(m["score"]),
                "area_m2": ground_area_m2(in_chip_crs, chip_crs),
                "prompt_index": None if from_detection else m["index"], "rank": m["index"] if from_detection else None,
                "prompt_kind": m["kind"], "model": task.outlines["segmenter"].get("model_id")}))
        return items

    def _in_project(self, p: DrawnPrompt) -> QgsGeometry:
        g = QgsGeometry(p.geometry)
        if p.crs != QgsProject.instance().crs():
            g.transform(QgsCoordinateTransform(p.crs, QgsProject.instance().crs(), QgsProject.instance()))
        return g

    def _failed(self, question_id: str, error: str, worker_died: bool) -> None:
        if question_id != self.current:
            return
        self._busy(False)
        if worker_died:
            error += " " + tr("Its log is in the EarthGPT-X tab of the message log.")
        self.conversation.append(f"<p style='color:#b00'>{html.escape(error)}</p>")
        if worker_died:
            self.model = None
            self.update_status()
            self.message_with_restart(error)
        else:
            self.message(error, Qgis.MessageLevel.Critical)

    def stop(self) -> None:
        """Stop the question in flight, or the model's download before it."""
        for task in (self.tasks.get(self.current or ""), self.tasks.get("load")):
            if task is not None:
                task.cancel()

    def apply_settings(self, settings: PluginSettings) -> None:
        """New settings: the model reloads with the next question when the model or backend changed."""
        if settings.load_request() != self.settings.load_request() or settings.worker_python != self.settings.worker_python:
            self.model = None  # the shared worker loads the new model with the next question
        self.settings = settings
        self.outputs.session.folder = settings.session_folder
        self.update_status()

    def restart_worker(self) -> None:
        self.pool.reset()
        self.model = None
        self.update_status(tr("Model worker restarted; the model loads with the next question."))

    def _busy(self, busy: bool) -> None:
        self.ask_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.progress.setRange(0, 0 if busy else 1)

    # -- exports -------------------------------------------------------------------------------------
    def export_gpkg(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, tr("Export to GeoPackage"), "", "GeoPackage (*.gpkg)")
        if path:
            self._export(export_gpkg, path if path.lower().endswith(".gpkg") else path + ".gpkg")

    def export_shp(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, tr("Export to shapefiles"), "", "ESRI Shapefile (*.shp)")
        if path:
            self._export(export_shapefiles, path if path.lower().endswith(".shp") else path + ".shp")

    def _export(self, writer, path: str) -> None:
        try:
            report = writer(self.outputs, path)
        except (EarthGPTXError, OSError) as exc:
            self.message(tr("Export failed, nothing was changed: {0}").format(exc), Qgis.MessageLevel.Critical)
            return
        if report.split_fields:
            self.message(tr("Text longer than {0} bytes was split over continuation fields ({1}, ...).").format(
                SHAPEFILE_TEXT_LIMIT, ", ".join(report.split_fields)), Qgis.MessageLevel.Info)
        if report.changed_fields:
            self.message(tr("Some text could not be stored as it was ({0}): NUL characters and lone surrogates "
                            "were written as \\uXXXX, spaces at the ends dropped from shapefiles.").format(
                ", ".join(report.changed_fields)), Qgis.MessageLevel.Warning)
        self.message(tr("Exported to {0}").format(", ".join(report.files)) + " " + tr(
            "({0} new answer(s), {1} new detection(s); nothing else in the file was changed)").format(
            report.added.get("answers", 0), report.added.get("detections", 0)), Qgis.MessageLevel.Success)

    # -- messages ------------------------------------------------------------------------------------
    def message(self, text: str, level) -> None:
        self.iface.messageBar().pushMessage("EarthGPT-X", text, level=level, duration=8)

    def message_with_restart(self, text: str) -> None:
        bar = self.iface.messageBar()
        item = bar.createMessage("EarthGPT-X", text)
        button = QPushButton(tr("Restart the model worker"))
        button.clicked.connect(lambda: (self.restart_worker(), bar.popWidget(item)))
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.MessageLevel.Critical)

    def shutdown(self) -> None:
        """Stop tools, tasks and the worker (plugin unload)."""
        for task in list(self.tasks.values()):
            task.cancel()
        self.clear_prompts()
        for tool in self.tools.values():
            if self.canvas.mapTool() is tool:
                self.canvas.unsetMapTool(tool)
        self.pool.reset()


def _plural(label: str, n: int) -> str:
    """``label`` for ``n`` things: English plural of a one-word label ("ships"), else as it is."""
    if n == 1 or " " in label or not label.isascii() or label.endswith("s"):
        return label
    return label[:-1] + "ies" if label.endswith("y") and label[-2:-1] not in "aeiou" else label + (
        "es" if label.endswith(("x", "ch", "sh")) else "s")


def _ground_size(geometry: QgsGeometry, crs: QgsCoordinateReferenceSystem) -> str:
    """ " (34 × 21 m)": a box's two sides on the ground (ellipsoidal; km from 1 km), "" for a point or
    without an ellipsoid."""
    if geometry.type() != QgsWkbTypes.GeometryType.PolygonGeometry:
        return ""
    ring = geometry.asPolygon()[0] if not geometry.isMultipart() else geometry.asMultiPolygon()[0][0]
    measure = ground_measure(crs)
    if len(ring) < 4 or measure is None:
        return ""
    a, b = (measure.convertLengthMeasurement(measure.measureLine(ring[k], ring[k + 1]),
                                             QgsUnitTypes.DistanceUnit.DistanceMeters) for k in (0, 1))
    unit, scale = ("km", 1000.0) if max(a, b) >= 1000 else ("m", 1.0)
    return f" ({a / scale:.3g} × {b / scale:.3g} {unit})"


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"
