"""The worker's side of PROTOCOL.md: reads requests on stdin, runs load/ask/find in one job thread,
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
from ..core.tiling import DEFAULT_OVERLAP, DEFAULT_TILE
from ..models.engine import Engine
from . import PROTOCOL_VERSION


class Worker:
    """State of one worker: the loaded engine, the running job and the output lock."""

    def __init__(self, out=sys.stdout):
        self._out = out
        self._lock = threading.Lock()
        self.engine: Optional[Engine] = None
        self.segmenter: Optional[Any] = None        # a models.segmentation.SegmentEngine, loaded by segment
        self._segmenter_spec: Optional[tuple] = None
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
        elif kind in ("load", "ask", "find", "plan_find", "segment"):
            self._start_job(rid, kind, request)
        else:
            self.error(rid, "BadRequest", f"unknown request type {kind!r}")
        return True

    def _start_job(self, rid, kind: str, request: Dict[str, Any]) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.error(rid, "Busy", f"the worker is busy with request {self.job!r}; cancel it or wait")
            return
        if kind in ("ask", "find") and self.engine is None:
            self.error(rid, "NoModelLoaded", "no model is loaded; send load first")
            return
        self.job, self.state = rid, ("loading" if kind == "load" else "busy")
        self._cancel.clear()
        run: Callable[[Any, Dict[str, Any]], Dict[str, Any]] = {"load": self._load, "ask": self._ask,
                                                                 "find": self._find,
                                                                 "plan_find": self._plan_find,
                                                                 "segment": self._segment}[kind]
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
                                      thinking=request.get("thinking") is True, cancel=self._cancel)
        elif backend == "openai":
            from ..models.remote import RemoteEngine

            self.engine = RemoteEngine(request["endpoint"], request["model"], request.get("family", "qwen3_vl"),
                                       api_key=request.get("api_key"), timeout=float(request.get("timeout", 120)),
                                       thinking=request.get("thinking") is True)
        else:
            raise InvalidArgumentError(f"unknown backend {backend!r}; choose local or openai")
        return {"type": "loaded", "id": rid, "model": self.engine.describe()}

    def _ask(self, rid, request: Dict[str, Any]) -> Dict[str, Any]:
        ask = AskRequest(image=self._chip(request), instruction=str(request.get("instruction", "")),
                         prompts=prompts_from_dicts(request.get("prompts", [])),
                         task=request.get("task", "chat"), modality=request.get("modality", "optical"),
                         history=history_from_dicts(request.get("history")),
                         max_new_tokens=int(request.get("max_new_tokens", 512)))
        answer = self.engine.ask(ask, on_text=lambda t: self.send({"type": "token", "id": rid, "text": t}),
                                 cancel=self._cancel,
                                 on_reasoning=lambda t: self.send({"type": "reasoning", "id": rid, "text": t}))
        return {"type": "answer", "id": rid, "answer": answer.to_dict()}

    def _plan_find(self, rid, request: Dict[str, Any]) -> Dict[str, Any]:
        """The checks of a ``find`` (no model needed): each raster's tile count, or the error."""
        from ..jobs.find import plan_search

        rasters, search = _search_fields(request)
        grids = plan_search(rasters, search["phrase"], search["out"], search["resume"], search["resolution"],
                            search["extent"], search["extent_crs"], search["tile"], search["overlap"],
                            search["max_new_tokens"])
        return {"type": "planned", "id": rid, "rasters": [
            {"raster": raster, "tiles": len(grid), "tile_width": grid.out_width, "tile_height": grid.out_height}
            for raster, grid in grids]}

    def _find(self, rid, request: Dict[str, Any]) -> Dict[str, Any]:
        """A tiled search (``jobs.find``) of each raster in turn into one output, with the loaded engine;
        ``progress`` events carry ``done``, ``total`` (tiles of the raster searched) and ``raster``."""
        from ..jobs.find import find_objects

        rasters, search = _search_fields(request)
        summaries = []
        for raster in rasters:
            def progress(done: int, total: int, message: str, raster: str = raster) -> None:
                self.send({"type": "progress", "id": rid, "raster": raster, "done": done, "total": total,
                           "message": message})

            result = find_objects(raster, engine=self.engine, on_progress=progress, cancel=self._cancel, **search)
            summaries.append({"raster": raster, **result.summary()})
            if result.cancelled:
                break
        return {"type": "found", "id": rid, "searches": summaries}

    def _segment(self, rid, request: Dict[str, Any]) -> Dict[str, Any]:
        """Outlines of the request's prompts and detections (chip pixels) on its chip, and of its phrase
        (SAM 3), with the segmenter it names (loaded, or replaced, first): polygons on the chip's pixel
        grid, each ring a list of (col, row)."""
        from ..core.engine_options import DEFAULT_SEGMENTER
        from ..core.mask_prompts import from_detection, from_prompt
        from ..core.prompts import PromptKind, VisualPrompt
        from ..geo.masks import check_outline_settings, mask_polygons
        from ..models.loading import LoadPolicy
        from ..models.segmentation import SegmentEngine

        simplify, min_area = float(request.get("simplify_px", 0.0)), float(request.get("min_area_px", 0.0))
        check_outline_settings(min_area, simplify)
        image = self._chip(request)
        spec = (request.get("segmenter") or DEFAULT_SEGMENTER, request.get("device", "auto"),
                request.get("precision", "auto"))
        if self.segmenter is None or self._segmenter_spec != spec:
            if self.segmenter is not None:
                self.segmenter.close()
                self.segmenter = None
            self.segmenter = SegmentEngine(spec[0], LoadPolicy(spec[1], spec[2]), on_status=lambda m: self.send(
                {"type": "progress", "id": rid, "message": m}))
            self._segmenter_spec = spec
        label = str(request.get("label") or "")
        asked = [from_prompt(p, label) for p in prompts_from_dicts(request.get("prompts", []))]
        for d in request.get("detections", []):
            shape = VisualPrompt(PromptKind(d["kind"]), tuple(tuple(v) for v in d["vertices"]))
            asked.append(from_detection(shape, int(d["rank"]), str(d.get("label") or "")))
        masks, empty = [], 0
        for m in self.segmenter.segment(image, asked, request.get("phrase") or None):
            polygons = mask_polygons(m.mask, min_area_px=min_area, simplify_px=simplify)
            if not polygons:
                empty += 1
                continue
            masks.append({"polygons": [[list(p.exterior.coords)] + [list(r.coords) for r in p.interiors]
                                       for p in polygons],
                          "score": m.score, "kind": m.prompt.kind, "index": m.prompt.index, "label": m.prompt.label})
        return {"type": "segmented", "id": rid, "masks": masks, "empty": empty, "segmenter": self.segmenter.describe()}

    def _chip(self, request: Dict[str, Any]) -> np.ndarray:
        try:
            return np.load(request["chip"], allow_pickle=False)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidArgumentError(f"cannot read the chip file: {exc}") from None

    def heartbeat(self, period: float, stop: threading.Event) -> None:
        while not stop.wait(period):
            self.send({"type": "heartbeat", "time": time.time(), "state": self.state, "job": self.job})


def _search_fields(request: Dict[str, Any]):
    """(rasters, keyword arguments of ``find_objects``) from a ``find`` or ``plan_find`` request."""
    from ..core.normalise import Modality
    from ..geo.crs import parse_crs

    rasters = request.get("rasters")
    if not isinstance(rasters, list) or not rasters or not all(isinstance(r, str) for r in rasters):
        raise InvalidArgumentError("a search needs rasters: a list of raster paths")
    extent = request.get("extent")
    return rasters, {
        "phrase": str(request.get("phrase", "")), "out": request.get("out"), "resume": request.get("resume") is True,
        "resolution": request.get("resolution"), "extent": tuple(extent) if extent else None,
        "extent_crs": parse_crs(request["extent_crs"]) if request.get("extent_crs") else None,
        "tile": request.get("tile", DEFAULT_TILE), "overlap": request.get("overlap", DEFAULT_OVERLAP),
        "modality": Modality(request["modality"]) if request.get("modality") else None,
        "bands": request.get("bands"), "max_new_tokens": request.get("max_new_tokens", 512),
        "concurrency": request.get("concurrency", 1), "batch_size": request.get("batch_size", 1)}


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
