"""One model worker for the whole QGIS session, shared by the dock and the Processing algorithms, so a
model is loaded once (two workers would hold two copies in GPU memory)."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from typing import Callable, Dict, Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import QCoreApplication

from ..model_backend.core.errors import WorkerError
from ..model_backend.worker.client import WorkerClient


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


class WorkerPool:
    """The session's worker and what it holds. ``ensure`` blocks: call it from a background task."""

    def __init__(self) -> None:
        self.client = WorkerClient(python=sys.executable)
        self.client.on_stderr = log_worker_line
        self.model: Optional[Dict[str, object]] = None
        self._loaded: Optional[dict] = None
        self._lock = threading.Lock()

    def ensure(self, python: str, load_fields: dict, on_progress: Optional[Callable[[str], None]] = None,
               cancel: Optional[threading.Event] = None) -> dict:
        """Start the worker with ``python`` if needed and load ``load_fields`` unless already loaded;
        returns the model's description. Setting ``cancel`` stops a download in progress."""
        with self._lock:
            self._start(python, on_progress)
            if self._loaded != load_fields:
                self.model = self.client.load(on_progress=on_progress, cancel=cancel, **load_fields)
                self._loaded = dict(load_fields)
            return self.model

    def started(self, python: str, on_progress: Optional[Callable[[str], None]] = None) -> WorkerClient:
        """The worker, started with ``python`` if needed (whatever model it holds, or none)."""
        with self._lock:
            self._start(python, on_progress)
            return self.client

    def _start(self, python: str, on_progress: Optional[Callable[[str], None]]) -> None:
        if not os.path.isfile(python):
            raise WorkerError(tr("The model environment is not set up ({0} does not exist): run Raster > "
                                 "EarthGPT-X > Backend setup..., or set the worker Python in the settings").format(python))
        if self.client.python != python:
            self.client.kill()
            self.client.python = python
        if not self.client.alive:
            if on_progress:
                on_progress(tr("Starting the model worker..."))
            self.client.start()
            self._loaded = None

    def reset(self) -> None:
        """Kill the worker; the next ``ensure`` starts a fresh one."""
        with self._lock:
            self.client.kill()
            self._loaded, self.model = None, None


def worker_log_path() -> str:
    """The worker's log file: ``<QGIS settings>/earthgptx/worker.log`` (its stderr, rotated at 5 MB)."""
    return os.path.join(QgsApplication.qgisSettingsDirPath(), "earthgptx", "worker.log")


_FILE_LOG: Optional[logging.Logger] = None


def log_worker_line(line: str) -> None:
    """One line of the worker's stderr to the *EarthGPT-X* tab of the QGIS message log and to the log
    file (any thread); never to the dock."""
    global _FILE_LOG
    if not line.strip():
        return
    QgsMessageLog.logMessage(line, "EarthGPT-X", Qgis.MessageLevel.Info, notifyUser=False)
    if _FILE_LOG is None:
        _FILE_LOG = logging.getLogger("earthgptx.worker")
        _FILE_LOG.propagate = False
        try:
            os.makedirs(os.path.dirname(worker_log_path()), exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(worker_log_path(), maxBytes=5 << 20, backupCount=1,
                                                           encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            _FILE_LOG.addHandler(handler)
        except OSError:   # a read-only profile: the message log still has it
            _FILE_LOG.addHandler(logging.NullHandler())
    _FILE_LOG.warning(line)


POOL = WorkerPool()
