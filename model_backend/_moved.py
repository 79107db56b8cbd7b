"""The flat module paths of releases up to 0.1 (``model_backend.raster``, ``model_backend.parsing``,
``python -m model_backend.earthgptx.train``...), resolved to their homes in the subpackages.

Scripts written against the README's Python API keep working: ``import model_backend.raster`` returns
the very module ``model_backend.geo.raster`` (same object, same classes), submodules of a moved
package included. Code in this repository imports the new paths (tests/test_layout.py checks).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import CodeType, ModuleType
from typing import Optional, Sequence

#: old name under ``model_backend`` -> new name under ``model_backend``
MOVED = {
    **{name: "core." + name for name in ("affine", "chip", "chip_plan", "encoding", "errors", "families",
                                         "interface", "marks", "normalise", "prompts", "schema", "tiling")},
    **{name: "models." + name for name in ("engine", "loading", "parsing", "prompting", "remote", "tasks")},
    "local_engine": "models.local",
    "earthgptx": "models.earthgptx",
    **{name: "geo." + name for name in ("crs", "geometry", "locate", "outputs", "raster")},
    **{name: "jobs." + name for name in ("ask", "find")},
    "cli": "commands.main",
    "cli_ask": "commands.ask",
    "cli_find": "commands.find",
    "diagnostics": "commands.diagnostics",
    "eval.cli": "commands.eval",
}
_PACKAGE = __name__.rsplit(".", 1)[0]


def new_name(fullname: str) -> Optional[str]:
    """The current name of an old dotted module name, or None when ``fullname`` did not move."""
    if not fullname.startswith(_PACKAGE + "."):
        return None
    rest = fullname[len(_PACKAGE) + 1:]
    for old in sorted(MOVED, key=len, reverse=True):
        if rest == old or rest.startswith(old + "."):
            return f"{_PACKAGE}.{MOVED[old]}{rest[len(old):]}"
    return None


class _AliasLoader(importlib.abc.Loader):
    """Loads an old name by importing the new one and binding it under the old name too."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        return None

    def exec_module(self, module: ModuleType) -> None:
        sys.modules[module.__name__] = importlib.import_module(self.target)

    def get_code(self, fullname: str) -> CodeType:
        """For ``python -m <old name>``: code that runs the new module as ``__main__`` (its relative
        imports resolve from its own package)."""
        return compile(f"import runpy\nrunpy.run_module({self.target!r}, run_name='__main__', alter_sys=True)\n",
                       f"<{fullname} moved to {self.target}>", "exec")


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        name = new_name(fullname)
        if name is None:
            return None
        spec = importlib.util.find_spec(name)
        if spec is None:
            return None
        alias = importlib.machinery.ModuleSpec(fullname, _AliasLoader(name), origin=spec.origin,
                                               is_package=spec.submodule_search_locations is not None)
        if spec.submodule_search_locations is not None:
            alias.submodule_search_locations = list(spec.submodule_search_locations)
        return alias


def install() -> None:
    """Put the alias finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
