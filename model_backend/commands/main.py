"""Command line: ``python -m model_backend locate|ask|find|segment ...``.

Prints JSON on stdout (``ask`` and ``find`` stream the answer and progress on stderr). Any bad input
exits with status 2 and one line on stderr; Ctrl-C with status 130 (``find`` first writes what it
did). A command is one module of this package with ``add_parser(sub)`` and ``run(args) -> dict``,
listed in ``COMMANDS``.
"""

from __future__ import annotations

import json
import sys
from typing import List, Optional

from ..core.errors import EXIT_INTERRUPTED, EXIT_USAGE, EarthGPTXError
from . import ask, find, locate, segment
from .parser import Parser

COMMANDS = {"locate": locate, "ask": ask, "find": find, "segment": segment}


def build_parser() -> Parser:
    parser = Parser(prog="python -m model_backend", description="EarthGPT-X for QGIS: headless tools.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command].run(args)
    except EarthGPTXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_INTERRUPTED if result.get("interrupted") else 0
