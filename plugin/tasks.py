"""Background work of the plugin as QgsTasks: starting and loading the worker, asking a question and
outlining (the prompts, or a grounding answer's regions).

The QGIS main thread never waits on the model: tasks run in QGIS's task manager threads, stream
tokens back through queued Qt signals, and hand their results to ``finished`` (main thread).
"""

from __future__ import annotations

import re
import threading
from typing import Callable, List, Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal

from ..model_backend.core.chip import Chip
from ..model_backend.core.chip_plan import ChipPlan
from ..model_backend.core.errors import EarthGPTXError, WorkerError
from ..model_backend.core.interface import Answer, AskRequest, Task, Turn
from ..model_backend.core.normalise import Modality
from ..model_backend.core.prompts import VisualPrompt
from ..model_backend.worker.client import WorkerClient
from .raster_view import LayerView, RasterInfo, read_chip
from .worker_pool import WorkerPool


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


class WorkerTask(QgsTask):
    """A task that talks to the worker: ``error`` says what went wrong, ``worker_died`` whether the
    worker itself is gone (the dock then offers a restart)."""

    def __init__(self, description: str):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.error = ""
        self.worker_died = False

    def guarded(self, work: Callable[[], None]) -> bool:
        """Run ``work``; errors a user can meet become ``error`` instead of escaping the task."""
        try:
            work()
            return True
        except WorkerError as exc:
            self.error, self.worker_died = str(exc), True
        except EarthGPTXError as exc:
            self.error = str(exc)
        return False


class LoadTask(WorkerTask):
    """Start the shared worker if needed and load the model described by ``load_fields``."""

    progressMessage = pyqtSignal(str)

    def __init__(self, pool: WorkerPool, python: str, load_fields: dict,
                 on_done: Callable[[Optional[dict], str, bool], None]):
        super().__init__(tr("EarthGPT-X: loading the model"))
        self.pool, self.python, self.load_fields, self.on_done = pool, python, load_fields, on_done
        self.model: Optional[dict] = None
        self.stop = threading.Event()

    def run(self) -> bool:
        def load() -> None:
            self.model = self.pool.ensure(self.python, self.load_fields, self._progress, self.stop)

        return self.guarded(load)

    def _progress(self, message: str) -> None:
        """A loading message to the dock, and a download's percentage to the task manager's bar."""
        self.progressMessage.emit(message)
        percent = re.search(r"\((\d+) %\)$", message)
        if percent:
            self.setProgress(float(percent.group(1)))

    def cancel(self) -> None:
        """Stop a model download in progress (Stop in the dock, or the task manager's cancel)."""
        self.stop.set()
        super().cancel()

    def finished(self, ok: bool) -> None:
        self.on_done(self.model if ok else None, self.error, self.worker_died)


class QuestionTask(WorkerTask):
    """Read the chip through a cloned data provider, ask the worker, keep the answer.

    ``tokenReceived(question_id, text)`` streams the answer and ``reasoningReceived(question_id, text)``
    a thinking model's thoughts; ``on_done(task)`` is called on the main
    thread with ``answer`` or ``error`` set. ``cancel()`` stops the generation (Stop button).
    """

    tokenReceived = pyqtSignal(str, str)
    reasoningReceived = pyqtSignal(str, str)
    progressMessage = pyqtSignal(str, str)

    def __init__(self, question_id: str, client: WorkerClient, provider, view: LayerView, info: RasterInfo,
                 plan: ChipPlan, chip_prompts: List[VisualPrompt], instruction: str, task: Task,
                 modality: Optional[Modality], bands, max_new_tokens: int, history: List[Turn],
                 on_done: Callable[["QuestionTask"], None], outline: Optional[dict] = None,
                 segment_only: bool = False, start_worker: Optional[Callable[[], WorkerClient]] = None):
        super().__init__(f"EarthGPT-X: {instruction[:40] or task.value}")
        self.question_id = question_id
        self.client, self.provider, self.view, self.info, self.plan = client, provider, view, info, plan
        self.chip_prompts, self.instruction, self.task_kind = chip_prompts, instruction, task
        self.modality, self.bands, self.max_new_tokens, self.history = modality, bands, max_new_tokens, history
        self.on_done = on_done
        self.stop = threading.Event()
        self.chip: Optional[Chip] = None
        self.request: Optional[AskRequest] = None
        self.answer: Optional[Answer] = None
        #: outline: the worker's segment fields (the segmenter...) to outline the answer's regions, or the
        #: prompts when ``segment_only`` (no question to the VLM; ``start_worker`` gives the worker then)
        self.outline, self.segment_only, self.start_worker = outline, segment_only, start_worker
        self.outlines: Optional[dict] = None
        self.sizes: List[str] = []   # each region's ground size, as the dock lists it

    def run(self) -> bool:
        return self.guarded(self._ask)

    def _ask(self) -> None:
        self.progressMessage.emit(self.question_id, tr("Reading the chip..."))
        self.chip = read_chip(self.provider, self.view, self.info, self.plan, self.modality, self.bands)
        self.setProgress(20)
        if self.segment_only:
            self.progressMessage.emit(self.question_id, tr("Outlining..."))
            self.outlines = self.start_worker().segment(
                self.chip.image, prompts=self.chip_prompts, label=self.instruction,
                on_progress=lambda m: self.progressMessage.emit(self.question_id, m), **self.outline)
            return
        self.request = AskRequest(image=self.chip.image, instruction=self.instruction,
                                  prompts=tuple(self.chip_prompts), task=self.task_kind,
                                  modality=self.chip.modality, history=tuple(self.history),
                                  max_new_tokens=self.max_new_tokens)
        self.progressMessage.emit(self.question_id, tr("Asking the model..."))
        self.answer = self.client.ask(self.request, on_text=lambda t: self.tokenReceived.emit(self.question_id, t),
                                      cancel=self.stop,
                                      on_reasoning=lambda t: self.reasoningReceived.emit(self.question_id, t))
        if self.outline and self.answer.regions and self.answer.meta.finish_reason != "cancelled":
            self.progressMessage.emit(self.question_id, tr("Outlining {0} region(s)...").format(
                len(self.answer.regions)))
            detections = [{"kind": r.shape.kind.value, "vertices": [list(v) for v in r.shape.vertices], "rank": k,
                           "label": r.label} for k, r in enumerate(self.answer.regions, start=1)]
            self.outlines = self.client.segment(self.chip.image, detections=detections,
                                                on_progress=lambda m: self.progressMessage.emit(self.question_id, m),
                                                **self.outline)

    def cancel(self) -> None:
        self.stop.set()
        super().cancel()

    def finished(self, ok: bool) -> None:
        self.on_done(self)
