"""Converters from public annotation formats to the EarthGPT-X training JSONL (see README.md here).

    python -m model_backend.models.earthgptx.convert dior-rsvg XML... --images DIR --out train.jsonl [--modality optical]
    python -m model_backend.models.earthgptx.convert voc XML... --images DIR --out train.jsonl --modality infrared

- ``dior-rsvg``: DIOR-RSVG XML (Pascal VOC plus a ``<description>`` per object). Each object gives a
  grounding record (the description -> ``<p>description</p>[x1,y1,x2,y2]``) and a region-captioning
  record (a box prompt -> the description).
- ``voc``: VOC-style boxes with class names (e.g. HIT-UAV). Each image gives one grounding record per
  class (``<p>class</p>[box;box;...]``) and up to ``--max-regions`` referring-classification records
  (a box prompt -> the class name).

User texts are written by the runtime's own prompt builder (``model_backend.models.prompting.user_text``) so
training and inference read the same words; boxes are in the 0-1 square convention, two decimals.
Image paths are written relative to the output file's folder when possible.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional

import numpy as np

from ...core.encoding import Convention, CoordinateFrame
from ...core.families import family
from ...core.interface import AskRequest, Task, prompts_to_dicts
from ...core.prompts import VisualPrompt
from ..prompting import user_text

_DUMMY = np.zeros((1, 1, 3), np.uint8)
FAMILY = family("earthgptx")


def read_voc(path: str) -> Dict:
    """{"filename", "width", "height", "objects": [{"name", "box": (x1, y1, x2, y2), "description"}]}."""
    root = ET.parse(path).getroot()
    size = root.find("size")
    objects = []
    for obj in root.findall("object"):
        bb = obj.find("bndbox")
        box = tuple(float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        objects.append({"name": (obj.findtext("name") or "").strip(), "box": box,
                        "description": (obj.findtext("description") or "").strip()})
    return {"filename": root.findtext("filename").strip(), "width": int(float(size.findtext("width"))),
            "height": int(float(size.findtext("height"))), "objects": objects}


def _text(task: Task, instruction: str, prompts, modality: str, frame: CoordinateFrame) -> str:
    request = AskRequest(image=_DUMMY, instruction=instruction, prompts=tuple(prompts), task=task, modality=modality)
    return user_text(request, FAMILY, frame)


def _boxes(frame: CoordinateFrame, boxes: Iterable) -> str:
    parts = []
    for x1, y1, x2, y2 in boxes:
        mx, my = frame.to_model([x1, x2], [y1, y2])
        parts.append(",".join(frame.format_number(v) for v in (mx[0], my[0], mx[1], my[1])))
    return "[" + ";".join(parts) + "]"


def _record(image: str, modality: str, task: Task, prompts, question: str, answer: str) -> Dict:
    return {"image": image, "modality": modality, "task": task.value, "prompts": prompts_to_dicts(prompts),
            "conversations": [{"from": "human", "value": "<image>\n" + question}, {"from": "gpt", "value": answer}]}


def _box_prompt(box, index: int = 1) -> VisualPrompt:
    return VisualPrompt.box(*box, index=index)


def dior_rsvg_records(ann: Dict, image: str, modality: str = "optical") -> List[Dict]:
    frame = CoordinateFrame(Convention.SQUARE_UNIT, ann["width"], ann["height"])
    out = []
    for obj in ann["objects"]:
        desc = obj["description"] or obj["name"]
        out.append(_record(image, modality, Task.GROUNDING, (), _text(Task.GROUNDING, desc, (), modality, frame),
                           f"<p>{desc}</p>{_boxes(frame, [obj['box']])}"))
        prompt = _box_prompt(obj["box"])
        out.append(_record(image, modality, Task.REGION_CAPTIONING, (prompt,),
                           _text(Task.REGION_CAPTIONING, "", (prompt,), modality, frame), desc))
    return out


def voc_records(ann: Dict, image: str, modality: str, max_regions: int = 4) -> List[Dict]:
    frame = CoordinateFrame(Convention.SQUARE_UNIT, ann["width"], ann["height"])
    by_class: "OrderedDict[str, list]" = OrderedDict()
    for obj in ann["objects"]:
        by_class.setdefault(obj["name"].lower(), []).append(obj["box"])
    out = []
    for name, boxes in by_class.items():
        out.append(_record(image, modality, Task.GROUNDING, (), _text(Task.GROUNDING, name, (), modality, frame),
                           f"<p>{name}</p>{_boxes(frame, boxes)}"))
    for obj in ann["objects"][:max_regions]:
        prompt = _box_prompt(obj["box"])
        out.append(_record(image, modality, Task.REFERRING_CLASSIFICATION, (prompt,),
                           _text(Task.REFERRING_CLASSIFICATION, "", (prompt,), modality, frame), obj["name"].lower()))
    return out


def convert(fmt: str, xml_paths: List[str], images: Optional[str], out: str, modality: str,
            max_regions: int = 4) -> int:
    """Append the records of ``xml_paths`` to ``out`` (JSONL); returns the number written."""
    out_dir = os.path.dirname(os.path.abspath(out))
    n = 0
    with open(out, "a", encoding="utf-8") as f:
        for path in xml_paths:
            ann = read_voc(path)
            image = os.path.join(images or os.path.dirname(os.path.abspath(path)), ann["filename"])
            if not os.path.exists(image):
                raise FileNotFoundError(f"{path}: image {image} not found (give --images)")
            rel = os.path.relpath(os.path.abspath(image), out_dir)
            if fmt == "dior-rsvg":
                records = dior_rsvg_records(ann, rel, modality)
            else:
                records = voc_records(ann, rel, modality, max_regions)
            for r in records:
                f.write(json.dumps(r) + "\n")
                n += 1
    return n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_backend.models.earthgptx.convert",
                                     description="Convert annotations to EarthGPT-X training JSONL.")
    parser.add_argument("format", choices=("dior-rsvg", "voc"))
    parser.add_argument("xml", nargs="+", help="annotation XML files")
    parser.add_argument("--images", help="folder of the images (default: the XML's folder)")
    parser.add_argument("--out", required=True, help="JSONL file to append to")
    parser.add_argument("--modality", choices=("optical", "sar", "infrared"), default="optical")
    parser.add_argument("--max-regions", type=int, default=4, help="region records per image (voc)")
    args = parser.parse_args(argv)
    n = convert(args.format, args.xml, args.images, args.out, args.modality, args.max_regions)
    print(f"wrote {n} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
