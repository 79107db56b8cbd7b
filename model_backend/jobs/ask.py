"""Ask a question about a raster, headless: locate the prompts, read the chip, ask an engine, map the
parsed regions back to the map and write them (the ``ask`` command's Python API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from pyproj import CRS

from ..core.chip import Chip
from ..core.chip_plan import ChipSettings
from ..core.interface import Answer, AskRequest, Task
from ..core.normalise import Modality
from ..core.prompts import PromptKind, VisualPrompt
from ..core.schema import new_id, utc_now
from ..geo.crs import crs_label, transformer
from ..geo.geometry import prompt_geometry
from ..geo.locate import chip_shape_to_crs, locate_prompts, read_scene
from ..geo.outputs import Feature, QuestionRecord, WriteReport, check_output, write_record
from ..geo.raster import RasterSource
from ..models.engine import Engine, TextCallback


@dataclass
class AskResult:
    answer: Answer
    chip: Chip
    record: QuestionRecord
    report: Optional[WriteReport]


@dataclass
class Question:
    """A question ready for a model: the chip read, its prompts in chip pixels, and the CRSs."""

    chip: Chip
    chip_prompts: tuple
    prompt_crs: CRS
    out_crs: CRS


def prepare_question(raster: str, prompts: Sequence[VisualPrompt], prompt_crs: Optional[CRS],
                     settings: ChipSettings = ChipSettings(), modality: Optional[Modality] = None,
                     bands: Optional[Sequence[int]] = None, out_crs: Optional[CRS] = None,
                     on_progress: Callable[[str], None] = lambda m: None) -> Question:
    """Locate ``prompts`` (vertices in ``prompt_crs``, default the raster's) on ``raster`` and read
    the chip (the scene's for no prompt): everything that can fail before a model is asked."""
    with RasterSource(raster) as source:
        crs = prompt_crs or source.crs
        if prompts:
            location = locate_prompts(source, prompts, crs, settings, modality, bands)
            chip, chip_prompts = location.chip, tuple(location.chip_prompts)
            if location.clipped:
                on_progress("Part of a prompt lies outside the raster and was clipped.")
        else:
            chip, chip_prompts = read_scene(source, settings.max_pixels, modality=modality, bands=bands), ()
        out_crs = out_crs or source.crs
    on_progress(f"Chip {chip.width}x{chip.height} px at {chip.resolution[0]:.3g} {crs_label(CRS.from_wkt(chip.crs))} "
                f"units per pixel, read scale {chip.plan.overview_factor:.3g}, modality {chip.modality.value} "
                f"({chip.modality_reason}).")
    return Question(chip, chip_prompts, crs, out_crs)


def ask_raster(raster: str, prompts: Sequence[VisualPrompt], prompt_crs: Optional[CRS], instruction: str,
               engine: Engine, task: Task = Task.CHAT, settings: ChipSettings = ChipSettings(),
               modality: Optional[Modality] = None, bands: Optional[Sequence[int]] = None,
               max_new_tokens: int = 512, out: Optional[str] = None, out_crs: Optional[CRS] = None,
               on_text: Optional[TextCallback] = None,
               on_progress: Callable[[str], None] = lambda m: None,
               question: Optional[Question] = None) -> AskResult:
    """Answer ``instruction`` about ``prompts`` (vertices in ``prompt_crs``; none for a scene
    question) on ``raster``; append prompts, answer and detections to ``out`` when given.

    Output geometries are in ``out_crs`` (default: the raster's CRS, or the output's own when
    appending). ``question``: what ``prepare_question`` returned for these arguments, when the caller
    prepared it before loading the engine.
    """
    if out:
        check_output(out)
    if question is None:
        question = prepare_question(raster, prompts, prompt_crs, settings, modality, bands, out_crs, on_progress)
    chip = question.chip
    request = AskRequest(image=chip.image, instruction=instruction, prompts=question.chip_prompts, task=task,
                         modality=chip.modality, max_new_tokens=max_new_tokens)
    answer = engine.ask(request, on_text=on_text)
    record = build_record(raster, chip, prompts, question.prompt_crs, request, answer, question.out_crs)
    report = write_record(out, record) if out else None
    return AskResult(answer, chip, record, report)


def build_record(raster: str, chip: Chip, prompts: Sequence[VisualPrompt], prompt_crs: CRS,
                 request: AskRequest, answer: Answer,
                 out_crs: CRS) -> QuestionRecord:
    """The features of one question, in ``out_crs`` (DESIGN §4 schema)."""
    question_id, answer_id = new_id(), new_id()
    to_out = transformer(prompt_crs, out_crs)
    record = QuestionRecord(crs=out_crs)
    for p in prompts:
        record.prompts.append(Feature(prompt_geometry(p, to_out),
                                      {"question_id": question_id, "prompt_index": p.index, "kind": p.kind.value}))
    if len(prompts) == 1 and prompts[0].kind in (PromptKind.BOX, PromptKind.POLYGON):
        answer_geometry = record.prompts[0].geometry  # the region asked about, as drawn
    else:  # points, scribbles, several prompts or the whole scene: the chip's footprint
        answer_geometry = chip_shape_to_crs(chip, VisualPrompt.box(0, 0, chip.width, chip.height), out_crs)
    meta = answer.meta
    record.answers.append(Feature(answer_geometry, {
        "answer_id": answer_id, "question_id": question_id, "question": request.instruction, "answer": answer.text,
        "task": request.task.value, "modality": request.modality.value, "model": meta.model_id,
        "backend": meta.backend, "quantization": meta.quantization, "raster_source": raster,
        "chip_resolution": float(chip.resolution[0]), "finish_reason": meta.finish_reason, "created": utc_now()}))
    for rank, region in enumerate(answer.regions, start=1):
        record.detections.append(Feature(chip_shape_to_crs(chip, region.shape, out_crs), {
            "answer_id": answer_id, "label": region.label, "rank": rank, "kind": region.shape.kind.value}))
    return record
