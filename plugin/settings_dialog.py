"""The settings dialog: model, backend, loading policy, generation and chip planning, worker Python."""

from __future__ import annotations

from qgis.gui import QgsAuthConfigSelect, QgsFileWidget
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout,
                                 QLineEdit, QSpinBox)

from ..model_backend.core.engine_options import DEVICES, QUANTIZATIONS
from ..model_backend.core.families import FAMILIES
from .settings import PluginSettings


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


class SettingsDialog(QDialog):
    """Edits a ``PluginSettings``; ``settings()`` returns the edited copy (saved by the caller)."""

    def __init__(self, settings: PluginSettings, parent=None):
        super().__init__(parent)
        self.setWindowTitle(tr("EarthGPT-X settings"))
        form = QFormLayout(self)
        self.backend = QComboBox()
        self.backend.addItem(tr("Local model (worker process)"), "local")
        self.backend.addItem(tr("OpenAI-compatible server (vLLM, Ollama, llama.cpp)"), "openai")
        self.backend.setCurrentIndex(max(0, self.backend.findData(settings.backend)))
        form.addRow(tr("Backend"), self.backend)
        self.model = QLineEdit(settings.model)
        form.addRow(tr("Model (hub id, folder, or served name)"), self.model)
        self.endpoint = QLineEdit(settings.endpoint)
        self.endpoint.setPlaceholderText("http://127.0.0.1:8000/v1")
        form.addRow(tr("Endpoint"), self.endpoint)
        self.family = QComboBox()
        self.family.addItems(sorted(FAMILIES))
        self.family.setCurrentText(settings.family)
        form.addRow(tr("Remote model family"), self.family)
        self.auth = QgsAuthConfigSelect(self, "")
        self.auth.setConfigId(settings.auth_config)
        form.addRow(tr("Endpoint token (authentication database)"), self.auth)
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1.0, 3600.0)
        self.timeout.setDecimals(0)
        self.timeout.setSuffix(" s")
        self.timeout.setValue(settings.timeout)
        self.timeout.setToolTip(tr("The longest wait for the server: to connect, for the first piece of the "
                                   "answer and between two pieces"))
        form.addRow(tr("Server timeout"), self.timeout)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(settings.device)
        form.addRow(tr("Device"), self.device)
        self.quantization = QComboBox()
        self.quantization.addItems(QUANTIZATIONS)
        self.quantization.setCurrentText(settings.quantization)
        form.addRow(tr("Quantization"), self.quantization)
        self.thinking = QCheckBox(tr("Let thinking models think before they answer (slower; thoughts kept apart)"))
        self.thinking.setChecked(settings.thinking)
        form.addRow(tr("Thinking"), self.thinking)
        self.max_new_tokens = QSpinBox()
        self.max_new_tokens.setRange(1, 32768)
        self.max_new_tokens.setValue(settings.max_new_tokens)
        form.addRow(tr("Max new tokens"), self.max_new_tokens)
        self.max_pixels = QSpinBox()
        self.max_pixels.setRange(64 * 64, 4096 * 4096)
        self.max_pixels.setSingleStep(65536)
        self.max_pixels.setValue(settings.max_pixels)
        form.addRow(tr("Chip pixel budget"), self.max_pixels)
        self.context = QDoubleSpinBox()
        self.context.setRange(0.0, 10.0)
        self.context.setSingleStep(0.25)
        self.context.setValue(settings.context)
        form.addRow(tr("Context margin (fraction of the prompt)"), self.context)
        self.min_size = QSpinBox()
        self.min_size.setRange(1, 16384)
        self.min_size.setValue(settings.min_size)
        form.addRow(tr("Smallest chip side (pixels)"), self.min_size)
        self.concurrency = QSpinBox()
        self.concurrency.setRange(1, 256)
        self.concurrency.setValue(settings.concurrency)
        self.concurrency.setToolTip(tr("Find objects against a server: tile questions in flight at once (raise it "
                                       "towards what the server batches)"))
        form.addRow(tr("Questions in flight (server)"), self.concurrency)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(0, 64)
        self.batch_size.setSpecialValueText(tr("auto (from free memory)"))
        self.batch_size.setValue(settings.batch_size)
        self.batch_size.setToolTip(tr("Find objects with a local model: tiles asked in one generate"))
        form.addRow(tr("Tiles per generate (local)"), self.batch_size)
        self.segmenter = QLineEdit(settings.segmenter)
        self.segmenter.setToolTip(tr("The model that draws outlines (SAM 2.1, SAM or SAM 3): a hub id or a folder"))
        form.addRow(tr("Segmenter (outlines)"), self.segmenter)
        self.session_folder = QgsFileWidget()
        self.session_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.session_folder.setFilePath(settings.session_folder)
        self.session_folder.setToolTip(tr("Where the results of a project not saved yet are kept (empty: the QGIS "
                                          "profile); a saved project's are in NAME_earthgptx.gpkg beside it"))
        form.addRow(tr("Session folder"), self.session_folder)
        self.worker_python = QgsFileWidget()
        self.worker_python.setFilePath(settings.worker_python)
        form.addRow(tr("Worker Python"), self.worker_python)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def settings(self) -> PluginSettings:
        return PluginSettings(backend=self.backend.currentData(), model=self.model.text().strip(),
                              endpoint=self.endpoint.text().strip(), family=self.family.currentText(),
                              auth_config=self.auth.configId(), timeout=self.timeout.value(),
                              thinking=self.thinking.isChecked(), device=self.device.currentText(),
                              quantization=self.quantization.currentText(), max_new_tokens=self.max_new_tokens.value(),
                              max_pixels=self.max_pixels.value(), context=self.context.value(),
                              min_size=self.min_size.value(), concurrency=self.concurrency.value(),
                              batch_size=self.batch_size.value(), segmenter=self.segmenter.text().strip(),
                              session_folder=self.session_folder.filePath(),
                              worker_python=self.worker_python.filePath())
