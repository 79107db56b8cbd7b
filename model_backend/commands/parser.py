"""The argument parser every command uses."""

from __future__ import annotations

import argparse

from ..core.errors import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line with exit status 2."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")
