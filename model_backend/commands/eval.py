"""``python -m model_backend.eval``: score a model on a grounding, scene or captioning data set.

Prints the result as a Markdown table on stdout (progress on stderr) and optionally writes the report as
JSON (per-example predictions, aggregate metrics, model metadata) and Markdown. Bad input (a missing
folder, malformed annotations, an unknown task) exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from typing import List, Optional

from ..core.errors import EXIT_USAGE, EarthGPTXError, InvalidArgumentError
from ..core.interface import check_max_new_tokens
from ..core.normalise import Modality
from ..eval.report import markdown_table, write_json, write_text
from ..eval.runner import EvalTask, evaluate, load_dataset
from .engine_args import add_engine_options, engine_from_args
from .parser import Parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m model_backend.eval",
                     description="Score a model: grounding (DIOR-RSVG referring, Acc@0.5 and mIoU), class-grounding "
                                 "(VOC boxes such as HIT-UAV, precision/recall/F1 at IoU 0.5), scene (accuracy) or "
                                 "captioning (region captions, BLEU-4/METEOR/ROUGE-L/CIDEr).")
    parser.add_argument("--task", required=True, choices=[t.value for t in EvalTask])
    parser.add_argument("--data", required=True,
                        help="grounding: DIOR-RSVG folder; class-grounding: VOC folder; scene: .csv or .jsonl; "
                             "captioning: .jsonl")
    parser.add_argument("--split", help="grounding: DIOR-RSVG split file of object indices; class-grounding: "
                                        "file of image ids")
    parser.add_argument("--limit", type=int, help="score only the first N examples")
    parser.add_argument("--modality", choices=[m.value for m in Modality], default=Modality.OPTICAL.value,
                        help="what the images are (HIT-UAV: infrared); default optical")
    add_engine_options(parser)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--out-json", metavar="FILE", help="write the full report as JSON")
    parser.add_argument("--out-md", metavar="FILE", help="write the Markdown table")
    return parser


def run(args: argparse.Namespace) -> str:
    """Evaluate as ``args`` say, write the requested files and return the Markdown table."""
    if args.limit is not None and args.limit < 1:
        raise InvalidArgumentError(f"--limit must be at least 1, got {args.limit}")
    check_max_new_tokens(args.max_new_tokens)
    for path in (args.out_json, args.out_md):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise InvalidArgumentError(f"the folder of {path} does not exist")
    task = EvalTask(args.task)
    dataset = load_dataset(task, args.data, args.split)   # before a model is loaded
    dataset.examples = dataset.examples[:args.limit] if args.limit else dataset.examples
    engine = engine_from_args(args)
    try:
        records, metrics = evaluate(engine, task, dataset, Modality(args.modality), args.max_new_tokens,
                                    on_progress=lambda m: print(m, file=sys.stderr, flush=True))
        model = engine.describe()
    finally:
        engine.close()
    report = {
        "task": task.value, "data": os.path.abspath(args.data),
        "split": os.path.abspath(args.split) if args.split else None, "limit": args.limit,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {**model, "modality": args.modality, "max_new_tokens": args.max_new_tokens},
        "examples": len(records), "missing": dataset.missing, "metrics": metrics, "records": records,
    }
    table = markdown_table(report)
    if args.out_json:
        write_json(args.out_json, report)
    if args.out_md:
        write_text(args.out_md, table)
    return table


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        table = run(args)
    except EarthGPTXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(table)
    return 0
