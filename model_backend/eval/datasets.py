"""Evaluation data sets: readers for the four formats the harness scores (stdlib only).

All boxes are ``(x1, y1, x2, y2)`` corner coordinates in IMAGE PIXELS (x = column, y = row, origin at the
top-left corner). The whole image is the chip, so image pixels are chip pixels. VOC ``<bndbox>`` values are
taken as they are written, as the official DIOR-RSVG loader does.

Formats:

- **DIOR-RSVG** (``--task grounding``): a folder with ``Annotations/NNNNN.xml`` and ``JPEGImages/NNNNN.jpg``;
  each ``<object>`` has ``<name>``, ``<bndbox>`` and ``<description>`` (the referring expression). The
  optional split file (``train.txt``, ``val.txt``, ``test.txt``) lists 0-based OBJECT indices, one per
  line, counted over the objects of the annotation files in file-name order (as the official loader
  counts them). Only the run of consecutively numbered files from ``00001`` can be counted; indices past
  it, and objects whose image is absent, are reported as missing.
- **VOC detection** (``--task class-grounding``, e.g. HIT-UAV): ``*.xml`` beside their images, or
  ``Annotations/*.xml`` with ``JPEGImages/``; objects with ``<name>`` and ``<bndbox>``. Each (image, class)
  pair is one example, asked as "Find all <class in plural>". ``DontCare`` objects are left out. The
  optional split file lists image ids (file stems), one per line.
- **Scene classification** (``--task scene``): a ``.csv`` file with a header row holding ``image`` and
  ``label`` columns, or a ``.jsonl`` file of ``{"image": ..., "label": ...}`` lines.
- **Region captioning** (``--task captioning``): a ``.jsonl`` file of
  ``{"image": ..., "box": [x1, y1, x2, y2], "captions": ["reference", ...]}`` lines (``"id"`` optional).

Image paths in CSV/JSONL files are relative to the file's folder unless absolute.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..core.errors import EarthGPTXError

Box = Tuple[float, float, float, float]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
IGNORED_CLASSES = {"dontcare"}
_IRREGULAR_PLURALS = {"person": "people"}


class DatasetError(EarthGPTXError):
    """The data set is missing, malformed or empty."""


@dataclass(frozen=True)
class GroundingExample:
    """Find ``phrase`` in ``image``; ``boxes``: the ground truth in image pixels (one for referring)."""

    id: str
    image: str
    phrase: str
    boxes: Tuple[Box, ...]


@dataclass(frozen=True)
class SceneExample:
    """Classify ``image``; ``label``: the true scene class."""

    id: str
    image: str
    label: str


@dataclass(frozen=True)
class CaptionExample:
    """Describe ``box`` (image pixels) of ``image``; ``references``: the reference captions."""

    id: str
    image: str
    box: Box
    references: Tuple[str, ...]


Example = Union[GroundingExample, SceneExample, CaptionExample]


@dataclass
class Dataset:
    """Examples in order; ``missing``: listed examples skipped because their files are absent;
    ``labels``: the scene classes (scene data only), sorted."""

    examples: List[Example]
    missing: int = 0
    labels: Tuple[str, ...] = field(default_factory=tuple)


def plural_phrase(name: str) -> str:
    """A class name as the plural phrase asked for: ``Car`` -> ``cars``, ``OtherVehicle`` -> ``other vehicles``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ").lower().split()
    if not words:
        return name
    last = words[-1]
    words[-1] = _IRREGULAR_PLURALS.get(last, last if last.endswith("s") else last + "s")
    return " ".join(words)


# -- VOC XML -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _VocObject:
    name: str
    box: Box
    description: Optional[str]


def _parse_voc(path: str) -> Tuple[Optional[str], List[_VocObject]]:
    """(``<filename>`` or None, objects) of one VOC annotation file."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DatasetError(f"malformed annotation {path}: {exc}") from None
    objects = []
    for k, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        bnd = obj.find("bndbox")
        try:
            box = tuple(float(bnd.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise DatasetError(f"malformed annotation {path}: object {k + 1} has no numeric "
                               f"<bndbox> xmin/ymin/xmax/ymax") from None
        if not all(math.isfinite(v) for v in box) or box[2] < box[0] or box[3] < box[1]:
            raise DatasetError(f"malformed annotation {path}: object {k + 1} has box {box}")
        description = obj.findtext("description")
        objects.append(_VocObject(name, box, description.strip() if description is not None else None))
    filename = root.findtext("filename")
    return (filename.strip() if filename else None), objects


def _find_image(folders: Sequence[str], filename: Optional[str], stem: str) -> Optional[str]:
    """The image named by ``filename`` (or ``stem`` plus a known suffix) in the first folder holding it."""
    names = ([filename] if filename else []) + [stem + s for s in IMAGE_SUFFIXES]
    for folder in folders:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def _require_folder(path: str) -> None:
    if not os.path.isdir(path):
        raise DatasetError(f"data folder {path} does not exist")


def _read_split(path: str) -> List[str]:
    """Non-empty lines of a split file."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read split file {path}: {exc}") from None


