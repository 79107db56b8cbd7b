"""The dock's results panel: every question of the session with its answer, under it its detections and
outlines (label, rank, ground size or area, score); a row selected flashes and zooms to its feature,
a feature selected on the map selects its row; a question can be copied or deleted (main thread)."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from qgis.core import QgsFeatureRequest, QgsVectorLayer
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import (QApplication, QHBoxLayout, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout,
                                 QWidget)

#: item data: (QGIS layer id, feature id) of a detection or outline row; the question id of a question row
_FEATURE, _QUESTION, _ANSWER = Qt.ItemDataRole.UserRole, Qt.ItemDataRole.UserRole + 1, Qt.ItemDataRole.UserRole + 2
#: a question row's every feature (prompts and answer too): (QGIS layer id, feature id)
_ALL = Qt.ItemDataRole.UserRole + 3


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


class ResultsPanel(QWidget):
    """A tree of questions (top rows) and their detections and outlines (child rows)."""

    def __init__(self, canvas, parent=None):
        super().__init__(parent)
        self.canvas = canvas
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels([tr("Result"), tr("Size"), tr("Score")])
        self.tree.itemSelectionChanged.connect(self._selected)
        buttons = QHBoxLayout()
        self.copy_button, self.delete_button = QPushButton(tr("Copy answer")), QPushButton(tr("Delete"))
        self.copy_button.clicked.connect(self.copy_answer)
        self.delete_button.clicked.connect(self.delete_selected)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.delete_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tree, 1)
        lay.addLayout(buttons)
        self._layers: Dict[str, QgsVectorLayer] = {}
        self._syncing = False

    # -- filling ---------------------------------------------------------------------------------------
    def add_question(self, question_id: str, title: str, answer: str,
                     added: Sequence[Tuple[str, QgsVectorLayer, int]], sizes: Optional[Dict[int, str]] = None) -> None:
        """A question's row, and under it a row per detection and outline of ``added`` (what the output
        layers stored for it); ``sizes``: a detection's ground size by rank."""
        top = QTreeWidgetItem([title])
        top.setToolTip(0, answer)
        top.setData(0, _QUESTION, question_id)
        top.setData(0, _ANSWER, answer)
        top.setData(0, _ALL, [(layer.id(), fid) for _, layer, fid in added])
        for role, layer, fid in added:
            self._watch(layer)
            if role not in ("detections", "masks"):
                continue
            f = next(layer.getFeatures(QgsFeatureRequest(fid)))
            rank = f["rank"] if f.fields().indexOf("rank") >= 0 else None
            label = f["label"] or role
            if role == "masks":
                area = f["area_m2"]
                name = tr("outline of {0}").format(f"{rank}. {label}" if rank else label)
                size = _area_text(area) if area else ""
                score = f"{f['score']:.2f}" if f["score"] is not None else ""
            else:
                name, size, score = f"{rank}. {label}", (sizes or {}).get(rank, "").strip(" ()"), ""
            child = QTreeWidgetItem([name, size, score])
            child.setData(0, _FEATURE, (layer.id(), fid))
            top.addChild(child)
        self.tree.addTopLevelItem(top)
        top.setExpanded(True)

    def rows(self) -> List[QTreeWidgetItem]:
        """Every detection and outline row."""
        out = []
        for k in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(k)
            out += [top.child(j) for j in range(top.childCount())]
        return out

    # -- selection both ways ---------------------------------------------------------------------------
    def _selected(self) -> None:
        if self._syncing:
            return
        for item in self.tree.selectedItems():
            ref = item.data(0, _FEATURE)
            layer = self._layers.get(ref[0]) if ref else None
            if layer is not None:
                self.canvas.zoomToFeatureIds(layer, [ref[1]])
                self.canvas.flashFeatureIds(layer, [ref[1]])
                self._syncing = True
                try:
                    layer.selectByIds([ref[1]])
                finally:
                    self._syncing = False

    def _watch(self, layer: QgsVectorLayer) -> None:
        if layer.id() not in self._layers:
            self._layers[layer.id()] = layer
            layer.selectionChanged.connect(lambda selected, *_: self._map_selected(layer, selected))

    def _map_selected(self, layer: QgsVectorLayer, selected) -> None:
        """Features selected on the map: their rows selected here."""
        if self._syncing:
            return
        wanted = {(layer.id(), int(fid)) for fid in selected}
        self._syncing = True
        try:
            for item in self.rows():
                ref = item.data(0, _FEATURE)
                if ref and tuple(ref) in wanted:
                    item.setSelected(True)
                    self.tree.scrollToItem(item)
        finally:
            self._syncing = False

    # -- actions ---------------------------------------------------------------------------------------
    def copy_answer(self) -> str:
        """The selected question's answer (or its row's question's) to the clipboard; returns it."""
        item = next(iter(self.tree.selectedItems()), None)
        top = item.parent() or item if item is not None else None
        text = top.data(0, _ANSWER) if top is not None else ""
        if text:
            QApplication.clipboard().setText(text)
        return text or ""

    def delete_selected(self) -> None:
        """Remove the selected results from the layers and the list: a question row takes everything of
        that question with it (prompts, answer, detections, outlines)."""
        doomed: Dict[str, List[int]] = {}
        for item in self.tree.selectedItems():
            refs = item.data(0, _ALL) if item.parent() is None else [item.data(0, _FEATURE)]
            for layer_id, fid in refs or []:
                doomed.setdefault(layer_id, []).append(fid)
            (item.parent() or self.tree.invisibleRootItem()).removeChild(item)
        for layer_id, fids in doomed.items():
            layer = self._layers.get(layer_id)
            if layer is not None:
                layer.dataProvider().deleteFeatures(fids)
                layer.triggerRepaint()


def _area_text(area_m2: float) -> str:
    return f"{area_m2 / 1e6:.3g} km²" if area_m2 >= 1e6 else f"{area_m2:.3g} m²"
