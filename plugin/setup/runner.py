"""Runs the setup's steps one after another with QProcess (never blocking the GUI thread), streaming
their merged output; ``command_line`` writes a step as the platform's shell would need it."""

from __future__ import annotations

import codecs
import os
import shlex
import subprocess
import sys
from functools import partial
from typing import List, Optional, Sequence

from qgis.PyQt.QtCore import QCoreApplication, QObject, QProcess, QProcessEnvironment, pyqtSignal

from .plan import Step, step_environment


def tr(text: str) -> str:
    return QCoreApplication.translate("EarthGPTX", text)


def command_line(argv: Sequence[str], platform: str = sys.platform) -> str:
    """``argv`` quoted as the platform's shell would need it (for the log: copy, paste, run)."""
    return subprocess.list2cmdline(list(argv)) if platform.startswith("win") else shlex.join(argv)


class StepRunner(QObject):
    """Runs steps one after another with QProcess, streaming their merged output. A step that exits
    with a non-zero status, crashes or cannot start stops the sequence; ``cancel`` kills the running
    one. ``done(ok, failed_index, message)`` is emitted exactly once per ``start``."""

    stepStarted = pyqtSignal(int, int, object)   # index (0-based), count, Step
    output = pyqtSignal(str)
    done = pyqtSignal(bool, int, str)

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._steps: List[Step] = []
        self._index = -1
        self._process: Optional[QProcess] = None
        self._decoder = None
        self._cancelled = False

    def is_running(self) -> bool:
        return self._process is not None

    @property
    def steps(self) -> List[Step]:
        return list(self._steps)

    @property
    def cancelled(self) -> bool:
        """Whether the last sequence was stopped by ``cancel`` (or ``shutdown``)."""
        return self._cancelled

    def start(self, steps: Sequence[Step]) -> None:
        if self.is_running():
            raise RuntimeError("a step sequence is already running")
        self._steps = list(steps)
        self._index = -1
        self._cancelled = False
        if not self._steps:
            self.done.emit(True, -1, tr("Nothing to do."))
            return
        self._next()

    def cancel(self) -> None:
        """Kill the running step; ``done`` follows (cancelled) when it has ended."""
        if self._process is not None:
            self._cancelled = True
            self._process.kill()

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Kill the running step and wait for it to end (the dialog is closing)."""
        process = self._process
        if process is not None:
            self._cancelled = True
            process.kill()
            process.waitForFinished(wait_ms)

    def _label(self) -> str:
        return tr("step {0} of {1} ({2})").format(self._index + 1, len(self._steps),
                                                  tr(self._steps[self._index].description))

    def _next(self) -> None:
        self._index += 1
        if self._index >= len(self._steps):
            self.done.emit(True, -1, tr("All {0} steps finished.").format(len(self._steps)))
            return
        step = self._steps[self._index]
        self.stepStarted.emit(self._index, len(self._steps), step)
        if step.cwd and not os.path.isdir(step.cwd):
            try:
                os.makedirs(step.cwd, exist_ok=True)
            except OSError as exc:
                self._fail(tr("Failed at {0}: cannot create the folder {1}: {2}.").format(
                    self._label(), step.cwd, exc.strerror))
                return
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        env = QProcessEnvironment()
        for key, value in step_environment(dict(os.environ), step).items():
            env.insert(key, value)
        process.setProcessEnvironment(env)
        if step.cwd:
            process.setWorkingDirectory(step.cwd)
        process.setProgram(step.argv[0])
        process.setArguments(list(step.argv[1:]))
        process.readyReadStandardOutput.connect(partial(self._read, process))
        process.finished.connect(partial(self._finished, process))
        process.errorOccurred.connect(partial(self._error, process))
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._process = process
        process.start()

    def _read(self, process: QProcess) -> None:
        if process is not self._process:
            return
        text = self._decoder.decode(bytes(process.readAllStandardOutput()))
        if text:
            self.output.emit(text.replace("\r\n", "\n").replace("\r", "\n"))

    def _finished(self, process: QProcess, *args) -> None:
        if process is not self._process:
            return
        self._read(process)
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self.output.emit(tail)
        code, status = process.exitCode(), process.exitStatus()
        self._release()
        if self._cancelled:
            self._fail(tr("Cancelled at {0}.").format(self._label()))
        elif status == QProcess.ExitStatus.CrashExit:
            self._fail(tr("Failed at {0}: the process crashed.").format(self._label()))
        elif code != 0:
            self._fail(tr("Failed at {0}: exit status {1}.").format(self._label(), code))
        else:
            self._next()

    def _error(self, process: QProcess, error) -> None:
        # only a failed start comes without a ``finished`` signal; other errors are followed by one
        if process is not self._process or error != QProcess.ProcessError.FailedToStart:
            return
        reason = process.errorString()
        self._release()
        self._fail(tr("Failed at {0}: {1} could not be started ({2}).").format(
            self._label(), self._steps[self._index].argv[0], reason))

    def _release(self) -> None:
        if self._process is not None:
            self._process.deleteLater()
        self._process = None

    def _fail(self, message: str) -> None:
        hint = self._steps[self._index].hint if 0 <= self._index < len(self._steps) else ""
        if hint and not self._cancelled:
            message += " " + tr(hint)
        self.done.emit(False, self._index, message)
