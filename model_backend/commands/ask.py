"""The ``ask`` command: ``python -m model_backend ask RASTER (--point X Y | --box ... | --polygon WKT
| --scribble WKT)... --crs AUTH:CODE [--task T] ... --out FILE.gpkg|FILE.shp "instruction"``."""

from __future__ import annotations

import argparse
import sys

from ..core.engine_options import DEFAULT_SEGMENTER
from ..core.errors import InvalidArgumentError
from ..core.interface import Task, check_max_new_tokens, check_question
from .engine_args import add_engine_options, engine_from_args, say_unfinished
from .prompt_args import add_chip_options, add_outline_options, add_prompt_options, chip_inputs, prompts_from_args
from .segment import add_segmenter_options, check_outline_options, check_segmenter, segmenter_from_args


def add_parser(sub) -> None:
    ask = sub.add_parser("ask", help="ask a model about points, boxes or regions on a raster and write the "
                                     "georeferenced answer and detections")
    ask.add_argument("raster", help="raster file")
    ask.add_argument("instruction", help="the question (for --task grounding: what to find)")
    add_prompt_options(ask)
    ask.add_argument("--crs", help="CRS of the prompts (default: the raster's)")
    ask.add_argument("--task", choices=[t.value for t in Task], default=None,
                     help="default: relation for several prompts, region_captioning for one, captioning for none")
    add_engine_options(ask)
    add_chip_options(ask)
    ask.add_argument("--max-new-tokens", type=int, default=512)
    ask.add_argument("--out", required=True, help="output .gpkg or .shp (appended to when it exists)")
    ask.add_argument("--out-crs", help="CRS of the output (default: the raster's; an existing output keeps its own)")
    ask.add_argument("--masks", action="store_true",
                     help="--task grounding: also outline each detection with a segmenter (the masks layer)")
    add_segmenter_options(ask, "--segmenter", DEFAULT_SEGMENTER)
    add_outline_options(ask)


def run(args: argparse.Namespace) -> dict:
    from ..geo.outputs import check_output
    from ..jobs.ask import ask_raster, prepare_question

    prompts = prompts_from_args(args)
    task = Task(args.task) if args.task else (
        Task.RELATION if len(prompts) > 1 else Task.REGION_CAPTIONING if prompts else Task.CAPTIONING)
    check_question(task, args.instruction, len(prompts))  # before a model is loaded
    if args.masks:
        if task is not Task.GROUNDING:
            raise InvalidArgumentError("--masks outlines the detections of --task grounding")
        check_outline_options(args)
    check_max_new_tokens(args.max_new_tokens)
    check_output(args.out)
    settings, prompt_crs, out_crs, modality = chip_inputs(args)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # the raster, the prompts and the chip before the model: a bad input costs no model load
    question = prepare_question(args.raster, prompts, prompt_crs, settings, modality, args.bands, out_crs, progress)
    if args.masks:  # a segmenter that is not there, or is no segmenter, is said before the model loads
        check_segmenter(args)
    engine = engine_from_args(args)
    try:
        def stream(text: str) -> None:
            sys.stderr.write(text)
            sys.stderr.flush()

        result = ask_raster(args.raster, prompts, prompt_crs, args.instruction, engine, task, settings,
                            modality, args.bands, args.max_new_tokens, args.out, out_crs, on_text=stream,
                            on_progress=progress, question=question)
    finally:
        engine.close()
    sys.stderr.write("\n")
    say_unfinished([result.answer.meta.finish_reason], args.max_new_tokens, result.answer.meta.cut_regions)
    report = result.report
    if report.escaped_fields:
        print(f"NUL characters or lone surrogates in {', '.join(report.escaped_fields)} were written as \\uXXXX.",
              file=sys.stderr)
    if report.trimmed_fields:
        print(f"A shapefile cannot keep spaces at the ends of a text: they were dropped from "
              f"{', '.join(report.trimmed_fields)} (a GeoPackage keeps them).", file=sys.stderr)
    if report.split_fields:
        print(f"Shapefile text longer than 254 characters was split over continuation fields: "
              f"{', '.join(report.split_fields)} (answer, answer_2, ...).", file=sys.stderr)
    print(f"Wrote {report.written['prompts']} prompt(s), {report.written['answers']} answer and "
          f"{report.written['detections']} detection(s) to {', '.join(report.files)}.", file=sys.stderr)
    summary = {"answer": result.answer.to_dict(), "files": report.files, "task": task.value}
    if args.masks:
        summary["masks"] = _outline_detections(args, result)
    return summary


def _outline_detections(args: argparse.Namespace, result) -> int:
    """Outline the answer's detections (the model already closed) and append them to the output."""
    from pyproj import CRS

    from ..geo.outputs import QuestionRecord, write_record
    from ..jobs.segment import detection_masks, to_crs

    segmenter = segmenter_from_args(args)
    try:
        features = detection_masks(result.chip, result.answer, segmenter, result.record.answers[0].properties[
            "answer_id"], args.simplify, args.min_area)
    finally:
        segmenter.close()
    written = write_record(args.out, QuestionRecord(crs=result.record.crs, masks=to_crs(
        features, CRS.from_wkt(result.chip.crs), result.record.crs)))
    print(f"Wrote {written.written['masks']} outline(s) of {len(result.answer.regions)} detection(s).",
          file=sys.stderr)
    return written.written["masks"]
