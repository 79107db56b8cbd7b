"""Replays of answers real models wrote and that were published (tests/data/model_outputs/, each file
naming its source): through the real thinking split, parser and coordinate frame for text answers,
and through a loopback server and the remote engine for OpenAI-compatible streams."""

import glob
import json
import math
import os

import numpy as np
import pytest

from model_backend.core.encoding import Convention, CoordinateFrame
from model_backend.core.families import family as lookup_family
from model_backend.core.interface import AnswerMeta, AskRequest
from model_backend.models.engine import finish_answer
from model_backend.models.remote import RemoteEngine
from openai_server import serve, url

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "model_outputs")
RECORDS = {os.path.basename(p)[:-5]: json.load(open(p, encoding="utf-8")) for p in sorted(glob.glob(
    os.path.join(FOLDER, "*.json")))}
TEXTS = [k for k, r in RECORDS.items() if r["family"] != "openai_stream"]
STREAMS = [k for k, r in RECORDS.items() if r["family"] == "openai_stream"]
#: chip size a replay maps to when the source does not say what the model saw (rel_1000 answers do
#: not depend on it; the mapping is checked all the same)
NOMINAL = (1200, 900)


def test_every_record_names_its_source_and_its_regions():
    assert len(RECORDS) >= 10
    for name, r in RECORDS.items():
        assert r["source"].startswith("https://"), name
        assert isinstance(r["raw"], str) and isinstance(r["expected"], list), name
        assert name.startswith(r["family"] + "__"), name


def _frame(record):
    fam = lookup_family(record["family"])
    w, h = NOMINAL
    if fam.convention is Convention.RESIZED_PIXELS:
        # pixel coordinates of an image whose size the source does not give: one that holds them
        coords = [e["coords"] for e in record["expected"]]
        reach = (max([c[0::2] for c in coords] + [[0]], key=max), max([c[1::2] for c in coords] + [[0]], key=max))
        rw, rh = record["image_size"] or (max(w, math.ceil(max(reach[0]))), max(h, math.ceil(max(reach[1]))))
        return fam, CoordinateFrame(fam.convention, w, h, rw, rh)
    return fam, CoordinateFrame(fam.convention, w, h)


@pytest.mark.parametrize("name", TEXTS)
def test_a_real_answer_gives_the_regions_it_means_in_chip_pixels(name):
    record = RECORDS[name]
    fam, frame = _frame(record)
    answer = finish_answer(record["raw"], fam, frame, AnswerMeta())
    got = [(r.label, r.shape.kind.value, np.array(r.shape.vertices).ravel().tolist()) for r in answer.regions]
    want = []
    for e in record["expected"]:
        if e["kind"] == "box":
            x1, y1, x2, y2 = frame.decode_box(*e["coords"])
            want.append((e["label"], "box", [x1, y1, x2, y2]))
        else:
            xs, ys = frame.from_model(e["coords"][0::2], e["coords"][1::2])
            want.append((e["label"], e["kind"], np.column_stack([xs, ys]).ravel().tolist()))
    assert [(g[0], g[1]) for g in got] == [(w[0], w[1]) for w in want]
    for (_, _, g), (_, _, w) in zip(got, want):
        assert np.allclose(g, w, atol=0.5)                   # to half a chip pixel
    assert "<think>" not in answer.text and "</think>" not in answer.text


def _sse_body(lines):
    """The published lines as one body; payloads shown without their ``data: `` prefix (abridged by
    the author, see the record's notes) get it back, the framing every server sends."""
    out = []
    for line in lines:
        if line.startswith("{"):
            line = "data: " + line + "\n"
        out.append(line)
    return ("\n".join(out) + "\n").encode("utf-8")


@pytest.mark.parametrize("name", STREAMS)
def test_a_real_stream_gives_its_answer_and_keeps_its_thoughts_apart(name):
    record = RECORDS[name]
    body = _sse_body(record["stream"])

    def behaviour(handler, _):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with serve(behaviour) as srv:
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(np.zeros((32, 32, 3), np.uint8), "Q?"))
    whole = any(line.strip() == "data: [DONE]" for line in record["stream"])
    assert answer.meta.finish_reason == ("stop" if whole else "incomplete")
    assert answer.text == record["raw"]
    assert answer.regions == [] and record["expected"] == []
    if not record["raw"]:                                     # cut while thinking: thoughts kept apart
        assert answer.reasoning
