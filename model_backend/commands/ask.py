"""The ``ask`` command: ``python -m model_backend ask RASTER (--point X Y | --box ... | --polygon WKT
| --scribble WKT)... --crs AUTH:CODE [--task T] ... --out FILE.gpkg|FILE.shp "instruction"``."""

from __future__ import annotations

import argparse
import sys
from typing import List

from ..core.chip_plan import ChipSettings
from ..core.interface import Task, check_max_new_tokens, check_question
from ..core.normalise import Modality
from ..core.prompts import VisualPrompt
from ..geo.crs import parse_crs
from ..geo.geometry import parse_wkt, prompt_from_geometry
from .engine_args import add_engine_options, engine_from_args, say_unfinished


class _PromptAction(argparse.Action):
    """Collects --point/--box/--polygon/--scribble in the order given, as (kind, values)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest) or [])
        items.append((option_string.lstrip("-"), values))
        setattr(namespace, self.dest, items)


def add_parser(sub) -> None:
    ask = sub.add_parser("ask", help="ask a model about points, boxes or regions on a raster and write the "
                                     "georeferenced answer and detections")
    ask.add_argument("raster", help="raster file")
    ask.add_argument("instruction", help="the question (for --task grounding: what to find)")
    ask.add_argument("--point", nargs=2, type=float, metavar=("X", "Y"), action=_PromptAction, dest="prompts",
                     help="a point prompt (repeatable; prompts are numbered in the order given)")
    ask.add_argument("--box", nargs=4, type=float, metavar=("MINX", "MINY", "MAXX", "MAXY"), action=_PromptAction,
                     dest="prompts", help="a box prompt")
    ask.add_argument("--polygon", metavar="WKT", action=_PromptAction, dest="prompts", help="a free-form region")
    ask.add_argument("--scribble", metavar="WKT", action=_PromptAction, dest="prompts",
                     help="a free-form stroke (LINESTRING)")
    ask.add_argument("--crs", help="CRS of the prompts (default: the raster's)")
    ask.add_argument("--task", choices=[t.value for t in Task], default=None,
                     help="default: relation for several prompts, region_captioning for one, captioning for none")
    ask.add_argument("--modality", choices=[m.value for m in Modality], help="override the modality guess")
    ask.add_argument("--bands", type=int, nargs="+", metavar="N", help="1-based bands: one (grey) or three (RGB)")
    add_engine_options(ask)
    defaults = ChipSettings()
    ask.add_argument("--context", type=float, default=defaults.context)
    ask.add_argument("--max-pixels", type=int, default=defaults.max_pixels)
    ask.add_argument("--min-size", type=int, default=defaults.min_size)
    ask.add_argument("--max-new-tokens", type=int, default=512)
    ask.add_argument("--out", required=True, help="output .gpkg or .shp (appended to when it exists)")
    ask.add_argument("--out-crs", help="CRS of the output (default: the raster's; an existing output keeps its own)")


def _prompts(args) -> List[VisualPrompt]:
    prompts = []
    for k, (kind, values) in enumerate(args.prompts or [], start=1):
        if kind == "point":
            prompts.append(VisualPrompt.point(*values, index=k))
        elif kind == "box":
            prompts.append(VisualPrompt.box(*values, index=k))
        else:
            prompts.append(prompt_from_geometry(parse_wkt(values), kind, index=k))
    return prompts


def run(args: argparse.Namespace) -> dict:
    from ..geo.outputs import check_output
    from ..jobs.ask import ask_raster, prepare_question

    prompts = _prompts(args)
    task = Task(args.task) if args.task else (
        Task.RELATION if len(prompts) > 1 else Task.REGION_CAPTIONING if prompts else Task.CAPTIONING)
    check_question(task, args.instruction, len(prompts))  # before a model is loaded
    check_max_new_tokens(args.max_new_tokens)
    check_output(args.out)
    settings = ChipSettings(context=args.context, max_pixels=args.max_pixels, min_size=args.min_size)
    prompt_crs = parse_crs(args.crs) if args.crs else None
    out_crs = parse_crs(args.out_crs) if args.out_crs else None
    modality = Modality(args.modality) if args.modality else None

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # the raster, the prompts and the chip before the model: a bad input costs no model load
    question = prepare_question(args.raster, prompts, prompt_crs, settings, modality, args.bands, out_crs, progress)
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
    return {"answer": result.answer.to_dict(), "files": report.files, "task": task.value}
