"""The caller's side of PROTOCOL.md: start a worker, send requests, stream replies (standard library
and numpy only: the QGIS process imports this module). Methods block the calling thread, so call them
from a background task, never from a GUI thread.

Every call is bounded: by its ``timeout`` (seconds; ``load`` and ``ask`` have long defaults, a model
may download or generate for minutes) and by the worker's heartbeat: a worker not heard from for
``silence_timeout`` seconds (hung, stopped) ends the call with a ``WorkerError``. Chips go through a
temporary folder ``earthgptx-chips-PID-*`` (PID: this process), removed when the worker ends; folders
of processes that no longer run are removed when a worker starts."""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..core import errors
from ..core.errors import EarthGPTXError, InvalidArgumentError, WorkerError
from ..core.interface import Answer, AskRequest, prompts_to_dicts
from . import PROTOCOL_VERSION

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_FINAL = {"hello": {"hello"}, "load": {"loaded"}, "ask": {"answer"}, "find": {"found"},
          "plan_find": {"planned"}, "segment": {"segmented"}, "cancel": {"ok"}, "status": {"status"},
          "shutdown": {"bye"}}
LOAD_TIMEOUT_S = 3600.0
ASK_TIMEOUT_S = 1800.0
FIND_TIMEOUT_S = 7 * 24 * 3600.0
CHIPS_PREFIX = "earthgptx-chips-"
_POLL_S = 0.5
#: the worker's error classes the caller gets back as such (the others as ``EarthGPTXError``)
#: stderr lines that are progress bars (tqdm, the hub's downloads), never worth a user's reading
_PROGRESS = re.compile(r"\d+%\||it/s\]|s/it\]|B/s\]")
_ERRORISH = re.compile(r"Error|Exception|Killed|Traceback|CUDA|out of memory|error:", re.IGNORECASE)
_ERRORS = {cls.__name__: cls for cls in vars(errors).values()
           if isinstance(cls, type) and issubclass(cls, EarthGPTXError) and cls is not WorkerError}


