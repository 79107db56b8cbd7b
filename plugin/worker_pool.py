"""One model worker for the whole QGIS session, shared by the dock and the Processing algorithms, so a
model is loaded once (two workers would hold two copies in GPU memory)."""

from __future__ import annotations

import os
import sys
import threading
from typing import Callable, Dict, Optional

from qgis.PyQt.QtCore import QCoreApplication

from ..model_backend.core.errors import WorkerError
from ..model_backend.worker.client import WorkerClient


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


class WorkerPool:
    """The session's worker and what it holds. ``ensure`` blocks: call it from a background task."""

    def __init__(self) -> None:
        self.client = WorkerClient(python=sys.executable)
        self.model: Optional[Dict[str, object]] = None
        self._loaded: Optional[dict] = None
        self._lock = threading.Lock()

    def ensure(self, python: str, load_fields: dict, on_progress: Optional[Callable[[str], None]] = None) -> dict:
        """Start the worker with ``python`` if needed and load ``load_fields`` unless already loaded;
        returns the model's description."""
        with self._lock:
            self._start(python, on_progress)
            if self._loaded != load_fields:
                self.model = self.client.load(on_progress=on_progress, **load_fields)
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


POOL = WorkerPool()
