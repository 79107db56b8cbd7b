"""The ``segment`` command: ``python -m model_backend segment RASTER (--point X Y | --box MINX MINY MAXX MAXY |
--polygon WKT)... [--text PHRASE] [--crs AUTH:CODE] [--model ID_OR_FOLDER] [--simplify PX] [--min-area PX]
--out FILE.gpkg|FILE.shp``: outlines of what the prompts point at and, with SAM 3, of every instance of a
phrase, exact on the pixel grid, as the ``masks`` layer."""

from __future__ import annotations

import argparse
import sys

from ..core.engine_options import DEFAULT_SEGMENTER, DEVICES
from ..core.errors import InvalidArgumentError
from .prompt_args import add_chip_options, add_outline_options, add_prompt_options, chip_inputs, prompts_from_args

PRECISIONS = ("auto", "bf16", "fp32")


def add_parser(sub) -> None:
    seg = sub.add_parser("segment", help="outline what points, boxes or regions point at on a raster (SAM 2.1, "
                                         "SAM, SAM 3) and write the outlines as polygons")
    seg.add_argument("raster", help="raster file")
    add_prompt_options(seg, scribble=False)
    seg.add_argument("--text", metavar="PHRASE", help="SAM 3: also outline every instance of this phrase on the chip")
    seg.add_argument("--crs", help="CRS of the prompts (default: the raster's)")
    add_segmenter_options(seg, "--model", DEFAULT_SEGMENTER, "--device")
    add_outline_options(seg)
    add_chip_options(seg)
    seg.add_argument("--out", required=True, help="output .gpkg or .shp (appended to when it exists)")
    seg.add_argument("--out-crs", help="CRS of the output (default: the raster's; an existing output keeps its own)")


def add_segmenter_options(parser: argparse.ArgumentParser, flag: str, default: str,
                          device_flag: str = "--segmenter-device") -> None:
    """The segmenter's model (``flag``), device (``device_flag``) and precision."""
    parser.add_argument(flag, dest="segmenter", default=default,
                        help=f"segmentation model folder or hub id: SAM 2.1, SAM or SAM 3 (default {default})")
    parser.add_argument(device_flag, dest="segmenter_device", choices=DEVICES, default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="the segmenter's precision (auto: bfloat16 on CUDA, float32 elsewhere)")


def segmenter_from_args(args: argparse.Namespace):
    """The segmenter the options of ``add_segmenter_options`` name, loaded."""
    from ..models.loading import LoadPolicy
    from ..models.segmentation import SegmentEngine

    return SegmentEngine(args.segmenter, LoadPolicy(args.segmenter_device, args.precision),
                         on_status=lambda m: print(m, file=sys.stderr, flush=True))


def check_segmenter(args: argparse.Namespace, progress=lambda m: print(m, file=sys.stderr, flush=True)) -> str:
    """Before any model loads: the segmenter of ``args`` found (downloaded if need be) and known to be one
    (SAM 2.1, SAM or SAM 3); returns its family."""
    from ..models.loading import resolve_source
    from ..models.segmentation import segmenter_family

    family = segmenter_family(resolve_source(args.segmenter, progress))
    if family is None:
        raise InvalidArgumentError(f"{args.segmenter} is not a segmentation model: choose SAM 2.1 (default "
                                   f"{DEFAULT_SEGMENTER}), SAM or SAM 3")
    return family


def check_outline_options(args: argparse.Namespace) -> None:
    from ..geo.masks import check_outline_settings

    check_outline_settings(args.min_area, args.simplify)


def run(args: argparse.Namespace) -> dict:
    from ..geo.outputs import check_output
    from ..jobs.ask import prepare_question
    from ..jobs.segment import check_segment_request, segment_raster

    prompts = prompts_from_args(args)
    check_segment_request(prompts, args.text, None)   # everything checked before the model loads
    check_outline_options(args)
    check_output(args.out)
    settings, prompt_crs, out_crs, modality = chip_inputs(args)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    check_segment_request(prompts, args.text, check_segmenter(args, progress))
    question = prepare_question(args.raster, prompts, prompt_crs, settings, modality, args.bands, out_crs, progress)
    engine = segmenter_from_args(args)
    try:
        result = segment_raster(args.raster, prompts, prompt_crs, engine, args.text, settings, modality, args.bands,
                                args.simplify, args.min_area, args.out, out_crs, progress, question)
    finally:
        engine.close()
    report = result.report
    print(f"Wrote {report.written['prompts']} prompt(s) and {report.written['masks']} outline(s) to "
          f"{', '.join(report.files)}.", file=sys.stderr)
    return {"masks": [{k: f.properties[k] for k in ("label", "score", "area_m2", "prompt_index", "rank",
                                                    "prompt_kind")} for f in result.record.masks],
            "empty": result.empty, "segmenter": engine.describe(), "files": report.files}
