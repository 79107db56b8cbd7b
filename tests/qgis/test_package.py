"""``make package``'s zip is what plugins.qgis.org accepts: one top folder, metadata, licence, sources,
icons and compiled translations; no tests, data, benchmarks, binaries or caches."""

import configparser
import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_package_zip(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "package.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout.strip()
    names = zipfile.ZipFile(out).namelist()
    assert all(n.startswith("earthgptx/") for n in names)
    for required in ("metadata.txt", "__init__.py", "LICENSE", "plugin/plugin_main.py", "plugin/dock.py",
                     "model_backend/worker/server.py", "resources/icon.svg"):
        assert "earthgptx/" + required in names
    assert not [n for n in names if n.split("/")[1] in ("tests", "bench", "docs", "tools", ".venv", "out", "dist")]
    assert not [n for n in names if n.endswith((".pyc", ".so", ".dll", ".exe", ".tif", ".jpg", ".ts"))]
    assert "earthgptx/model_backend/testing/tiny_model.py" in names  # the offline tiny models ship: a setup check
    assert sum(i.file_size for i in zipfile.ZipFile(out).infolist()) < 2_000_000


def test_metadata_is_complete():
    meta = configparser.ConfigParser()
    meta.read(os.path.join(ROOT, "metadata.txt"))
    g = meta["general"]
    assert g["qgisMinimumVersion"] == "3.22" and g["qgisMaximumVersion"] == "4.99" and g["supportsQt6"] == "True"
    for key in ("name", "description", "about", "version", "author", "email", "repository", "tracker", "icon"):
        assert g.get(key), key
    assert "GPU" in g["about"] and "download" in g["about"]
    assert os.path.exists(os.path.join(ROOT, g["icon"]))
