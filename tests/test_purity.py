"""DESIGN §3: the pixel-math modules import only numpy and the standard library, so that QGIS's own
Python can import them; model_backend never imports qgis."""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "model_backend")
PURE = ["affine", "prompts", "chip_plan", "encoding", "normalise", "marks", "chip", "errors", "interface",
        "parsing", "families", "tasks", "prompting", "engine", "schema", "tiling", "worker/__init__", "worker/client"]
HEAVY = ["rasterio", "pyproj", "shapely", "torch", "transformers", "PIL", "cv2", "qgis", "osgeo"]


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_only_numpy_stdlib_and_each_other(name):
    for level, module in _imports(os.path.join(PACKAGE, name + ".py")):
        if level:
            base = name.split("/")[0] + "/" if level == 1 and "/" in name else ""
            target = base + module.split(".")[0] if module else base.rstrip("/") + "/__init__"
            if level == 2:
                target = module.split(".")[0]
            assert target in PURE, f"{name} imports {'.' * level}{module}, which is not pure"
        else:
            top = module.split(".")[0]
            assert top == "numpy" or top in sys.stdlib_module_names or top == "__future__", \
                f"{name} imports {module}"


def test_model_backend_never_imports_qgis():
    for fname in os.listdir(PACKAGE):
        if fname.endswith(".py"):
            for _, module in _imports(os.path.join(PACKAGE, fname)):
                assert module.split(".")[0] != "qgis", f"{fname} imports qgis"


def test_pure_modules_import_in_qgis_python_with_heavy_packages_blocked():
    """Run QGIS's Python (/usr/bin/python3, outside the venv) with the heavy packages made unimportable."""
    code = (
        "import sys\n"
        f"for m in {HEAVY!r}: sys.modules[m] = None\n"
        f"import importlib\n"
        f"for m in {PURE!r}: importlib.import_module('model_backend.' + m.replace('/__init__', '').replace('/', '.'))\n"
        "from model_backend.chip_plan import plan_scene_chip\n"
        "print(plan_scene_chip(30000, 30000).out_width)\n"
    )
    r = subprocess.run(["/usr/bin/python3", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1024"
