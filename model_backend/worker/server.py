"""The worker's side of PROTOCOL.md: reads requests on stdin, runs load/ask in one job thread,
writes replies, token events and heartbeats on stdout."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

from .. import __version__
from ..core.errors import EarthGPTXError, InvalidArgumentError
from ..core.interface import AskRequest, history_from_dicts, prompts_from_dicts
from ..models.engine import Engine
from . import PROTOCOL_VERSION


class Worker:
    """State of one worker: the loaded engine, the running job and the output lock."""

    def __init__(self, out=sys.stdout):
        self._out = out
        self._lock = threading.Lock()
        self.engine: Optional[Engine] = None
        self.state = "idle"
        self.job: Optional[Any] = None
        self._cancel = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- output ---------------------------------------------------------------------------------
    def send(self, message: Dict[str, Any]) -> None:
        line = json.dumps(message)  # ASCII: a lone surrogate (from a request id, say) goes out escaped
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def error(self, request_id, error: str, message: str) -> None:
        self.send({"type": "error", "id": request_id, "error": error, "message": message})

    # -- dispatch ---------------------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        """Handle one request line; False after ``shutdown``."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or "type" not in request:
                raise ValueError("a request is a JSON object with a type")
        except ValueError as exc:
            self.error(None, "BadRequest", f"cannot read the request: {exc}")
            return True
        rid, kind = request.get("id"), request["type"]
        if kind == "hello":
            self.send({"type": "hello", "id": rid, "protocol": PROTOCOL_VERSION, "version": __version__,
                       "pid": os.getpid(), "python": sys.version.split()[0]})
        elif kind == "status":
            self.send({"type": "status", "id": rid, "state": self.state, "job": self.job,
                       "model": self.engine.describe() if self.engine else None})
        elif kind == "cancel":
            if self.job is not None and self.job == request.get("target"):
                self._cancel.set()
            self.send({"type": "ok", "id": rid})
        elif kind == "shutdown":
            self._cancel.set()
            self.send({"type": "bye", "id": rid})
            return False
        elif kind in ("load", "ask"):
            self._start_job(rid, kind, request)
        else:
            self.error(rid, "BadRequest", f"unknown request type {kind!r}")
        return True

    def _start_job(self, rid, kind: str, request: Dict[str, Any]) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.error(rid, "Busy", f"the worker is busy with request {self.job!r}; cancel it or wait")
            return
        if kind == "ask" and self.engine is None:
            self.error(rid, "NoModelLoaded", "no model is loaded; send load first")
            return
        self.job, self.state = rid, ("loading" if kind == "load" else "busy")
        self._cancel.clear()
        run: Callable[[Any, Dict[str, Any]], Dict[str, Any]] = self._load if kind == "load" else self._ask
        self._thread = threading.Thread(target=self._run_job, args=(run, rid, request), daemon=True)
        self._thread.start()

    def _run_job(self, run, rid, request) -> None:
        """Run a job; its final reply is sent only once the worker is idle again, so a client may send
        the next request as soon as it has the reply."""
        try:
            reply = run(rid, request)
        except EarthGPTXError as exc:
            reply = {"type": "error", "id": rid, "error": type(exc).__name__, "message": str(exc)}
        except Exception as exc:  # the worker must survive anything a job throws
            reply = {"type": "error", "id": rid, "error": "InternalError",
                     "message": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        self.job, self.state, self._thread = None, "idle", None
        self.send(reply)

    # -- jobs -------------------------------------------------------------------------------------
    def _load(self, rid, request: Dict[str, Any]) -> Dict[str, Any]:
        def status(message: str) -> None:
            self.send({"type": "progress", "id": rid, "message": message})

        backend = request.get("backend", "local")
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if backend == "local":
            from ..core.engine_options import DEFAULT_MODEL
            from ..models.loading import LoadPolicy
            from ..models.local import LocalEngine

            policy = LoadPolicy(request.get("device", "auto"), request.get("quantization", "auto"))
            self.engine = LocalEngine(request.get("model") or DEFAULT_MODEL, policy, on_status=status,
                                      thinking=request.get("thinking") is True)
        elif backend == "openai":
            from ..models.remote import RemoteEngine

            self.engine = RemoteEngine(request["endpoint"], request["model"], request.get("family", "qwen3_vl"),
                                       api_key=request.get("api_key"), timeout=float(request.get("timeout", 120)),
                                       thinking=request.get("thinking") is True)
        else:
            raise InvalidArgumentError(f"unknown backend {backend!r}; choose local or openai")
        return {"type": "loaded", "id": rid, "model": self.engine.describe()}

    def _ask(self, rid, request: Dict[str, Any]) -> Dict[str, Any]:
        try:
            image = np.load(request["chip"], allow_pickle=False)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidArgumentError(f"cannot read the chip file: {exc}") from None
        ask = AskRequest(image=image, instruction=str(request.get("instruction", "")),
                         prompts=prompts_from_dicts(request.get("prompts", [])),
                         task=request.get("task", "chat"), modality=request.get("modality", "optical"),
                         history=history_from_dicts(request.get("history")),
                         max_new_tokens=int(request.get("max_new_tokens", 512)))
        answer = self.engine.ask(ask, on_text=lambda t: self.send({"type": "token", "id": rid, "text": t}),
                                 cancel=self._cancel,
                                 on_reasoning=lambda t: self.send({"type": "reasoning", "id": rid, "text": t}))
        return {"type": "answer", "id": rid, "answer": answer.to_dict()}

    def heartbeat(self, period: float, stop: threading.Event) -> None:
        while not stop.wait(period):
            self.send({"type": "heartbeat", "time": time.time(), "state": self.state, "job": self.job})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_backend.worker", description="EarthGPT-X model worker")
    parser.add_argument("--heartbeat", type=float, default=2.0, help="seconds between heartbeats (default 2)")
    args = parser.parse_args(argv)
    sys.stdin.reconfigure(errors="replace")  # a line of invalid UTF-8 is a bad request, not the end
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints from libraries must not corrupt the protocol stream
    worker = Worker(out)
    stop = threading.Event()
    threading.Thread(target=worker.heartbeat, args=(args.heartbeat, stop), daemon=True).start()
    try:
        for line in sys.stdin:
            if line.strip() and not worker.handle(line):
                break
    finally:
        stop.set()
        out.flush()
        sys.stderr.flush()
    # skip interpreter teardown: native thread pools of torch and friends can abort it (SIGABRT,
    # "terminate called without an active exception") after everything was said and flushed
    os._exit(0)
