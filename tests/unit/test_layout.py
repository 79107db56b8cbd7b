"""The import rules of ARCHITECTURE.md, one check per package, read from the source (DESIGN §3):
``core`` imports nothing heavy; ``geo`` and ``models`` never import each other, ``jobs`` or
``commands``; nothing imports ``commands`` but a ``__main__``; ``plugin`` imports only ``core`` and the
worker client; ``model_backend`` never imports ``qgis``; unit tests import neither torch nor QGIS."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from typing import Iterator, List, Tuple

import pytest

from model_backend import _moved

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "model_backend")
HEAVY = ["rasterio", "pyproj", "shapely", "fiona", "torch", "transformers", "PIL", "cv2", "qgis", "osgeo"]
#: pure modules outside core: the worker client (the plugin imports it) and the torch-free part of models
PURE_OUTSIDE_CORE = ["model_backend", "model_backend._moved", "model_backend.worker", "model_backend.worker.client",
                     "model_backend.models", "model_backend.models.tasks", "model_backend.models.prompting",
                     "model_backend.models.parsing", "model_backend.models.engine", "model_backend.models.thinking"]


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _sources(folder: str) -> List[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if f.endswith(".py"))


def _imports(path: str) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved; ``from P import
    name`` yields ``P.name`` when that is a module of this repository."""
    name = _module_name(path)
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (os.path.exists(os.path.join(ROOT, *sub.split(".")) + ".py")
                             or os.path.isdir(os.path.join(ROOT, *sub.split(".")))
                             or _moved.new_name(sub.replace("earthgptx.model_backend", "model_backend")))
                yield node.lineno, sub if is_module else base


def _package_of(module: str) -> str:
    """``core``, ``geo``... for ``model_backend.core.x``; the top-level name for anything else."""
    if module.startswith("earthgptx.model_backend"):
        module = module[len("earthgptx."):]
    parts = module.split(".")
    return parts[1] if parts[0] == "model_backend" and len(parts) > 1 else parts[0]


def _violations(folder: str, allowed) -> List[str]:
    out = []
    for path in _sources(folder):
        for line, module in _imports(path):
            if not allowed(path, module):
                out.append(f"{os.path.relpath(path, ROOT)}:{line} imports {module}")
    return out


def _is_light(module: str) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top in ("numpy", "__future__")


def test_core_imports_only_numpy_the_standard_library_and_core():
    assert _violations(os.path.join(PACKAGE, "core"), lambda path, m: _is_light(m) or _package_of(m) == "core") == []


def test_pure_modules_outside_core_import_only_core_and_each_other():
    paths = [p for p in _sources(PACKAGE) if _module_name(p) in PURE_OUTSIDE_CORE]
    assert len(paths) == len(PURE_OUTSIDE_CORE)
    bad = [f"{p}: {m}" for p in paths for _, m in _imports(p)
           if not (_is_light(m) or _package_of(m) == "core" or m in PURE_OUTSIDE_CORE)]
    assert bad == []


@pytest.mark.parametrize("package, forbidden", [
    ("geo", {"models", "jobs", "commands", "worker", "eval", "testing"}),
    ("models", {"geo", "jobs", "commands", "worker", "eval"}),
    ("jobs", {"commands", "worker", "eval", "testing"}),
    ("worker", {"commands", "eval"}),   # its server runs jobs; its client stays pure (above)
    ("eval", {"geo", "jobs", "worker"}),
])
def test_package_imports_only_the_packages_below_it(package, forbidden):
    assert _violations(os.path.join(PACKAGE, package), lambda path, m: _package_of(m) not in forbidden) == []


def test_nothing_but_a_main_module_imports_commands():
    def allowed(path, module):
        inside = os.path.relpath(path, PACKAGE).startswith("commands" + os.sep)
        return _package_of(module) != "commands" or inside or path.endswith("__main__.py")

    assert _violations(PACKAGE, allowed) == []


def test_model_backend_never_imports_qgis():
    assert _violations(PACKAGE, lambda path, m: m.split(".")[0] != "qgis") == []


def test_plugin_imports_only_core_and_the_worker_client():
    def allowed(path, module):
        module = module[len("earthgptx."):] if module.startswith("earthgptx.model_backend") else module
        if module.split(".")[0] != "model_backend":
            return True
        return _package_of(module) == "core" or module in ("model_backend", "model_backend.worker.client")

    assert _violations(os.path.join(ROOT, "plugin"), allowed) == []


def test_repository_code_uses_the_new_module_paths():
    """Old flat paths resolve through ``model_backend._moved`` for users; our own code names the real ones."""
    folders = [os.path.join(ROOT, f) for f in ("model_backend", "plugin", "tests", "bench", "tools")]
    old = [f"{os.path.relpath(p, ROOT)}: {m}" for folder in folders for p in _sources(folder)
           for _, m in _imports(p) if _moved.new_name(m.replace("earthgptx.model_backend", "model_backend"))]
    assert old == []


@pytest.mark.parametrize("old, new", [
    ("model_backend.raster", "model_backend.geo.raster"),
    ("model_backend.prompts", "model_backend.core.prompts"),
    ("model_backend.locate", "model_backend.geo.locate"),
    ("model_backend.chip_plan", "model_backend.core.chip_plan"),
    ("model_backend.encoding", "model_backend.core.encoding"),
    ("model_backend.remote", "model_backend.models.remote"),
    ("model_backend.cli", "model_backend.commands.main"),
])
def test_old_module_paths_are_the_same_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_old_command_path_runs_the_moved_command(tmp_path):
    """``python -m model_backend.diagnostics`` (the path of release 0.1) still runs, as the new module."""
    r = subprocess.run([sys.executable, "-m", "model_backend.diagnostics", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "python -m model_backend.commands.diagnostics" in r.stdout


def test_unit_tests_import_neither_torch_nor_qgis():
    """The unit tier runs without QGIS or torch (``make test-fast`` also blocks them at import)."""
    heavy = ("model_backend.models.local", "model_backend.models.earthgptx", "model_backend.testing",
             "model_backend.worker.server")

    def allowed(path, module):
        return module.split(".")[0] not in ("torch", "transformers", "qgis", "earthgptx") \
            and not module.startswith(heavy)

    assert _violations(os.path.dirname(os.path.abspath(__file__)), allowed) == []


def test_core_and_the_worker_client_import_in_qgis_python_with_heavy_packages_blocked():
    """Run QGIS's Python (/usr/bin/python3, outside the venv) with the heavy packages made unimportable."""
    modules = sorted({_module_name(p) for p in _sources(os.path.join(PACKAGE, "core"))} | set(PURE_OUTSIDE_CORE))
    code = (
        "import sys, importlib\n"
        f"for m in {HEAVY!r}: sys.modules[m] = None\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "from model_backend.core.chip_plan import plan_scene_chip\n"
        "print(plan_scene_chip(30000, 30000).out_width)\n"
    )
    r = subprocess.run(["/usr/bin/python3", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1024"
