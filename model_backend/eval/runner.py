"""Ask an engine every example of a data set and score its answers.

The chip is the whole image (uint8 RGB; grey and palette images are expanded to three channels), so
the boxes an engine returns in chip pixels are image pixels and compare directly with the ground truth.
"""

from __future__ import annotations

import enum
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..core.interface import Answer, AskRequest, Task
from ..core.normalise import Modality
from ..core.prompts import VisualPrompt
from ..models.engine import Engine
from .datasets import (Box, Dataset, DatasetError, Example, GroundingExample, SceneExample, load_captions,
                       load_dior_rsvg, load_scene, load_voc_classes)
from .metrics import (IOU_THRESHOLD, caption_scores, detection_summary, iou, match_boxes, normalise_label,
                      referring_summary)

CAPTION_INSTRUCTION = "Answer in one sentence."
ProgressCallback = Callable[[str], None]


class EvalTask(str, enum.Enum):
    """What is scored: referring expressions (one box), all objects of a class, scene class, region caption."""

    GROUNDING = "grounding"
    CLASS_GROUNDING = "class-grounding"
    SCENE = "scene"
    CAPTIONING = "captioning"


def load_dataset(task: EvalTask, data: str, split: Optional[str] = None) -> Dataset:
    """The examples of ``data`` for ``task`` (formats in ``model_backend.eval.datasets``)."""
    if split is not None and task in (EvalTask.SCENE, EvalTask.CAPTIONING):
        raise DatasetError(f"--split applies to grounding and class-grounding, not {task.value}")
    if task is EvalTask.GROUNDING:
        return load_dior_rsvg(data, split)
    if task is EvalTask.CLASS_GROUNDING:
        return load_voc_classes(data, split)
    if task is EvalTask.SCENE:
        return load_scene(data)
    return load_captions(data)


def read_chip(path: str) -> np.ndarray:
    """The image at ``path`` as an (H, W, 3) uint8 RGB array."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from None


def predicted_boxes(answer: Answer) -> List[Box]:
    """The boxes of an answer in order, image pixels; a polygon counts by its bounds, points not at all."""
    return [r.shape.bounds() for r in answer.regions if r.shape.is_region]


def _request(example: Example, image: np.ndarray, labels: Sequence[str],
             modality: Modality, max_new_tokens: int) -> AskRequest:
    if isinstance(example, GroundingExample):
        return AskRequest(image, example.phrase, task=Task.GROUNDING, modality=modality,
                          max_new_tokens=max_new_tokens)
    if isinstance(example, SceneExample):
        return AskRequest(image, f"Choose one of: {', '.join(labels)}.", task=Task.SCENE_CLASSIFICATION,
                          modality=modality, max_new_tokens=max_new_tokens)
    h, w = image.shape[:2]
    x1, y1, x2, y2 = example.box
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        raise DatasetError(f"example {example.id}: box {example.box} is not inside the {w}x{h} image {example.image}")
    return AskRequest(image, CAPTION_INSTRUCTION, prompts=(VisualPrompt.box(x1, y1, x2, y2, index=1),),
                      task=Task.REGION_CAPTIONING, modality=modality, max_new_tokens=max_new_tokens)


def _score(task: EvalTask, example: Example, answer: Answer) -> Dict[str, object]:
    """The per-example record: truth, prediction and its score (captions are scored together later)."""
    record: Dict[str, object] = {"id": example.id, "image": example.image}
    boxes = predicted_boxes(answer)
    if task is EvalTask.GROUNDING:
        truth = example.boxes[0]
        value = iou(boxes[0], truth) if boxes else 0.0
        record.update(phrase=example.phrase, truth=list(truth), boxes=[list(b) for b in boxes], iou=value,
                      hit=value >= IOU_THRESHOLD)
    elif task is EvalTask.CLASS_GROUNDING:
        matches = match_boxes(boxes, example.boxes)
        record.update(phrase=example.phrase, truth=[list(b) for b in example.boxes], boxes=[list(b) for b in boxes],
                      matches=[list(m) for m in matches], tp=len(matches), fp=len(boxes) - len(matches),
                      fn=len(example.boxes) - len(matches))
    elif task is EvalTask.SCENE:
        prediction = normalise_label(answer.text)
        record.update(truth=example.label, prediction=prediction, correct=prediction == normalise_label(example.label))
    else:
        record.update(box=list(example.box), references=list(example.references))
    record.update(answer=answer.text, finish_reason=answer.meta.finish_reason,
                  generated_tokens=answer.meta.generated_tokens)
    return record


def summarise(task: EvalTask, records: List[Dict[str, object]]) -> Dict[str, float]:
    """Aggregate metrics of scored records (captioning: adds each record's ``scores``)."""
    if task is EvalTask.GROUNDING:
        return referring_summary([float(r["iou"]) for r in records])
    if task is EvalTask.CLASS_GROUNDING:
        tp, fp, fn = (sum(int(r[k]) for r in records) for k in ("tp", "fp", "fn"))
        return {**detection_summary(tp, tp + fp, tp + fn), "TP": tp, "FP": fp, "FN": fn}
    if task is EvalTask.SCENE:
        return {"accuracy": sum(bool(r["correct"]) for r in records) / len(records)}
    corpus, each = caption_scores([r["references"] for r in records], [str(r["answer"]).strip() for r in records])
    for record, scores in zip(records, each):
        record["scores"] = scores
    return corpus


def evaluate(engine: Engine, task: EvalTask, dataset: Dataset, modality: Modality = Modality.OPTICAL,
             max_new_tokens: int = 512, on_progress: ProgressCallback = lambda m: None
             ) -> Tuple[List[Dict[str, object]], Dict[str, float]]:
    """(per-example records, aggregate metrics) of ``engine`` on every example of ``dataset``."""
    if not dataset.examples:
        raise DatasetError(f"no example to evaluate ({dataset.missing} listed but missing)")
    records = []
    n = len(dataset.examples)
    for k, example in enumerate(dataset.examples, start=1):
        request = _request(example, read_chip(example.image), dataset.labels, modality, max_new_tokens)
        started = time.perf_counter()
        answer = engine.ask(request)
        record = _score(task, example, answer)
        record["seconds"] = round(time.perf_counter() - started, 3)
        records.append(record)
        on_progress(f"[{k}/{n}] {example.id}: {_brief(task, record)}")
    return records, summarise(task, records)


def _brief(task: EvalTask, record: Dict[str, object]) -> str:
    if task is EvalTask.GROUNDING:
        return f"IoU {record['iou']:.3f}"
    if task is EvalTask.CLASS_GROUNDING:
        return f"TP {record['tp']} FP {record['fp']} FN {record['fn']}"
    if task is EvalTask.SCENE:
        return "correct" if record["correct"] else f"wrong ({record['prediction']!r})"
    return f"{len(str(record['answer']))} characters"
