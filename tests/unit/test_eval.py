"""The evaluation harness: data readers, metrics, scripted engines with known answers, the CLI end to end
through the real RemoteEngine against a loopback server, and one-line exit-2 errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from PIL import Image

from conftest import DATA, RASTERS
from model_backend.models.engine import Engine
from model_backend.commands.eval import main
from model_backend.eval.datasets import load_dior_rsvg, plural_phrase
from model_backend.eval.metrics import detection_summary, iou, match_boxes, normalise_label
from model_backend.eval.runner import EvalTask, evaluate, load_dataset, read_chip
from model_backend.core.families import family
from model_backend.core.interface import Answer, AnswerMeta, Region, Task
from model_backend.core.prompts import PromptKind, VisualPrompt
from openai_server import serve, sse_events, stream, url

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HIT_UAV = os.path.join(DATA, "infrared", "hit_uav")
HIT_UAV_STEMS = ("0_100_30_0_03307", "1_100_40_0_02368", "1_70_30_0_07581")


class ScriptedEngine(Engine):
    """Answers with ``reply(request) -> (text, boxes)``; boxes in chip pixels become box regions."""

    family = family("qwen3_vl")

    def __init__(self, reply):
        self.reply = reply
        self.requests = []

    def ask(self, request, on_text=None, cancel=None):
        self.requests.append(request)
        text, boxes = self.reply(request)
        regions = [Region(VisualPrompt.box(*b), "", (0, len(text))) for b in boxes]
        return Answer(text, regions, AnswerMeta(model_id="scripted", backend="test"))

    def describe(self):
        return {"model_id": "scripted", "backend": "test"}


def digest(image):
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def key(image, text):
    return text, digest(image)


def truth_table(dataset):
    """(instruction, image digest) -> ground-truth boxes, for engines that answer from the truth."""
    return {key(read_chip(e.image), e.phrase): e.boxes for e in dataset.examples}


def voc_boxes(stem):
    root = ET.parse(os.path.join(HIT_UAV, stem + ".xml")).getroot()
    return [(o.findtext("name"), tuple(float(o.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")))
            for o in root.iter("object")]


def write_voc(path, filename, objects):
    """A DIOR-RSVG-style annotation: objects are (name, box, description or None)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    for name, box, description in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        bnd = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bnd, tag).text = str(int(value))
        if description is not None:
            ET.SubElement(obj, "description").text = description
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


@pytest.fixture
def dior(tmp_path):
    """A DIOR-RSVG folder over the committed HIT-UAV frames (grey JPEGs): 4 referring records, real boxes."""
    folder = tmp_path / "dior"
    (folder / "Annotations").mkdir(parents=True)
    (folder / "JPEGImages").mkdir()
    for n, stem in enumerate(HIT_UAV_STEMS, start=1):
        name = f"{n:05d}"
        shutil.copy(os.path.join(HIT_UAV, stem + ".jpg"), folder / "JPEGImages" / f"{name}.jpg")
        picked = voc_boxes(stem)[:2 if n == 1 else 1]
        write_voc(folder / "Annotations" / f"{name}.xml", f"{name}.jpg",
                  [(cls, box, f"the {cls.lower()} number {k} of frame {n}") for k, (cls, box) in enumerate(picked)])
    return str(folder)


# -- metrics --------------------------------------------------------------------------------------
def test_iou_and_greedy_matching():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    assert iou((0, 0, 40, 10), (10, 0, 50, 10)) == pytest.approx(30 / 50)   # (w - d) / (w + d)
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    # two predictions on one truth: the better one matches, the other is a false positive
    truth = [(0, 0, 10, 10), (100, 100, 110, 110)]
    predicted = [(1, 0, 11, 10), (0, 0, 10, 10), (50, 50, 60, 60)]
    assert match_boxes(predicted, truth) == [(1, 0, 1.0)]
    assert detection_summary(1, 3, 2) == pytest.approx({"precision": 1 / 3, "recall": 0.5, "F1": 0.4})
    assert detection_summary(0, 0, 5) == {"precision": 0.0, "recall": 0.0, "F1": 0.0}


