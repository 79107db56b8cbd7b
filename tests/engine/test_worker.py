"""The worker process over its JSON-lines protocol, with a tiny model: spawn, hello, load, streamed
ask, cancel in the middle, status while busy, errors that keep it alive, kill -> clear error -> restart."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

from model_backend.core.errors import InvalidArgumentError, ModelNotFoundError, PromptOutsideRasterError, WorkerError
from model_backend.core.interface import AskRequest, Task
from model_backend.core.prompts import VisualPrompt
from model_backend.testing.tiny_model import build_tiny_model
from model_backend.worker import PROTOCOL_VERSION
from model_backend.worker.client import PACKAGE_PARENT, WorkerClient

CHIP = np.random.default_rng(5).integers(0, 256, (256, 320, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(str(tmp_path_factory.mktemp("tiny")), "qwen3_vl")


@pytest.fixture
def worker():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    client = WorkerClient(python=sys.executable, heartbeat=0.2, env=env)
    hello = client.start()
    assert hello["protocol"] == PROTOCOL_VERSION
    yield client
    client.kill()


def load(client, tiny):
    progress = []
    model = client.load(on_progress=progress.append, model=tiny, device="cpu", quantization="fp32", timeout=120)
    return model, progress


def test_load_ask_stream_and_status(worker, tiny):
    model, progress = load(worker, tiny)
    assert model["family"] == "qwen3_vl" and model["device"] == "cpu"
    assert any("fp32" in p for p in progress)
    pieces = []
    answer = worker.ask(AskRequest(CHIP, "What is in region 1?", (VisualPrompt.box(10, 20, 100, 120),), Task.VQA,
                                   max_new_tokens=10), on_text=pieces.append, timeout=120)
    assert "".join(pieces) == answer.text and answer.meta.generated_tokens <= 10
    assert worker.status()["state"] == "idle"
    assert worker.seconds_since_heard() < 5
    assert os.listdir(worker._tmp) == []  # the chip file was removed after the answer


def test_cancel_in_the_middle_and_status_while_busy(worker, tiny):
    load(worker, tiny)
    cancel = threading.Event()
    states = []

    def on_text(_):
        if not states:
            states.append(worker.status()["state"])  # answered while generating
            cancel.set()

    answer = worker.ask(AskRequest(CHIP, "Describe everything.", max_new_tokens=300), on_text=on_text,
                        cancel=cancel, timeout=120)
    assert states == ["busy"]
    assert answer.meta.finish_reason == "cancelled" and answer.meta.generated_tokens < 100


def test_errors_reach_the_caller_and_the_worker_stays_up(worker, tiny):
    with pytest.raises(Exception, match="no model is loaded"):
        worker.ask(AskRequest(CHIP, "hi"), timeout=30)
    with pytest.raises(ModelNotFoundError, match="not downloaded"):
        worker.load(model="earthgptx-test/not-there", timeout=60)
    with pytest.raises(InvalidArgumentError, match="device must be"):
        worker.load(model=tiny, device="tpu", timeout=60)
    assert worker.status()["state"] == "idle"


def test_kill_gives_clear_error_then_restart(worker, tiny):
    load(worker, tiny)

    def kill_while_streaming(_):
        if worker.alive:
            worker.process.kill()

    with pytest.raises(WorkerError, match="killed.*restart"):
        worker.ask(AskRequest(CHIP, "Describe everything.", max_new_tokens=300), on_text=kill_while_streaming,
                   timeout=120)
    with pytest.raises(WorkerError, match="restart"):
        worker.status()
    assert worker.restart()["protocol"] == PROTOCOL_VERSION
    assert worker.status()["model"] is None


def test_raw_protocol_bad_lines_busy_and_shutdown(tiny):
    """Speak the protocol directly, as documented in PROTOCOL.md."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=PACKAGE_PARENT)
    p = subprocess.Popen([sys.executable, "-m", "model_backend.worker", "--heartbeat", "60"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env, cwd=PACKAGE_PARENT)
    try:
        def send(obj):
            p.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
            p.stdin.flush()

        def until(pred):
            while True:
                msg = json.loads(p.stdout.readline())
                if pred(msg):
                    return msg

        send("this is not json")
        assert until(lambda m: True)["error"] == "BadRequest"
        send({"type": "load", "id": "L", "model": tiny, "device": "cpu", "quantization": "fp32"})
        send({"type": "load", "id": "L2", "model": tiny})
        busy = until(lambda m: m.get("id") == "L2")
        assert busy["type"] == "error" and busy["error"] == "Busy"
        assert until(lambda m: m.get("id") == "L" and m["type"] in ("loaded", "error"))["type"] == "loaded"
        send({"type": "frobnicate", "id": 9})
        assert until(lambda m: m.get("id") == 9)["error"] == "BadRequest"
        send({"type": "shutdown", "id": "bye"})
        assert until(lambda m: m.get("id") == "bye")["type"] == "bye"
        assert p.wait(30) == 0
    finally:
        p.kill()


def test_raw_bytes_surrogates_and_non_object_lines_never_stop_the_worker():
    """Invalid UTF-8, a lone surrogate in an id and JSON that is not an object: each answered as a bad
    request (or echoed escaped), and the worker still says hello afterwards."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=PACKAGE_PARENT)
    p = subprocess.Popen([sys.executable, "-m", "model_backend.worker", "--heartbeat", "60"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env, cwd=PACKAGE_PARENT)
    try:
        for raw in (b"\xff\xfe not utf-8 \xc3\x28\n", b'{"type": "status", "id": "\\ud800"}\n', b"[1, 2]\n",
                    b"5\n", b'"text"\n', b'{"type": "hello", "id": "after"}\n'):
            p.stdin.write(raw)
        p.stdin.flush()
        replies = []
        while not replies or replies[-1].get("id") != "after":
            replies.append(json.loads(p.stdout.readline()))
        assert [r["type"] for r in replies] == ["error", "status", "error", "error", "error", "hello"]
        assert replies[1]["id"] == "\ud800" and replies[0]["error"] == "BadRequest"
        p.stdin.write(b'{"type": "shutdown", "id": "bye"}\n')
        p.stdin.flush()
        assert p.wait(30) == 0
    finally:
        p.kill()


def test_the_client_reader_survives_stray_lines_on_the_workers_stdout(tmp_path):
    """A C library may write to the worker's stdout: JSON that is not an object, an object whose id is
    not one, plain text. The client notes them and goes on answering (it used to lose its reader)."""
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nprintf '[1, 2]\\n5\\n{{\"id\": [1]}}\\nnoise\\n'\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    client = WorkerClient(python=str(python), heartbeat=0.2, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        assert client.start()["protocol"] == PROTOCOL_VERSION
        assert client.status()["state"] == "idle"
        assert any("[1, 2]" in line for line in client.stderr_tail())
    finally:
        client.kill()


def test_a_stopped_worker_ends_every_call_with_a_clear_error(tiny):
    """SIGSTOP: the process lives but says nothing; calls without a timeout of their own still end."""
    client = WorkerClient(python=sys.executable, heartbeat=0.2, env=dict(os.environ, HF_HUB_OFFLINE="1"),
                          silence_timeout=2.0)
    try:
        client.start()
        load(client, tiny)
        os.kill(client.process.pid, signal.SIGSTOP)
        start = time.monotonic()
        with pytest.raises(WorkerError, match="stopped answering .*2 s.*restart"):
            client.ask(AskRequest(CHIP, "Describe everything.", max_new_tokens=5))
        with pytest.raises(WorkerError, match="stopped answering"):
            client.load(model=tiny, device="cpu", quantization="fp32")
        assert time.monotonic() - start < 10
        assert client.alive
    finally:
        client.kill()


def test_an_ask_past_its_timeout_is_stopped_on_the_worker(worker, tiny):
    load(worker, tiny)
    with pytest.raises(WorkerError, match="did not finish ask within 0.3 s"):
        worker.ask(AskRequest(CHIP, "Describe everything.", max_new_tokens=2000), timeout=0.3)
    deadline = time.monotonic() + 60
    while worker.status()["state"] != "idle" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.status()["state"] == "idle"          # the cancel reached it: free for the next question
    assert worker.ask(AskRequest(CHIP, "hi", max_new_tokens=3), timeout=120).meta.generated_tokens <= 3


def test_chip_folders_of_killed_workers_and_dead_callers_are_removed():
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tempfile.mkdtemp(prefix=f"earthgptx-chips-{dead.pid}-")
    ours = tempfile.mkdtemp(prefix=f"earthgptx-chips-{os.getpid()}-")
    client = WorkerClient(python=sys.executable, heartbeat=0.2, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        client.start()
        folder = client._tmp
        assert os.path.isdir(folder) and not os.path.exists(orphan) and os.path.isdir(ours)
        os.kill(client.process.pid, signal.SIGKILL)          # killed from outside, the client never told
        deadline = time.monotonic() + 10
        while os.path.exists(folder) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(folder)
    finally:
        client.kill()
        os.rmdir(ours)


def test_a_thinking_qwen3_5_streams_its_thoughts_apart_through_the_worker(tmp_path):
    tiny35 = build_tiny_model(str(tmp_path / "qwen3_5"), "qwen3_5")
    client = WorkerClient(python=sys.executable, heartbeat=0.2, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        client.start()
        model = client.load(model=tiny35, device="cpu", quantization="fp32", thinking=True, timeout=120)
        assert model["family"] == "qwen3_5"
        text, thoughts = [], []
        answer = client.ask(AskRequest(CHIP, "ships", task=Task.GROUNDING, max_new_tokens=12), on_text=text.append,
                            on_reasoning=thoughts.append, timeout=120)
        assert answer.reasoning and "".join(thoughts).strip() == answer.reasoning
        assert "".join(text).strip() == answer.text.strip() and "<think>" not in answer.text
    finally:
        client.kill()


def test_a_start_that_fails_leaves_no_worker_running_and_odd_temp_names_are_ignored(tmp_path):
    hung = tmp_path / "python"
    hung.write_text("#!/bin/sh\nexec sleep 60\n")            # starts, never says hello
    hung.chmod(0o755)
    client = WorkerClient(python=str(hung), heartbeat=0.2)
    with pytest.raises(WorkerError, match="did not finish hello within 1 s"):
        client.start(timeout=1)
    assert client.process.poll() is not None                 # killed, not left behind
    odd = [tempfile.mkdtemp(prefix=prefix) for prefix in ("earthgptx-chips-99999999999999999999-",
                                                           "earthgptx-chips-\u00b2-", "earthgptx-chips--")]
    client = WorkerClient(python=sys.executable, heartbeat=0.2, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        assert client.start()["protocol"] == PROTOCOL_VERSION
        assert all(os.path.isdir(folder) for folder in odd)  # not ours: left alone, and no traceback
    finally:
        client.kill()
        for folder in odd:
            os.rmdir(folder)


def test_a_search_is_planned_without_a_model_then_run_and_cancelled_by_the_worker(worker, tiny, tmp_path):
    """``plan_find`` checks a search with no model loaded; ``find`` runs it with progress events, and a
    cancel stops it after the tiles in flight, the tiles answered kept in the GeoPackage."""
    import fiona

    from conftest import RASTERS

    out = str(tmp_path / "found.gpkg")
    raster = RASTERS["utm_landsat"]
    (planned,) = worker.plan_find([raster], "ships", out=out, tile=256, overlap=0.1)
    assert planned["tiles"] == 16 and (planned["tile_width"], planned["tile_height"]) == (256, 256)
    with pytest.raises(PromptOutsideRasterError, match="the extent lies outside the raster"):
        worker.plan_find([raster], "ships", extent=[0, 0, 1, 1], extent_crs="EPSG:4326")
    with pytest.raises(Exception, match="no model is loaded"):
        worker.find([raster], "ships", out=out)
    assert not os.path.exists(out)
    load(worker, tiny)
    events, cancel = [], threading.Event()

    def on_progress(event):
        events.append(event)
        if event["done"] == 3:
            cancel.set()

    (search,) = worker.find([raster], "ships", on_progress=on_progress, cancel=cancel, out=out, tile=256,
                            overlap=0.1, max_new_tokens=4, timeout=300)
    assert search["cancelled"] and 3 <= search["tiles"]["done"] < 16
    assert all(e["raster"] == raster and e["total"] == 16 for e in events)
    with fiona.open(out, layer="answers") as src:
        assert len(src) == search["answers"] == search["tiles"]["done"] - search["tiles"]["skipped_nodata"]
    assert worker.status()["state"] == "idle"


def test_the_worker_outlines_prompts_and_detections_with_no_vlm_loaded(worker, tmp_path):
    """``segment`` loads the segmenter it names (none of the VLM) and answers polygons on the chip's
    pixel grid that cover each mask, for a drawn prompt and a grounding answer's detection."""
    from model_backend.testing.tiny_sam import build_tiny_sam

    sam2 = build_tiny_sam(str(tmp_path / "sam2"), "sam2")
    progress = []
    reply = worker.segment(CHIP, prompts=[VisualPrompt.box(20, 30, 200, 180, index=1)],
                           detections=[{"kind": "box", "vertices": [[40, 40], [120, 100]], "rank": 2, "label": "ship"}],
                           segmenter=sam2, device="cpu", on_progress=progress.append, timeout=120)
    assert any("Loading the segmenter" in p for p in progress) and reply["segmenter"]["family"] == "sam2"
    assert len(reply["masks"]) + reply["empty"] == 2
    for m in reply["masks"]:
        assert (m["kind"], m["index"]) in (("box", 1), ("detection", 2)) and 0 <= m["score"] <= 1
        coords = np.array([xy for polygon in m["polygons"] for ring in polygon for xy in ring])
        assert np.array_equal(coords, np.round(coords)) and coords.min() >= 0
        assert coords[:, 0].max() <= CHIP.shape[1] and coords[:, 1].max() <= CHIP.shape[0]
    with pytest.raises(InvalidArgumentError, match="--min-area must be"):
        worker.segment(CHIP, prompts=[VisualPrompt.point(5, 5)], segmenter=sam2, device="cpu", min_area_px=-2)
    assert worker.status()["model"] is None and worker.status()["state"] == "idle"
