"""Static checks of the QGIS side (DESIGN §3, issue 4 packaging): only qgis.PyQt, fully scoped Qt enums
(the same code runs on Qt5 and Qt6), and no heavy packages imported in the QGIS process."""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_FILES = sorted(os.path.join(folder, f) for folder, _, files in os.walk(os.path.join(ROOT, "plugin"))
                      for f in files if f.endswith(".py")) + [os.path.join(ROOT, "__init__.py")]
FORBIDDEN = {"torch", "transformers", "rasterio", "pyproj", "shapely", "fiona", "PyQt5", "PyQt6", "PySide2",
             "PySide6", "bitsandbytes", "PIL", "osgeo"}
#: ``Qt.Something`` not followed by ``.Member`` is an unscoped enum value (Qt6 needs Qt.Enum.Member)
UNSCOPED_QT = re.compile(r"\bQt\.([A-Z]\w*)\b(?!\s*\.)")


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_plugin_imports_only_qgis_pyqt_and_light_modules(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path} imports {name}"


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_qt_enums_are_fully_scoped(path):
    source = open(path, encoding="utf-8").read()
    hits = [m.group(0) for m in UNSCOPED_QT.finditer(source)]
    assert hits == [], f"unscoped Qt enums in {path}: {hits}"
