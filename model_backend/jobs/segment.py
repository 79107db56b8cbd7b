"""Outlines, headless: prompts (or a phrase, or a grounding answer's detections) on a raster to masks
from a segmenter, vectorised on the chip's pixel grid and mapped through the chip's affine to the raster
CRS, written as the ``masks`` layer (the ``segment`` command's Python API, and ``ask --masks``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from pyproj import CRS
from shapely.geometry import MultiPolygon

from ..core.chip import Chip
from ..core.chip_plan import ChipSettings
from ..core.errors import InvalidArgumentError
from ..core.interface import Answer
from ..core.mask_prompts import from_detection, from_prompt
from ..core.normalise import Modality
from ..core.prompts import VisualPrompt
from ..core.schema import new_id
from ..geo.crs import transformer
from ..geo.geometry import prompt_geometry
from ..geo.masks import area_m2, mask_polygons, polygons_to_crs
from ..geo.outputs import Feature, QuestionRecord, WriteReport, check_output, reproject, write_record
from ..models.segmentation import Mask, SegmentEngine
from .ask import Question, prepare_question


@dataclass
class SegmentResult:
    """What a segmentation wrote: ``record`` (prompts and masks, raster CRS or the output's), the chip,
    the masks as the model gave them, and how many came out empty after speck removal (``empty``)."""

    record: QuestionRecord
    chip: Chip
    masks: List[Mask]
    empty: int
    report: Optional[WriteReport]


def segment_raster(raster: str, prompts: Sequence[VisualPrompt], prompt_crs: Optional[CRS], engine: SegmentEngine,
                   phrase: Optional[str] = None, settings: ChipSettings = ChipSettings(),
                   modality: Optional[Modality] = None, bands: Optional[Sequence[int]] = None,
                   simplify_px: float = 0.0, min_area_px: float = 0.0, out: Optional[str] = None,
                   out_crs: Optional[CRS] = None, on_progress: Callable[[str], None] = lambda m: None,
                   question: Optional[Question] = None) -> SegmentResult:
    """Outline what ``prompts`` (vertices in ``prompt_crs``, default the raster's) point at on
    ``raster``, and with ``phrase`` (SAM 3) every instance of it on the chip (the scene's without
    prompts). ``simplify_px``: tolerance in chip pixels (0: exact, vertices on the pixel grid);
    ``min_area_px``: parts smaller than this many chip pixels are dropped. ``question``: what
    ``prepare_question`` returned for these arguments, when prepared before the model loaded."""
    check_segment_request(prompts, phrase, engine.family)
    if out:
        check_output(out)
    question = question or prepare_question(raster, prompts, prompt_crs, settings, modality, bands, out_crs,
                                            on_progress)
    chip = question.chip
    asked = [from_prompt(p, phrase or "") for p in question.chip_prompts]
    masks = engine.segment(chip.image, asked, phrase)
    question_id = new_id()
    features, empty = outline_features(chip, masks, engine.plan.model_id, simplify_px, min_area_px,
                                       question_id=question_id)
    record = QuestionRecord(crs=question.out_crs, masks=to_crs(features, CRS.from_wkt(chip.crs), question.out_crs))
    to_out = transformer(question.prompt_crs, question.out_crs)
    record.prompts = [Feature(prompt_geometry(p, to_out), {"question_id": question_id, "prompt_index": p.index,
                                                          "kind": p.kind.value}) for p in prompts]
    if empty:
        on_progress(f"{empty} mask(s) were empty after dropping parts under {min_area_px:g} pixel(s).")
    report = write_record(out, record) if out else None
    return SegmentResult(record, chip, masks, empty, report)


def check_segment_request(prompts: Sequence[VisualPrompt], phrase: Optional[str], family: Optional[str]) -> None:
    """Refuse, before any reading, a request with nothing to outline or one the segmenter ``family``
    (``sam2``, ``sam``, ``sam3``; None: not known yet) cannot answer: SAM 3 outlines prompts and phrases,
    the others prompts only."""
    if phrase is not None and not phrase.strip():
        raise InvalidArgumentError("--text is empty: give the phrase to outline, e.g. \"ships\"")
    if not prompts and not phrase:
        raise InvalidArgumentError("nothing to outline: give --point, --box or --polygon prompts, or --text with "
                                   "a SAM 3 model")
    if family in ("sam2", "sam") and phrase:
        raise InvalidArgumentError(f"a {family.upper()} model outlines prompts only; --text needs a SAM 3 model")


def detection_masks(chip: Chip, answer: Answer, engine: SegmentEngine, answer_id: str, simplify_px: float = 0.0,
                    min_area_px: float = 0.0) -> List[Feature]:
    """The outlines of a grounding answer's regions on ``chip`` (one segmenter pass over the chip), as
    ``masks`` features in the chip's CRS pointing at ``answer_id`` and each region's ``rank``."""
    asked = [from_detection(r.shape, rank, r.label) for rank, r in enumerate(answer.regions, start=1)]
    if not asked:
        return []
    masks = engine.segment(chip.image, asked)
    features, _ = outline_features(chip, masks, engine.plan.model_id, simplify_px, min_area_px, answer_id=answer_id)
    return features


def outline_features(chip: Chip, masks: Sequence[Mask], model: str, simplify_px: float, min_area_px: float,
                     question_id: Optional[str] = None, answer_id: Optional[str] = None) -> Tuple[List[Feature], int]:
    """``masks`` features (MultiPolygons in the chip's CRS) and the count of masks left empty: each mask
    vectorised in chip pixels, mapped vertex by vertex through the chip's affine; ``area_m2`` geodesic."""
    crs = CRS.from_wkt(chip.crs)
    features, empty = [], 0
    for m in masks:
        polygons = mask_polygons(m.mask, min_area_px=min_area_px, simplify_px=simplify_px)
        if not polygons:
            empty += 1
            continue
        geometry = MultiPolygon(polygons_to_crs(polygons, chip.affine.apply))
        p = m.prompt
        from_detection_ = p.kind == "detection"
        features.append(Feature(geometry, {
            "answer_id": answer_id, "question_id": question_id, "label": p.label or p.kind,
            "score": float(m.score), "area_m2": area_m2(geometry, crs),
            "prompt_index": None if from_detection_ or p.kind == "phrase" else p.index,
            "rank": p.index if from_detection_ or p.kind == "phrase" else None,
            "prompt_kind": p.kind, "model": model}))
    return features, empty


def to_crs(features: Sequence[Feature], crs: CRS, target: CRS) -> List[Feature]:
    """``features`` (geometries in ``crs``) with their geometries in ``target``."""
    return [Feature(reproject(crs, target, f.geometry), f.properties) for f in features]
