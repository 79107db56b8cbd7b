"""The "Model backend" dialog: shows the NVIDIA GPU and driver found and the PyTorch build chosen for
them, creates or updates the worker's Python environment (outside the plugin folder) command after
command with QProcess, and runs the worker's diagnostics.

Nothing here blocks the GUI thread: nvidia-smi, pip and the diagnostics all run as QProcess children
whose output streams into the dialog. QGIS's own Python never imports torch (DESIGN §3): every heavy
package lives in the worker environment made here. The plan itself (which build, which commands) is
``plan``'s and ``torch_choice``'s, plain Python that tests run without QGIS; ``runner`` runs it.

Use::

    dialog = BackendSetupDialog(iface.mainWindow())
    dialog.workerReady.connect(lambda python: settings.setValue("earthgptx/worker_python", python))
    dialog.exec()
"""

from __future__ import annotations

import html
import os
import sys
from functools import partial
from typing import Callable, List, Optional, Tuple

from qgis.PyQt.QtCore import QProcess, QTimer, pyqtSignal
from qgis.PyQt.QtGui import QFontDatabase, QTextCursor
from qgis.PyQt.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QGroupBox,
                                 QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QTabWidget,
                                 QVBoxLayout, QWidget)

from . import plan, torch_choice
from .plan import SetupPlanError, Step
from .runner import StepRunner, command_line, tr
from .torch_choice import NvidiaInfo, TorchChoice

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: ``nvidia`` argument meaning "run nvidia-smi (asynchronously) to find out"
DETECT = object()
StepsFactory = Callable[[str, str, TorchChoice], List[Step]]
NVIDIA_TIMEOUT_MS = 15000


