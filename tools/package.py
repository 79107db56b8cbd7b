"""Build the plugin zip that plugins.qgis.org accepts: one top folder ``earthgptx/`` holding the
plugin's sources, metadata, licence, icons and compiled translations; no tests, data, benchmarks,
binaries or caches.

Usage: python3 tools/package.py [OUT_DIR]   (default dist/); prints the zip's path.
"""

from __future__ import annotations

import configparser
import os
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "earthgptx"
INCLUDE = ["metadata.txt", "__init__.py", "LICENSE", "README.md", "plugin", "model_backend", "resources", "i18n"]
EXCLUDE_DIRS = {"__pycache__"}
EXCLUDE_SUFFIXES = (".pyc", ".pyo", ".ts", ".so", ".dll", ".dylib", ".exe")


def files() -> list:
    out = []
    for item in INCLUDE:
        path = os.path.join(ROOT, item)
        if os.path.isfile(path):
            out.append(item)
            continue
        for folder, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in EXCLUDE_DIRS)
            for name in sorted(names):
                if not name.endswith(EXCLUDE_SUFFIXES):
                    out.append(os.path.relpath(os.path.join(folder, name), ROOT))
    return out


def main() -> int:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "dist")
    meta = configparser.ConfigParser()
    meta.read(os.path.join(ROOT, "metadata.txt"))
    version = meta["general"]["version"]
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, f"{NAME}-{version}.zip")
    tmp = target + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files():
            zf.write(os.path.join(ROOT, rel), f"{NAME}/{rel}")
    os.replace(tmp, target)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
