"""Prepare a QGIS profile for ``make run`` / ``make screenshot``: the plugin linked into the profile's
python/plugins, enabled, pointed at this checkout's worker environment, first-run dialogs off.

Usage: /usr/bin/python3 tools/qgis_profile.py PROFILES_DIR WORKER_PYTHON   (prints the profile folder)
"""

from __future__ import annotations

import configparser
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    profiles, worker_python = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    profile = os.path.join(profiles, "profiles", "default")  # QGIS keeps profiles in PATH/profiles/NAME
    plugins = os.path.join(profile, "python", "plugins")
    os.makedirs(plugins, exist_ok=True)
    link = os.path.join(plugins, "earthgptx")
    if os.path.islink(link) or os.path.exists(link):
        os.remove(link)
    os.symlink(ROOT, link)
    ini_path = os.path.join(profile, "QGIS", "QGIS3.ini")
    os.makedirs(os.path.dirname(ini_path), exist_ok=True)
    ini = configparser.RawConfigParser()
    ini.optionxform = str
    ini.read(ini_path)
    for section, values in {
        "PythonPlugins": {"earthgptx": "true"},
        "earthgptx": {"worker_python": worker_python},
        "qgis": {"showTips318": "false", "checkVersion": "false", "allowVersionCheck": "false"},
        "core": {"NewsFeed\\httpsfeedqgisorg\\disabled": "true"},
    }.items():
        if not ini.has_section(section):
            ini.add_section(section)
        for key, value in values.items():
            ini.set(section, key, value)
    with open(ini_path, "w") as fh:
        ini.write(fh, space_around_delimiters=False)
    print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
