"""Options the commands share for visual prompts (``--point``, ``--box``, ``--polygon``, ``--scribble``,
kept in the order given) and for outlines (``--simplify``, ``--min-area``)."""

from __future__ import annotations

import argparse
from typing import List

from ..core.prompts import VisualPrompt
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


def add_outline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--simplify", type=float, default=0.0, metavar="PX",
                        help="simplify outlines by this tolerance in chip pixels (default 0: exact, on the pixel grid)")
    parser.add_argument("--min-area", type=float, default=0.0, metavar="PX",
                        help="drop parts of an outline smaller than this many chip pixels (default 0)")