def test_label_normalisation_and_plural_phrases():
    assert normalise_label("  Parking_Lot. ") == normalise_label("parking-lot") == "parking lot"
    assert normalise_label("Forêt!") == "foret"
    assert [plural_phrase(n) for n in ("Car", "Person", "OtherVehicle", "storage_tank", "bus")] == [
        "cars", "people", "other vehicles", "storage tanks", "bus"]


# -- data readers ---------------------------------------------------------------------------------
def test_dior_split_counts_objects_in_file_order(tmp_path):
    """Split lines are official object indices; a missing image or a gap in the numbering makes them missing."""
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    jpg = os.path.join(HIT_UAV, HIT_UAV_STEMS[0] + ".jpg")
    for name in ("00001", "00004"):
        shutil.copy(jpg, tmp_path / "JPEGImages" / f"{name}.jpg")
    box = (10, 20, 30, 40)
    write_voc(tmp_path / "Annotations" / "00001.xml", "00001.jpg", [("a", box, "first"), ("b", box, "second")])
    write_voc(tmp_path / "Annotations" / "00002.xml", "00002.jpg", [("c", box, "no image")])
    write_voc(tmp_path / "Annotations" / "00004.xml", "00004.jpg", [("d", box, "after a gap")])
    split = tmp_path / "test.txt"
    split.write_text("3\n0\n2\n1\n9\n")
    ds = load_dior_rsvg(str(tmp_path), str(split))
    assert [(e.id, e.phrase) for e in ds.examples] == [("00001#0", "first"), ("00001#1", "second")]
    assert ds.missing == 3   # 3 (past the gap), 2 (image missing), 9 (beyond the data)
    everything = load_dior_rsvg(str(tmp_path))
    assert [e.id for e in everything.examples] == ["00001#0", "00001#1", "00004#0"] and everything.missing == 1


def test_hit_uav_examples_per_class():
    ds = load_dataset(EvalTask.CLASS_GROUNDING, HIT_UAV)
    assert len(ds.examples) == 8 and ds.missing == 0
    assert {e.phrase for e in ds.examples} == {"cars", "people", "bicycles"}
    assert sum(len(e.boxes) for e in ds.examples) == 50   # 10 + 18 + 22 objects (PROVENANCE)
    cars = [e for e in ds.examples if e.id == "0_100_30_0_03307:Car"][0]
    assert len(cars.boxes) == 9 and cars.boxes[0] == (186.0, 108.0, 220.0, 143.0)


def test_grey_jpeg_becomes_rgb_chip():
    chip = read_chip(os.path.join(HIT_UAV, HIT_UAV_STEMS[0] + ".jpg"))
    assert chip.dtype == np.uint8 and chip.shape == (512, 640, 3)
    assert np.array_equal(chip[..., 0], chip[..., 2])


# -- scripted engines -----------------------------------------------------------------------------
SHIFT = 8.0   # pixels, to the right


def _shifted(box):
    return (box[0] + SHIFT, box[1], box[2] + SHIFT, box[3])


@pytest.mark.parametrize("behaviour", ["exact", "shifted", "nothing"])
def test_referring_grounding_scores(dior, behaviour):
    ds = load_dataset(EvalTask.GROUNDING, dior)
    truth = truth_table(ds)
    answers = {"exact": lambda b: [b[0]], "shifted": lambda b: [_shifted(b[0]), b[0]], "nothing": lambda b: []}
    engine = ScriptedEngine(lambda r: ("answer", answers[behaviour](truth[key(r.image, r.instruction)])))
    records, metrics = evaluate(engine, EvalTask.GROUNDING, ds)
    widths = [e.boxes[0][2] - e.boxes[0][0] for e in ds.examples]
    expected_iou = {"exact": [1.0] * 4, "nothing": [0.0] * 4,
                    "shifted": [(w - SHIFT) / (w + SHIFT) for w in widths]}[behaviour]   # only the first box counts
    assert [r["iou"] for r in records] == pytest.approx(expected_iou)
    assert metrics["mIoU"] == pytest.approx(sum(expected_iou) / 4)
    assert metrics["Acc@0.5"] == pytest.approx(sum(v >= 0.5 for v in expected_iou) / 4)
    if behaviour == "shifted":
        assert 0 < metrics["Acc@0.5"] < 1   # the narrow person box falls below 0.5
    request = engine.requests[0]
    assert request.task is Task.GROUNDING and request.instruction == ds.examples[0].phrase
    assert request.image.shape == (512, 640, 3) and request.prompts == ()