class BackendSetupDialog(QDialog):
    """Create / update the worker environment and run its diagnostics.

    ``venv_dir``: the environment's folder (default ``<QGIS settings dir>/earthgptx/worker-venv``);
    ``nvidia``: ``DETECT`` (run nvidia-smi), an ``NvidiaInfo`` or None (no NVIDIA GPU);
    ``base_python``: the Python to create the environment with (default: ``find_base_python``);
    ``steps_factory(venv_dir, base_python, choice)``: the steps to run (default:
    ``plan.build_steps``). ``workerReady(python)`` is emitted when Create / update succeeded,
    with the environment's interpreter for the caller to store in the settings."""

    workerReady = pyqtSignal(str)

    def __init__(self, parent: Optional[QWidget] = None, venv_dir: Optional[str] = None,
                 plugin_dir: str = PLUGIN_DIR, nvidia=DETECT, base_python: Optional[str] = None,
                 steps_factory: Optional[StepsFactory] = None, platform: str = sys.platform):
        super().__init__(parent)
        self.plugin_dir = plugin_dir
        self.platform = platform
        self.steps_factory = steps_factory or (
            lambda folder, base, choice: plan.build_steps(folder, base, choice, self.plugin_dir, self.platform))
        self.nvidia: Optional[NvidiaInfo] = None
        self.choice: Optional[TorchChoice] = None
        self.worker_python_path: Optional[str] = None
        self.last_result: Optional[Tuple[bool, int, str]] = None
        self._mode = ""
        self._report_step = False
        self._detect_process: Optional[QProcess] = None
        self._detect_queries: List[List[str]] = []
        self._detect_timer = QTimer(self)
        self._detect_timer.setSingleShot(True)
        self._detect_timer.timeout.connect(self._detection_timed_out)

        self.setWindowTitle(tr("EarthGPT-X model backend"))
        self.resize(780, 720)
        self.runner = StepRunner(self)
        self.runner.stepStarted.connect(self._step_started)
        self.runner.output.connect(self._output)
        self.runner.done.connect(self._done)
        self._build_ui()
        self.folder_edit.setText(venv_dir or self._default_folder())
        self.base_python_edit.setText(base_python if base_python is not None
                                      else plan.find_base_python(platform) or "")
        if nvidia is DETECT:
            self._start_detection()
        else:
            self._set_nvidia(nvidia)

    # -- layout ---------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        machine = QGroupBox(tr("This computer"))
        form = QFormLayout(machine)
        self.gpu_label = QLabel(tr("Looking for an NVIDIA GPU..."))
        self.gpu_label.setWordWrap(True)
        self.torch_label = QLabel("")
        self.torch_label.setWordWrap(True)
        form.addRow(tr("GPU:"), self.gpu_label)
        form.addRow(tr("PyTorch build:"), self.torch_label)
        layout.addWidget(machine)

        env_box = QGroupBox(tr("Worker environment"))
        env_form = QFormLayout(env_box)
        self.folder_edit = QLineEdit()
        self.folder_edit.setToolTip(tr("Folder of the worker's Python environment; it must be outside the plugin "
                                       "folder, which a plugin update replaces."))
        browse = QPushButton(tr("Browse..."))
        browse.clicked.connect(self._browse_folder)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit)
        row.addWidget(browse)
        env_form.addRow(tr("Folder:"), row)
        self.base_python_edit = QLineEdit()
        self.base_python_edit.setToolTip(tr("The Python the environment is made with (3.10 or newer; not QGIS's own "
                                            "Python on Windows and macOS)."))
        browse_python = QPushButton(tr("Browse..."))
        browse_python.clicked.connect(self._browse_python)
        row = QHBoxLayout()
        row.addWidget(self.base_python_edit)
        row.addWidget(browse_python)
        env_form.addRow(tr("Base Python:"), row)
        self.worker_label = QLabel("")
        self.worker_label.setWordWrap(True)
        env_form.addRow(tr("Worker Python:"), self.worker_label)
        self.folder_edit.textChanged.connect(self._folder_changed)
        layout.addWidget(env_box)

        buttons = QHBoxLayout()
        self.create_button = QPushButton(tr("Create / update"))
        self.create_button.setToolTip(tr("Create the environment, or update an existing one, and install PyTorch and "
                                         "the worker's packages (downloads several GB)."))
        self.create_button.clicked.connect(self.start_setup)
        self.diagnostics_button = QPushButton(tr("Diagnostics"))
        self.diagnostics_button.setToolTip(tr("Report what the worker environment holds and which GPU it can use."))
        self.diagnostics_button.clicked.connect(self.run_diagnostics)
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        for b in (self.create_button, self.diagnostics_button, self.cancel_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        layout.addWidget(self.progress)
        self.status_label = QLabel(tr("Ready."))
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)

        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.tabs = QTabWidget()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(20000)
        self.log.setFont(fixed)
        self.tabs.addTab(self.log, tr("Log"))
        report_page = QWidget()
        report_layout = QVBoxLayout(report_page)
        report_layout.setContentsMargins(0, 0, 0, 0)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setFont(fixed)
        self.report.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.report.setPlaceholderText(tr("Press Diagnostics to see what the worker environment holds."))
        report_layout.addWidget(self.report)
        copy_row = QHBoxLayout()
        copy_row.addStretch(1)
        self.copy_button = QPushButton(tr("Copy"))
        self.copy_button.setToolTip(tr("Copy the report to the clipboard (for a bug report)."))
        self.copy_button.clicked.connect(self.copy_report)
        copy_row.addWidget(self.copy_button)
        report_layout.addLayout(copy_row)
        self.tabs.addTab(report_page, tr("Diagnostics"))
        layout.addWidget(self.tabs, 1)

        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)

    def _default_folder(self) -> str:
        try:
            from qgis.core import QgsApplication

            settings = os.path.normpath(QgsApplication.qgisSettingsDirPath())
        except Exception:  # noqa: BLE001 - outside a QGIS application
            settings = os.path.join(os.path.expanduser("~"), ".earthgptx")
        return plan.default_venv_dir(settings, self.platform)

    # -- state ----------------------------------------------------------------------------------
    def venv_dir(self) -> str:
        text = self.folder_edit.text().strip()
        return os.path.normpath(os.path.expanduser(text)) if text else ""

    def worker_python(self) -> str:
        """The interpreter of the environment in the folder field (whether or not it exists yet)."""
        folder = self.venv_dir()
        return plan.worker_python(folder, self.platform) if folder else ""

    def is_running(self) -> bool:
        return self.runner.is_running()

    def _folder_changed(self, *_args) -> None:
        python = self.worker_python()
        if not python:
            self.worker_label.setText(tr("(choose a folder)"))
        elif os.path.isfile(python):
            self.worker_label.setText(python)
        else:
            self.worker_label.setText(tr("{0} (not created yet)").format(python))

    def _update_buttons(self) -> None:
        running = self.is_running()
        detecting = self._detect_process is not None
        installable = self.choice is not None and self.choice.installable
        self.create_button.setEnabled(not running and not detecting and installable)
        self.diagnostics_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.folder_edit.setEnabled(not running)
        self.base_python_edit.setEnabled(not running)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #b00020;" if error else "")

    # -- GPU detection (nvidia-smi through QProcess) ------------------------------------------------
    def _start_detection(self) -> None:
        smi = torch_choice.find_nvidia_smi(self.platform)
        if smi is None:
            self._set_nvidia(None)
            return
        self._detect_queries = torch_choice.nvidia_query_argvs(smi)
        self._next_detection()

    def _next_detection(self) -> None:
        if not self._detect_queries:
            self._detect_process = None
            self._set_nvidia(None)
            return
        argv = self._detect_queries.pop(0)
        process = QProcess(self)
        process.finished.connect(partial(self._detection_finished, process))
        process.errorOccurred.connect(partial(self._detection_error, process))
        self._detect_process = process
        self._update_buttons()
        self._detect_timer.start(NVIDIA_TIMEOUT_MS)
        process.start(argv[0], argv[1:])

    def _detection_finished(self, process: QProcess, *args) -> None:
        if process is not self._detect_process:
            return
        self._detect_timer.stop()
        ok = process.exitStatus() == QProcess.ExitStatus.NormalExit and process.exitCode() == 0
        text = bytes(process.readAllStandardOutput()).decode("utf-8", "replace")
        process.deleteLater()
        if ok:
            self._detect_process = None
            self._set_nvidia(torch_choice.parse_nvidia_smi(text))
        else:
            self._next_detection()

    def _detection_error(self, process: QProcess, error) -> None:
        if process is self._detect_process and error == QProcess.ProcessError.FailedToStart:
            self._detect_timer.stop()
            process.deleteLater()
            self._detect_queries = []
            self._next_detection()

    def _detection_timed_out(self) -> None:
        process = self._detect_process
        if process is not None:
            self._detect_queries = []
            self._detect_process = None
            process.kill()
            process.waitForFinished(1000)
            process.deleteLater()
            self._set_nvidia(None, timed_out=True)

    def _set_nvidia(self, nvidia: Optional[NvidiaInfo], timed_out: bool = False) -> None:
        self.nvidia = nvidia
        if nvidia is None:
            self.gpu_label.setText(tr("nvidia-smi did not answer: no NVIDIA GPU assumed.") if timed_out
                                   else tr("No NVIDIA GPU found (no working nvidia-smi)."))
        else:
            gpus = "; ".join(g.describe() for g in nvidia.gpus)
            self.gpu_label.setText(tr("{0} (NVIDIA driver {1})").format(gpus, nvidia.driver_version))
        self.choice = torch_choice.choose_torch(nvidia, self.platform)
        reason = tr(torch_choice.REASONS[self.choice.reason_key]).format(**self.choice.reason_args)
        build = {"pypi": tr("PyTorch from PyPI"), "cpu": tr("CPU build")}.get(self.choice.build, self.choice.build)
        device = tr("worker device: {0}").format(self.choice.device)
        self.torch_label.setText(f"<b>{html.escape(build)}</b> ({html.escape(device)})<br>{html.escape(reason)}")
        self._folder_changed()
        self._update_buttons()

    # -- browse ---------------------------------------------------------------------------------
    def _browse_folder(self) -> None:
        start = self.venv_dir() or os.path.expanduser("~")
        while start and not os.path.isdir(start) and os.path.dirname(start) != start:
            start = os.path.dirname(start)
        folder = QFileDialog.getExistingDirectory(self, tr("Folder of the worker environment"), start,
                                                  QFileDialog.Option.ShowDirsOnly)
        if folder:
            self.folder_edit.setText(os.path.normpath(folder))

    def _browse_python(self) -> None:
        current = self.base_python_edit.text().strip()
        path, _ = QFileDialog.getOpenFileName(self, tr("Base Python"), os.path.dirname(current) if current else "")
        if path:
            self.base_python_edit.setText(os.path.normpath(path))

    # -- actions --------------------------------------------------------------------------------
    def start_setup(self) -> bool:
        """Create / update: plan the steps and start them; False (with the reason shown) when the
        plan is refused."""
        if self.is_running() or self.choice is None:
            return False
        folder = self.venv_dir()
        if not folder or not os.path.isabs(folder):
            self._set_status(tr("Choose an absolute folder for the worker environment."), error=True)
            return False
        if plan.is_inside(folder, self.plugin_dir, self.platform):
            self._set_status(tr("The worker environment must be outside the plugin folder {0}, which a plugin "
                                "update replaces: choose another folder.").format(self.plugin_dir), error=True)
            return False
        try:
            steps = self.steps_factory(folder, self.base_python_edit.text().strip(), self.choice)
        except SetupPlanError as exc:
            self._set_status(str(exc), error=True)
            return False
        self._mode = "setup"
        self.worker_python_path = None
        self.log.clear()
        self.tabs.setCurrentWidget(self.log)
        self.progress.setRange(0, len(steps))
        self.progress.setValue(0)
        self.runner.start(steps)
        self._update_buttons()
        return True

    def run_diagnostics(self) -> bool:
        """Run ``<worker python> -m model_backend.commands.diagnostics``; the report fills the Diagnostics tab."""
        if self.is_running():
            return False
        python = self.worker_python()
        if not python or not os.path.isfile(python):
            self._set_status(tr("No worker environment in {0} yet: press Create / update first.").format(
                self.venv_dir() or "?"), error=True)
            return False
        self._mode = "diagnostics"
        self.tabs.setCurrentIndex(1)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        step = plan.diagnostics_step(python, self.plugin_dir, os.path.dirname(self.venv_dir()))
        self.runner.start([step])
        self._update_buttons()
        return True

    def cancel(self) -> None:
        if self.is_running():
            self._set_status(tr("Cancelling..."))
            self.runner.cancel()

    def copy_report(self) -> None:
        QApplication.clipboard().setText(self.report.toPlainText())
        self._set_status(tr("Diagnostics report copied to the clipboard."))

    # -- runner signals ---------------------------------------------------------------------------
    def _step_started(self, index: int, count: int, step: Step) -> None:
        self.progress.setRange(0, count)
        self.progress.setValue(index)
        self.progress.setFormat(tr("Step {0} of {1}").format(index + 1, count))
        self._set_status(tr("Step {0} of {1}: {2}...").format(index + 1, count, tr(step.description)))
        self._report_step = step.key == "diagnostics"
        if self._report_step:
            self.report.clear()
        if self._mode == "setup":
            log_text = self.log.toPlainText()
            _append(self.log, ("\n" if log_text and not log_text.endswith("\n") else "")
                    + "== " + tr("Step {0} of {1}: {2}").format(index + 1, count, tr(step.description)) + "\n$ "
                    + command_line(step.argv, self.platform) + "\n")

    def _output(self, text: str) -> None:
        if self._mode == "setup":
            _append(self.log, text)
        if self._report_step:
            _append(self.report, text)

    def _done(self, ok: bool, failed: int, message: str) -> None:
        self.last_result = (ok, failed, message)
        if ok:
            self.progress.setValue(self.progress.maximum())
        if self._mode == "setup":
            _append(self.log, ("\n" if self.log.toPlainText() and not self.log.toPlainText().endswith("\n") else "")
                    + ("== " + message + "\n"))
        if ok and self._mode == "setup":
            python = self.worker_python()
            self.worker_python_path = python
            self._set_status(tr("The worker environment is ready: {0}").format(python))
            self.workerReady.emit(python)
        elif ok:
            self._set_status(tr("Diagnostics finished."))
        else:
            if self._mode == "setup" and self.runner.cancelled:
                message += " " + tr("Run Create / update again to finish the environment.")
            self._set_status(message, error=True)
        if self._report_step:
            self.report.moveCursor(QTextCursor.MoveOperation.Start)  # the report reads from its top
        self._report_step = False
        self._folder_changed()
        self._update_buttons()

    # -- closing --------------------------------------------------------------------------------
    def done(self, result: int) -> None:  # noqa: D401 - QDialog.done; also called by close/reject
        self.runner.shutdown()
        if self._detect_process is not None:
            process, self._detect_process = self._detect_process, None
            self._detect_timer.stop()
            process.kill()
            process.waitForFinished(1000)
        super().done(result)


def _append(widget: QPlainTextEdit, text: str) -> None:
    cursor = widget.textCursor()
    cursor.movePosition(QTextCursor.MoveOperation.End)
    cursor.insertText(text)
    widget.setTextCursor(cursor)
    widget.ensureCursorVisible()
