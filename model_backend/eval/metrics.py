"""Scores: box IoU and matching, label matching, and captioning metrics through ``pycocoevalcap``.

Boxes are ``(x1, y1, x2, y2)`` corners in image pixels. Captioning metrics are the COCO caption
evaluation's own implementations (PTB tokenizer, BLEU, METEOR, ROUGE-L, CIDEr-D); the tokenizer and
METEOR run bundled Java programs, so Java (8 or newer) must be on PATH; nothing is downloaded.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Dict, List, Sequence, Tuple

from ..core.errors import EarthGPTXError
from .datasets import Box

IOU_THRESHOLD = 0.5
CAPTION_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


class MetricError(EarthGPTXError):
    """A metric implementation could not run (package or Java missing)."""


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0 when both are empty."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(predicted: Sequence[Box], truth: Sequence[Box],
                threshold: float = IOU_THRESHOLD) -> List[Tuple[int, int, float]]:
    """Greedy one-to-one matching: (predicted index, truth index, IoU) pairs with IoU >= ``threshold``,
    taken in decreasing IoU (ties: earlier prediction, then earlier truth)."""
    pairs = sorted(((iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth)),
                   key=lambda x: (-x[0], x[1], x[2]))
    used_p, used_t, matches = set(), set(), []
    for value, i, j in pairs:
        if value < threshold:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            matches.append((i, j, value))
    return matches


def referring_summary(ious: Sequence[float]) -> Dict[str, float]:
    """``Acc@0.5`` (share of examples with IoU >= 0.5) and ``mIoU`` over per-example IoUs (0 for no box)."""
    n = len(ious)
    return {"Acc@0.5": sum(v >= IOU_THRESHOLD for v in ious) / n if n else 0.0,
            "mIoU": sum(ious) / n if n else 0.0}


def detection_summary(true_positives: int, predicted: int, truth: int) -> Dict[str, float]:
    """Micro precision, recall and F1 from summed counts (0 where a denominator is 0)."""
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / truth if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "F1": f1}


def normalise_label(text: str) -> str:
    """Lower case, accents and punctuation removed, ``_``/``-`` as spaces, whitespace collapsed:
    ``"Parking_lot."`` -> ``"parking lot"``."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[_\-]+", " ", text)
    text = re.sub(r"[^\w\s]", "", text)
    return " ".join(text.split())


def caption_scores(references: Sequence[Sequence[str]], predictions: Sequence[str]
                   ) -> Tuple[Dict[str, float], List[Dict[str, float]]]:
    """(corpus scores, per-example scores) of ``predictions`` against their ``references``.

    BLEU-4 is corpus BLEU (closest reference length); METEOR, ROUGE-L and CIDEr-D are means over
    examples. Maxima: 1 for BLEU-4, METEOR and ROUGE-L, 10 for CIDEr-D (a prediction equal to all its
    references, with n-grams that are not in every example's references).
    """
    if len(references) != len(predictions) or not predictions:
        raise MetricError("captioning metrics need one prediction per example and at least one example")
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as exc:
        raise MetricError(f"captioning metrics need pycocoevalcap (pip install pycocoevalcap): {exc}") from None
    keys = [str(k) for k in range(len(predictions))]
    references = [[" ".join(c.split()) for c in refs] for refs in references]   # one line each: the tokenizer
    predictions = [" ".join(p.split()) for p in predictions]                     # and METEOR read lines
    try:
        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({k: [{"caption": c} for c in refs] for k, refs in zip(keys, references)})
        res = tokenizer.tokenize({k: [{"caption": p}] for k, p in zip(keys, predictions)})
        bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
        meteor, meteor_each = Meteor().compute_score(gts, res)
        rouge, rouge_each = Rouge().compute_score(gts, res)
        cider, cider_each = Cider().compute_score(gts, res)
    except (OSError, ValueError) as exc:  # no java, a read-only pycocoevalcap folder, a Java scorer that died
        raise MetricError(f"captioning metrics failed (pycocoevalcap needs Java on PATH and writes a temporary "
                          f"file in its tokenizer folder): {exc}") from None
    corpus = {"BLEU-4": float(bleu[3]), "METEOR": float(meteor), "ROUGE-L": float(rouge), "CIDEr": float(cider)}
    each = [{"BLEU-4": float(b), "METEOR": float(m), "ROUGE-L": float(r), "CIDEr": float(c)}
            for b, m, r, c in zip(bleu_each[3], meteor_each, rouge_each, cider_each)]
    return corpus, each