def test_class_grounding_precision_recall():
    ds = load_dataset(EvalTask.CLASS_GROUNDING, HIT_UAV)
    truth = truth_table(ds)
    n_boxes, n_examples = sum(len(e.boxes) for e in ds.examples), len(ds.examples)

    def run(answer):
        engine = ScriptedEngine(lambda r: ("", answer(list(truth[key(r.image, r.instruction)]))))
        return evaluate(engine, EvalTask.CLASS_GROUNDING, ds)[1]

    assert run(lambda b: b[::-1]) == {"precision": 1.0, "recall": 1.0, "F1": 1.0, "TP": n_boxes, "FP": 0, "FN": 0}
    assert run(lambda b: []) == {"precision": 0.0, "recall": 0.0, "F1": 0.0, "TP": 0, "FP": 0, "FN": n_boxes}
    # every truth but the last, plus one box far from any object
    partial = run(lambda b: b[:-1] + [(600.0, 0.0, 601.0, 1.0)])
    tp = n_boxes - n_examples
    assert (partial["TP"], partial["FP"], partial["FN"]) == (tp, n_examples, n_examples)
    assert partial["precision"] == pytest.approx(tp / n_boxes) and partial["recall"] == pytest.approx(tp / n_boxes)


def _landsat_png(tmp_path):
    with rasterio.open(RASTERS["utm_landsat"]) as src:
        rgb = np.moveaxis(src.read(), 0, -1)
    path = tmp_path / "landsat.png"
    Image.fromarray(rgb).save(path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_scene_accuracy(tmp_path, fmt):
    rows = [(_landsat_png(tmp_path).name, "shallow sea"), (os.path.join(HIT_UAV, HIT_UAV_STEMS[0] + ".jpg"), "road"),
            (os.path.join(HIT_UAV, HIT_UAV_STEMS[2] + ".jpg"), "parking lot"), ("absent.jpg", "road")]
    path = tmp_path / f"scenes.{fmt}"
    if fmt == "csv":
        path.write_text("image,label\n" + "".join(f"{i},{label}\n" for i, label in rows))
    else:
        path.write_text("".join(json.dumps({"image": i, "label": label}) + "\n" for i, label in rows))
    ds = load_dataset(EvalTask.SCENE, str(path))
    assert ds.labels == ("parking lot", "road", "shallow sea") and ds.missing == 1
    answers = {digest(read_chip(e.image)): a for e, a in zip(ds.examples, ["Shallow sea.", "Road", "Harbour"])}
    engine = ScriptedEngine(lambda r: (answers[digest(r.image)], []))
    records, metrics = evaluate(engine, EvalTask.SCENE, ds)
    assert [r["correct"] for r in records] == [True, True, False]
    assert metrics == {"accuracy": pytest.approx(2 / 3)}
    assert engine.requests[0].task is Task.SCENE_CLASSIFICATION
    assert engine.requests[0].instruction == "Choose one of: parking lot, road, shallow sea."


def test_region_captioning_metrics(tmp_path):
    """pycocoevalcap's maxima for a caption equal to its reference (BLEU-4 1, METEOR 1, ROUGE-L 1, CIDEr-D 10),
    lower scores for a wrong one; the region goes to the engine as a box prompt in chip pixels."""
    captions = ["a white car parked on the left side of the road", "a person walking across the plaza at night",
                "a row of bicycles next to the parked cars", "two cars driving down a straight road"]
    wrong = ["a big red ship in the harbour", "green trees"]
    lines = []
    for k, caption in enumerate(captions):
        stem = HIT_UAV_STEMS[k % 3]
        lines.append({"id": f"c{k}", "image": os.path.join(HIT_UAV, stem + ".jpg"),
                      "box": list(voc_boxes(stem)[0][1]), "captions": [caption]})
    path = tmp_path / "captions.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    ds = load_dataset(EvalTask.CAPTIONING, str(path))
    replies = iter([captions[0], captions[1]] + wrong)
    engine = ScriptedEngine(lambda r: (next(replies), []))
    records, corpus = evaluate(engine, EvalTask.CAPTIONING, ds)
    request = engine.requests[0]
    assert request.task is Task.REGION_CAPTIONING and request.prompts[0].kind is PromptKind.BOX
    assert request.prompts[0].vertices == ((186.0, 108.0), (220.0, 143.0))
    maxima = {"BLEU-4": 1.0, "METEOR": 1.0, "ROUGE-L": 1.0, "CIDEr": 10.0}
    for record in records[:2]:
        assert record["scores"] == pytest.approx(maxima, abs=1e-6)
    for record in records[2:]:
        assert all(record["scores"][m] < 0.5 * maxima[m] for m in maxima)
    assert all(0 < corpus[m] < maxima[m] for m in maxima)


# -- command line ---------------------------------------------------------------------------------
def _rel1000(box, width, height):
    return [box[0] / width * 1000, box[1] / height * 1000, box[2] / width * 1000, box[3] / height * 1000]


def test_cli_end_to_end_through_remote_engine(dior, tmp_path):
    """The real RemoteEngine (qwen3_vl, 0-1000 coordinates) against a server that answers each description's
    ground-truth box; JSON and Markdown written, table printed."""
    ds = load_dataset(EvalTask.GROUNDING, dior)
    boxes = {e.phrase: _rel1000(e.boxes[0], 640, 512) for e in ds.examples}

    def behaviour(handler, body):
        text = " ".join(p.get("text", "") for m in body["messages"] for p in m["content"])
        found = [phrase for phrase in boxes if f'categories: "{phrase}"' in text]
        answer = json.dumps([{"bbox_2d": boxes[found[0]], "label": "target"}])
        stream(sse_events([answer[:10], answer[10:]]))(handler, body)

    out_json, out_md = tmp_path / "report.json", tmp_path / "report.md"
    with serve(behaviour) as srv:
        r = subprocess.run([sys.executable, "-m", "model_backend.eval", "--task", "grounding", "--data", dior,
                            "--backend", "openai", "--endpoint", url(srv), "--model", "served-model",
                            "--out-json", str(out_json), "--out-md", str(out_md)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(srv.received) == 4
    assert "| grounding | served-model | openai | 4 | 0 | 1.000 | 1.000 |" in r.stdout
    assert out_md.read_text() == r.stdout
    report = json.loads(out_json.read_text())
    assert report["metrics"]["Acc@0.5"] == 1.0 and report["metrics"]["mIoU"] == pytest.approx(1.0, abs=1e-6)
    assert report["model"]["backend"] == "openai" and report["model"]["family"] == "qwen3_vl"
    record = report["records"][0]
    assert record["boxes"][0] == pytest.approx(record["truth"], abs=1e-6) and record["hit"] is True
    assert {"answer", "phrase", "iou", "finish_reason", "seconds"} <= set(record)


@pytest.mark.parametrize("case", ["missing folder", "malformed xml", "no description", "unknown task",
                                  "split for scene", "bad limit"])
def test_bad_input_exits_2_with_one_line(case, tmp_path, capsys):
    data = tmp_path / "data"
    (data / "Annotations").mkdir(parents=True)
    args = ["--task", "grounding", "--data", str(data)]
    if case == "missing folder":
        args[3] = str(tmp_path / "absent")
    elif case == "malformed xml":
        (data / "Annotations" / "00001.xml").write_text("<annotation><object><name>car</name>")
    elif case == "no description":
        write_voc(data / "Annotations" / "00001.xml", "00001.jpg", [("car", (1, 2, 3, 4), None)])
    elif case == "unknown task":
        args[1] = "segmentation"
    elif case == "split for scene":
        (tmp_path / "s.csv").write_text("image,label\nx.jpg,road\n")
        args = ["--task", "scene", "--data", str(tmp_path / "s.csv"), "--split", str(tmp_path / "s.csv")]
    else:
        args += ["--limit", "0"]
    if case == "unknown task":
        with pytest.raises(SystemExit) as exc:
            main(args)
        code = exc.value.code
    else:
        code = main(args + ["--backend", "openai", "--endpoint", "http://127.0.0.1:9/v1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