class WorkerClient:
    """One worker process. ``python``: the interpreter of the worker's environment."""

    def __init__(self, python: str = sys.executable, heartbeat: float = 2.0, env: Optional[Dict[str, str]] = None,
                 silence_timeout: float = 30.0):
        if not silence_timeout > 2 * heartbeat:
            raise InvalidArgumentError("silence_timeout must be more than two heartbeats")
        self.python = python
        self.heartbeat = heartbeat
        self.silence_timeout = silence_timeout
        self.env = env
        self.process: Optional[subprocess.Popen] = None
        self.last_seen = 0.0
        self._pending: Dict[Any, queue.Queue] = {}
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stderr: collections.deque = collections.deque(maxlen=20)
        self._ids = iter(range(1, 1 << 62))
        self._tmp: Optional[str] = None
        self._eof = threading.Event()
        #: called with each line the worker writes on stderr (from a reader thread): a log
        self.on_stderr: Optional[Callable[[str], None]] = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> Dict[str, Any]:
        """Start the worker and check its protocol version; returns its ``hello`` reply."""
        env = dict(os.environ if self.env is None else self.env)
        # the worker has its own Python: QGIS's PYTHONHOME/PYTHONPATH would make it load QGIS's packages
        env.pop("PYTHONHOME", None)
        env["PYTHONPATH"] = PACKAGE_PARENT
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.kill()  # a worker this client started before (a failed start, say) is never left running
        try:
            self.process = subprocess.Popen(
                [self.python, "-m", "model_backend.worker", "--heartbeat", str(self.heartbeat)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                cwd=PACKAGE_PARENT, text=True, encoding="utf-8", bufsize=1)
        except OSError as exc:
            raise WorkerError(f"cannot start the worker with {self.python}: {exc.strerror}") from None
        try:
            remove_orphaned_chip_folders()
            self._tmp = tempfile.mkdtemp(prefix=f"{CHIPS_PREFIX}{os.getpid()}-")
            self._eof = threading.Event()
            self.last_seen = time.monotonic()
            threading.Thread(target=self._read_stdout, args=(self.process, self._eof, self._tmp), daemon=True).start()
            threading.Thread(target=self._read_stderr, args=(self.process,), daemon=True).start()
            hello = self._request({"type": "hello"}, timeout=timeout)
            if hello.get("protocol") != PROTOCOL_VERSION:
                raise WorkerError(f"the worker speaks protocol {hello.get('protocol')}, this plugin needs "
                                  f"{PROTOCOL_VERSION}: update the worker environment")
        except BaseException:
            self.kill()  # no worker is left behind by a start that failed
            raise
        return hello

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def seconds_since_heard(self) -> float:
        """Seconds since the last line (heartbeat or reply) from the worker."""
        return time.monotonic() - self.last_seen

    def shutdown(self, timeout: float = 10.0) -> None:
        """Ask the worker to exit; kill it if it does not within ``timeout`` seconds."""
        if self.alive:
            try:
                self._request({"type": "shutdown"}, timeout=timeout)
                self.process.wait(timeout)
            except (WorkerError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """End the worker at once (also used to interrupt a hung one)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def restart(self, timeout: float = 60.0) -> Dict[str, Any]:
        """A fresh worker after a crash or kill (no model loaded)."""
        self.kill()
        return self.start(timeout)

    # -- requests -----------------------------------------------------------------------------------
    def load(self, on_progress: Optional[Callable[[str], None]] = None, timeout: float = LOAD_TIMEOUT_S,
             cancel: Optional[threading.Event] = None, **fields: Any) -> Dict[str, Any]:
        """Load a model (fields of PROTOCOL.md's ``load``) within ``timeout`` seconds; returns its
        description. Setting ``cancel`` stops a download in progress (the load then fails, saying so)."""
        rid = next(self._ids)
        watcher_stop = threading.Event()
        if cancel is not None:
            threading.Thread(target=self._watch_cancel, args=(cancel, watcher_stop, rid), daemon=True).start()
        try:
            reply = self._request({"type": "load", "id": rid, **fields}, timeout=timeout,
                                  on_event=lambda m: on_progress and m["type"] == "progress"
                                  and on_progress(m["message"]))
        finally:
            watcher_stop.set()
        return reply["model"]

    def ask(self, request: AskRequest, on_text: Optional[Callable[[str], None]] = None,
            cancel: Optional[threading.Event] = None, timeout: float = ASK_TIMEOUT_S,
            on_reasoning: Optional[Callable[[str], None]] = None) -> Answer:
        """Ask a question; ``on_text`` gets the answer as it streams, ``on_reasoning`` a thinking model's
        thoughts; setting ``cancel`` stops it. Past ``timeout`` seconds the worker is told to stop and a
        ``WorkerError`` says so."""
        if not self.alive:
            raise WorkerError("the worker is not running; restart it")
        rid = next(self._ids)
        chip = self._write_chip(rid, request.image)
        message = {"type": "ask", "id": rid, "chip": chip, "instruction": request.instruction,
                   "task": request.task.value, "modality": request.modality.value,
                   "prompts": prompts_to_dicts(request.prompts),
                   "history": [{"role": t.role.value, "text": t.text} for t in request.history],
                   "max_new_tokens": request.max_new_tokens}
        watcher_stop = threading.Event()
        if cancel is not None:
            threading.Thread(target=self._watch_cancel, args=(cancel, watcher_stop, rid), daemon=True).start()
        try:
            def on_event(m: Dict[str, Any]) -> None:
                callback = {"token": on_text, "reasoning": on_reasoning}.get(m["type"])
                if callback is not None:
                    callback(m["text"])

            reply = self._request(message, timeout=timeout, on_event=on_event)
        except WorkerError:
            if self.alive:  # timed out or went silent: stop the job so the worker is free again
                self._send({"type": "cancel", "id": f"cancel-{rid}", "target": rid})
            raise
        finally:
            watcher_stop.set()
            if os.path.exists(chip):
                os.remove(chip)
        return Answer.from_dict(reply["answer"])

    def find(self, rasters: List[str], phrase: str, on_progress: Optional[Callable[[Dict[str, Any]], None]] = None,
             cancel: Optional[threading.Event] = None, timeout: float = FIND_TIMEOUT_S,
             **fields: Any) -> List[Dict[str, Any]]:
        """A tiled search of ``rasters`` (paths the worker reads) for ``phrase``, by the worker with its
        model (fields of PROTOCOL.md's ``find``: ``out``, ``extent``, ``concurrency``, ``resume``, ...);
        ``on_progress`` gets each ``progress`` event (``raster``, ``done``, ``total``, ``message``);
        setting ``cancel`` stops it after the tiles in flight. Returns one summary per raster searched."""
        if not self.alive:
            raise WorkerError("the worker is not running; restart it")
        rid = next(self._ids)
        message = {"type": "find", "id": rid, "rasters": list(rasters), "phrase": phrase, **fields}
        watcher_stop = threading.Event()
        if cancel is not None:
            threading.Thread(target=self._watch_cancel, args=(cancel, watcher_stop, rid), daemon=True).start()
        try:
            reply = self._request(message, timeout=timeout,
                                  on_event=lambda m: on_progress and m["type"] == "progress" and on_progress(m))
        except WorkerError:
            if self.alive:
                self._send({"type": "cancel", "id": f"cancel-{rid}", "target": rid})
            raise
        finally:
            watcher_stop.set()
        return reply["searches"]

    def plan_find(self, rasters: List[str], phrase: str, timeout: float = 600.0, **fields: Any) -> List[Dict[str, Any]]:
        """The checks of ``find`` with the same arguments, made by the worker with no model loaded: each
        raster's ``tiles``, ``tile_width`` and ``tile_height``, or the error a search would end with."""
        reply = self._request({"type": "plan_find", "rasters": list(rasters), "phrase": phrase, **fields},
                              timeout=timeout)
        return reply["rasters"]

    def segment(self, image: np.ndarray, prompts=(), detections: Sequence[Dict[str, Any]] = (),
                timeout: float = ASK_TIMEOUT_S, on_progress: Optional[Callable[[str], None]] = None,
                **fields: Any) -> Dict[str, Any]:
        """Outlines on ``image`` (uint8 (H, W, 3)) of ``prompts`` (VisualPrompts in chip pixels) and
        ``detections`` (``{"kind", "vertices", "rank", "label"}`` in chip pixels), with the fields of
        PROTOCOL.md's ``segment`` (``segmenter``, ``phrase``, ``simplify_px``, ...); returns the
        ``segmented`` reply (``masks``: polygons in chip pixels, each with its score and source)."""
        if not self.alive:
            raise WorkerError("the worker is not running; restart it")
        rid = next(self._ids)
        chip = self._write_chip(rid, image)
        try:
            return self._request({"type": "segment", "id": rid, "chip": chip, "prompts": prompts_to_dicts(prompts),
                                  "detections": list(detections), **fields}, timeout=timeout,
                                 on_event=lambda m: on_progress and m["type"] == "progress"
                                 and on_progress(m["message"]))
        finally:
            if os.path.exists(chip):
                os.remove(chip)

    def _write_chip(self, rid: int, image: np.ndarray) -> str:
        """The chip saved in this client's private folder for the worker to read."""
        chip = os.path.join(self._tmp, f"chip-{rid}.npy")
        try:
            os.makedirs(self._tmp, exist_ok=True)  # a temp cleaner may have removed it
            np.save(chip, np.ascontiguousarray(image, dtype=np.uint8), allow_pickle=False)
        except OSError as exc:
            if os.path.exists(chip):
                os.remove(chip)
            raise WorkerError(f"cannot hand the chip to the worker through {self._tmp}: "
                              f"{exc.strerror or exc}") from None
        return chip

    def cancel(self, target: Any) -> None:
        self._request({"type": "cancel", "target": target}, timeout=10)

    def status(self, timeout: float = 10.0) -> Dict[str, Any]:
        return self._request({"type": "status"}, timeout=timeout)

    def _watch_cancel(self, cancel: threading.Event, stop: threading.Event, rid: int) -> None:
        while not stop.is_set():
            if cancel.wait(0.05):
                if not stop.is_set() and self.alive:
                    self._send({"type": "cancel", "id": f"cancel-{rid}", "target": rid})
                return

    # -- plumbing -----------------------------------------------------------------------------------
    def _send(self, message: Dict[str, Any]) -> None:
        if not self.alive:
            raise WorkerError(self._death_message())
        try:
            with self._write_lock:
                self.process.stdin.write(json.dumps(message) + "\n")
                self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerError(self._death_message()) from None

    def _request(self, message: Dict[str, Any], timeout: Optional[float] = None,
                 on_event: Optional[Callable[[Dict[str, Any]], Any]] = None) -> Dict[str, Any]:
        rid = message.setdefault("id", next(self._ids))
        inbox: queue.Queue = queue.Queue()
        with self._pending_lock:
            if self._eof.is_set():
                raise WorkerError(self._death_message())
            self._pending[rid] = inbox
        try:
            self._send(message)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
                try:
                    reply = inbox.get(timeout=max(0.0, left))
                except queue.Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise WorkerError(f"the model worker did not finish {message['type']} within "
                                          f"{timeout:g} s") from None
                    if self.seconds_since_heard() > self.silence_timeout and self.alive:
                        raise WorkerError(f"the model worker stopped answering (nothing heard from it for "
                                          f"{self.silence_timeout:g} s); restart it") from None
                    continue
                if reply is None:
                    raise WorkerError(self._death_message())
                if reply["type"] == "error":
                    cls = _ERRORS.get(reply.get("error"), EarthGPTXError)
                    raise cls(reply.get("message", "unknown worker error"))
                if reply["type"] in _FINAL[message["type"]]:
                    return reply
                if on_event is not None:
                    on_event(reply)
        finally:
            with self._pending_lock:
                self._pending.pop(rid, None)

    def _read_stdout(self, process: subprocess.Popen, eof: threading.Event, chips: str) -> None:
        for line in process.stdout:
            self.last_seen = time.monotonic()
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            rid = message.get("id") if isinstance(message, dict) else None
            if not isinstance(rid, (str, int)):  # not a reply of the protocol: noted, never fatal
                self._stderr.append(f"(unreadable line on stdout) {line.strip()[:200]}")
                continue
            with self._pending_lock:
                inbox = self._pending.get(rid)
            if inbox is not None:  # replies to requests nobody waits for any more are dropped
                inbox.put(message)
        process.wait()
        shutil.rmtree(chips, ignore_errors=True)
        with self._pending_lock:
            eof.set()
            for inbox in self._pending.values():
                inbox.put(None)

    def _read_stderr(self, process: subprocess.Popen) -> None:
        for line in process.stderr:
            line = line.rstrip().split("\r")[-1]    # a progress bar redraws itself with carriage returns
            self._stderr.append(line)
            if self.on_stderr is not None:
                self.on_stderr(line)

    def _death_message(self) -> str:
        """One sentence: how the worker ended and its last words worth reading (never a progress bar)."""
        code = self.process.poll() if self.process is not None else None
        how = "was not started" if self.process is None else (
            f"exited with status {code}" if code is not None and code >= 0 else f"was killed (signal {-code})"
            if code is not None else "stopped answering")
        words = last_words(list(self._stderr))
        return f"the model worker {how}" + (f" ({words})" if words else "") + "; restart it"

    def stderr_tail(self) -> List[str]:
        return list(self._stderr)


def last_words(lines: Sequence[str]) -> str:
    """The stderr line that best says why a worker ended: the last error-looking one (a Python
    exception, "Killed", CUDA's messages), else the last line that is not a progress bar; at most 200
    characters."""
    meaningful = [line.strip() for line in lines if line.strip() and not _PROGRESS.search(line)]
    errors = [line for line in meaningful if _ERRORISH.search(line)]
    pick = (errors or meaningful)[-1:]
    return pick[0][:200] if pick else ""


def remove_orphaned_chip_folders() -> None:
    """Remove the chip folders of processes that no longer run (POSIX; on Windows a signal-0 probe
    would end the process, so the folders there are left to the system's temp cleaning)."""
    if os.name != "posix":
        return
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        pid = name[len(CHIPS_PREFIX):].split("-", 1)[0] if name.startswith(CHIPS_PREFIX) else ""
        if not (pid.isascii() and pid.isdigit()) or len(pid) > 9 or int(pid) == os.getpid():
            continue  # not one of ours (PIDs fit in 9 digits), or this process's own
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        except OSError:
            pass  # runs, as another user