def load_dior_rsvg(folder: str, split: Optional[str] = None) -> Dataset:
    """Referring examples (one box each) of a DIOR-RSVG folder, in split order when ``split`` is given."""
    _require_folder(folder)
    ann_dir, img_dir = os.path.join(folder, "Annotations"), os.path.join(folder, "JPEGImages")
    if not os.path.isdir(ann_dir):
        raise DatasetError(f"{folder} has no Annotations/ folder (DIOR-RSVG layout: Annotations/, JPEGImages/)")
    stems = sorted(n[:-4] for n in os.listdir(ann_dir) if n.lower().endswith(".xml"))
    if not stems:
        raise DatasetError(f"{ann_dir} holds no .xml annotation")
    indexed: List[Optional[GroundingExample]] = []   # by official object index; None: image absent
    counted = True   # still inside the run of consecutive numbers from 00001
    extra: List[Optional[GroundingExample]] = []      # objects that cannot be given an official index
    for position, stem in enumerate(stems, start=1):
        counted = counted and stem.isdigit() and int(stem) == position
        path = os.path.join(ann_dir, stem + ".xml")
        filename, objects = _parse_voc(path)
        image = _find_image([img_dir], filename, stem)
        for k, obj in enumerate(objects):
            if not obj.description:
                raise DatasetError(f"{path}: object {k + 1} has no <description>; for class names only "
                                   f"use --task class-grounding")
            example = GroundingExample(f"{stem}#{k}", image, obj.description, (obj.box,)) if image else None
            (indexed if counted else extra).append(example)
    if split is None:
        everything = indexed + extra
        found = [e for e in everything if e is not None]
        return Dataset(found, missing=len(everything) - len(found))
    examples, missing = [], 0
    for n, line in enumerate(_read_split(split), start=1):
        if not line.isdigit():
            raise DatasetError(f"split file {split}, line {n}: expected an object index, got {line!r}")
        index = int(line)
        example = indexed[index] if index < len(indexed) else None
        if example is None:
            missing += 1
        else:
            examples.append(example)
    return Dataset(examples, missing=missing)


def load_voc_classes(folder: str, split: Optional[str] = None) -> Dataset:
    """One multi-object example per (image, class) of a VOC detection folder (e.g. HIT-UAV)."""
    _require_folder(folder)
    ann_dir = os.path.join(folder, "Annotations")
    if not os.path.isdir(ann_dir):
        ann_dir = folder
    image_dirs = [os.path.join(folder, "JPEGImages"), ann_dir]
    available = sorted(n[:-4] for n in os.listdir(ann_dir) if n.lower().endswith(".xml"))
    if not available:
        raise DatasetError(f"{ann_dir} holds no .xml annotation")
    stems = _read_split(split) if split else available
    present = set(available)
    examples: List[Example] = []
    missing = 0
    for stem in stems:
        if stem not in present:
            missing += 1
            continue
        filename, objects = _parse_voc(os.path.join(ann_dir, stem + ".xml"))
        image = _find_image(image_dirs, filename, stem)
        if image is None:
            missing += 1
            continue
        by_class: Dict[str, List[Box]] = {}
        for obj in objects:
            if obj.name and obj.name.lower() not in IGNORED_CLASSES:
                by_class.setdefault(obj.name, []).append(obj.box)
        for name in sorted(by_class):
            examples.append(GroundingExample(f"{stem}:{name}", image, plural_phrase(name), tuple(by_class[name])))
    return Dataset(examples, missing=missing)


# -- CSV / JSONL -------------------------------------------------------------------------------
def _rows(path: str) -> List[Tuple[int, dict]]:
    """(line number, record) of a ``.csv`` (header row) or ``.jsonl`` file."""
    if not os.path.isfile(path):
        raise DatasetError(f"data file {path} does not exist")
    lower = path.lower()
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if lower.endswith(".csv"):
                reader = csv.DictReader(f)
                return [(reader.line_num, row) for row in reader]
            if lower.endswith(".jsonl"):
                out = []
                for n, line in enumerate(f, start=1):
                    if line.strip():
                        record = json.loads(line)
                        if not isinstance(record, dict):
                            raise DatasetError(f"{path}, line {n}: expected a JSON object")
                        out.append((n, record))
                return out
    except json.JSONDecodeError as exc:
        raise DatasetError(f"malformed JSON in {path}: {exc}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    raise DatasetError(f"data file {path} must end in .csv or .jsonl")


def _field(path: str, line: int, record: dict, key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{path}, line {line}: {key!r} must be a non-empty string")
    return value.strip()


def _resolve(path: str, image: str) -> str:
    return image if os.path.isabs(image) else os.path.join(os.path.dirname(os.path.abspath(path)), image)


def load_scene(path: str) -> Dataset:
    """Scene examples of a CSV or JSONL file; ``labels``: every class named in the file."""
    examples: List[Example] = []
    labels, missing = set(), 0
    for line, record in _rows(path):
        image = _resolve(path, _field(path, line, record, "image"))
        label = _field(path, line, record, "label")
        labels.add(label)
        if os.path.isfile(image):
            examples.append(SceneExample(str(record.get("id") or f"line{line}"), image, label))
        else:
            missing += 1
    return Dataset(examples, missing=missing, labels=tuple(sorted(labels)))


def load_captions(path: str) -> Dataset:
    """Region captioning examples of a JSONL file."""
    if not path.lower().endswith(".jsonl"):
        raise DatasetError(f"captioning data must be a .jsonl file, got {path}")
    examples: List[Example] = []
    missing = 0
    for line, record in _rows(path):
        image = _resolve(path, _field(path, line, record, "image"))
        box = record.get("box")
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
                or not (box[2] > box[0] and box[3] > box[1])):
            raise DatasetError(f"{path}, line {line}: 'box' must be [x1, y1, x2, y2] pixels with x2 > x1, y2 > y1")
        captions = record.get("captions")
        if (not isinstance(captions, list) or not captions
                or not all(isinstance(c, str) and c.strip() for c in captions)):
            raise DatasetError(f"{path}, line {line}: 'captions' must be a non-empty list of strings")
        if os.path.isfile(image):
            examples.append(CaptionExample(str(record.get("id") or f"line{line}"), image,
                                           tuple(float(v) for v in box), tuple(c.strip() for c in captions)))
        else:
            missing += 1
    return Dataset(examples, missing=missing)
