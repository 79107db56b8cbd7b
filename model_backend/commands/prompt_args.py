"""Options the commands share for visual prompts (``--point``, ``--box``, ``--polygon``, ``--scribble``,
kept in the order given), for the chip read around them (``--modality``, ``--bands``, ``--context``,
``--max-pixels``, ``--min-size``) and for outlines (``--simplify``, ``--min-area``)."""

from __future__ import annotations

import argparse
from typing import List, Optional, Tuple

from pyproj import CRS

from ..core.chip_plan import ChipSettings
from ..core.normalise import Modality
from ..core.prompts import VisualPrompt
from ..geo.crs import parse_crs
from ..geo.geometry import parse_wkt, prompt_from_geometry


class _PromptAction(argparse.Action):
    """Collects --point/--box/--polygon/--scribble in the order given, as (kind, values)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest) or [])
        items.append((option_string.lstrip("-"), values))
        setattr(namespace, self.dest, items)


def add_prompt_options(parser: argparse.ArgumentParser, scribble: bool = True) -> None:
    parser.add_argument("--point", nargs=2, type=float, metavar=("X", "Y"), action=_PromptAction, dest="prompts",
                        help="a point prompt (repeatable; prompts are numbered in the order given)")
    parser.add_argument("--box", nargs=4, type=float, metavar=("MINX", "MINY", "MAXX", "MAXY"),
                        action=_PromptAction, dest="prompts", help="a box prompt")
    parser.add_argument("--polygon", metavar="WKT", action=_PromptAction, dest="prompts", help="a free-form region")
    if scribble:
        parser.add_argument("--scribble", metavar="WKT", action=_PromptAction, dest="prompts",
                            help="a free-form stroke (LINESTRING)")


def prompts_from_args(args: argparse.Namespace) -> List[VisualPrompt]:
    """The prompts of ``add_prompt_options``, numbered 1, 2, ... in the order given (CRS coordinates)."""
    prompts = []
    for k, (kind, values) in enumerate(args.prompts or [], start=1):
        if kind == "point":
            prompts.append(VisualPrompt.point(*values, index=k))
        elif kind == "box":
            prompts.append(VisualPrompt.box(*values, index=k))
        else:
            prompts.append(prompt_from_geometry(parse_wkt(values), kind, index=k))
    return prompts


def add_chip_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modality", choices=[m.value for m in Modality], help="override the modality guess")
    parser.add_argument("--bands", type=int, nargs="+", metavar="N", help="1-based bands: one (grey) or three (RGB)")
    defaults = ChipSettings()
    parser.add_argument("--context", type=float, default=defaults.context)
    parser.add_argument("--max-pixels", type=int, default=defaults.max_pixels)
    parser.add_argument("--min-size", type=int, default=defaults.min_size)


def chip_inputs(args: argparse.Namespace) -> Tuple[ChipSettings, Optional[CRS], Optional[CRS], Optional[Modality]]:
    """The chip settings, the prompts' CRS (``--crs``), the output's (``--out-crs``) and the modality
    override of ``add_chip_options`` (None: the raster's, or guessed)."""
    settings = ChipSettings(context=args.context, max_pixels=args.max_pixels, min_size=args.min_size)
    prompt_crs = parse_crs(args.crs) if args.crs else None
    out_crs = parse_crs(args.out_crs) if args.out_crs else None
    return settings, prompt_crs, out_crs, Modality(args.modality) if args.modality else None


def add_outline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--simplify", type=float, default=0.0, metavar="PX",
                        help="simplify outlines by this tolerance in chip pixels (default 0: exact, on the pixel grid)")
    parser.add_argument("--min-area", type=float, default=0.0, metavar="PX",
                        help="drop parts of an outline smaller than this many chip pixels (default 0)")
