"""``python -m model_backend.commands.diagnostics [--json]``: print the worker environment's report
(``worker.environment``); run it INSIDE the worker environment and paste the plain text into a bug
report. stdout carries only the report: anything a C library prints goes to stderr."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Dict, List, Optional

from ..worker.environment import collect, format_text, probe_packages


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send everything written to file descriptor 1 (C libraries too) to stderr meanwhile, so that
    stdout carries only the report; yields a writer to the real stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real descriptor (embedded interpreters)
        with contextlib.redirect_stdout(sys.stderr):
            yield sys.__stdout__
        return
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            real = os.fdopen(os.dup(saved), "w", encoding="utf-8", closefd=True)
            yield real
            real.flush()
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_backend.commands.diagnostics",
                                     description="Report what this Python environment offers the EarthGPT-X worker.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--probe-packages", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    with _stdout_to_stderr() as out:
        if args.probe_packages:
            def emit(name: str, result: Dict[str, Any]) -> None:
                out.write(json.dumps({"name": name, "result": result}) + "\n")
                out.flush()

            probe_packages(emit)
            return 0
        report = collect()
        text = json.dumps(report, indent=2) if args.json else format_text(report)
        out.write(text if text.endswith("\n") else text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
