"""The plan of the worker's Python environment: where it goes (OUTSIDE the plugin folder, by default
``<QGIS settings dir>/earthgptx/worker-venv``: a plugin update replaces the plugin folder whole), which
base Python makes it (never QGIS's own on Windows and macOS), and the ordered commands that create or
update it (standard library only)."""

from __future__ import annotations

import ntpath
import os
import posixpath
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from . import QT_TRANSLATE_NOOP
from .requirements import MIN_PYTHON, WORKER_REQUIREMENTS
from .torch_choice import TorchChoice, no_window_flags

TR_CONTEXT = "EarthGPTX"  # a literal of this module: tools/i18n.py reads the context from here


class SetupPlanError(ValueError):
    """The environment cannot be planned as asked (folder inside the plugin, no base Python...)."""


def _path(platform: str):
    return ntpath if platform.startswith("win") else posixpath


def default_venv_dir(settings_dir: str, platform: str = sys.platform) -> str:
    """``<QGIS settings dir>/earthgptx/worker-venv``."""
    return _path(platform).join(settings_dir, "earthgptx", "worker-venv")


def worker_python(venv_dir: str, platform: str = sys.platform) -> str:
    """The interpreter of a virtual environment: ``Scripts\\python.exe`` on Windows, else ``bin/python``."""
    if platform.startswith("win"):
        return ntpath.join(venv_dir, "Scripts", "python.exe")
    return posixpath.join(venv_dir, "bin", "python")


def is_inside(path: str, folder: str, platform: str = sys.platform) -> bool:
    """Whether ``path`` is ``folder`` or below it (symbolic links resolved where they exist)."""
    p = _path(platform)
    real = os.path.realpath if p is os.path else (lambda x: x)
    a, b = p.normcase(p.normpath(real(path))), p.normcase(p.normpath(real(folder)))
    return a == b or a.startswith(b.rstrip(p.sep) + p.sep)


def _excluded_base(path: str) -> bool:
    low = path.replace("\\", "/").lower()
    # QGIS's own Python (OSGeo4W, QGIS.app) and the Microsoft Store stub that opens the Store
    return any(s in low for s in ("/qgis", "osgeo4w", "/windowsapps/"))


def find_base_python(platform: str = sys.platform, which: Callable[[str], Optional[str]] = shutil.which,
                     exists: Callable[[str], bool] = os.path.isfile,
                     run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Optional[str]:
    """A Python to make the worker environment with, never QGIS's own on Windows and macOS (its
    PYTHONHOME and DLLs belong to QGIS). Linux: Debian's /usr/bin/python3 is fine. None if none found."""
    if platform.startswith("win"):
        launcher = which("py")
        if launcher:
            try:
                r = run([launcher, "-3", "-c", "import sys; print(sys.executable)"], capture_output=True,
                        text=True, timeout=10, creationflags=no_window_flags(platform))
                found = r.stdout.strip() if r.returncode == 0 else ""
                if found and not _excluded_base(found):
                    return found
            except (OSError, subprocess.SubprocessError):
                pass
        candidates = [which("python3"), which("python")]
    elif platform == "darwin":
        candidates = ["/opt/homebrew/bin/python3", "/usr/local/bin/python3", which("python3"),
                      "/usr/bin/python3"]
    else:
        candidates = ["/usr/bin/python3", which("python3")]
    for c in candidates:
        if c and exists(c) and not _excluded_base(c):
            return c
    return None


@dataclass(frozen=True)
class Step:
    """One command of the setup: ``argv`` run in ``cwd`` with the environment of ``step_environment``
    plus ``env``; ``description`` (translatable, see ``QT_TRANSLATE_NOOP``) says what it does and
    ``hint`` what to do when it fails."""

    key: str
    description: str
    argv: Tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Optional[str] = None
    hint: str = ""


#: inherited variables that would point a child Python at QGIS's own Python (QGIS on Windows and
#: macOS sets PYTHONHOME and PYTHONPATH) or at another environment
_DROPPED_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONUSERBASE",
                "__PYVENV_LAUNCHER__", "VIRTUAL_ENV", "CONDA_PREFIX")


def step_environment(base_env: Mapping[str, str], step: Step) -> Dict[str, str]:
    """The environment of a step: ``base_env`` without QGIS's Python variables, unbuffered output,
    and the step's own variables."""
    env = {k: v for k, v in base_env.items() if k.upper() not in _DROPPED_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(step.env)
    return env


_CHECK_PYTHON = ("import sys; v = sys.version_info; "
                 "print('Python %d.%d.%d at %s' % (v[0], v[1], v[2], sys.executable)); "
                 "sys.exit(0 if v >= {min} else 'Python {need} or newer is needed for the worker')")


def diagnostics_step(python: str, plugin_dir: str, cwd: Optional[str] = None) -> Step:
    """``python -m model_backend.commands.diagnostics`` with ``model_backend`` (in ``plugin_dir``) importable."""
    return Step("diagnostics", QT_TRANSLATE_NOOP(TR_CONTEXT, "Run diagnostics"),
                (python, "-m", "model_backend.commands.diagnostics"), {"PYTHONPATH": plugin_dir}, cwd)


def build_steps(venv_dir: str, base_python: str, choice: TorchChoice, plugin_dir: str,
                platform: str = sys.platform, update: Optional[bool] = None) -> List[Step]:
    """The ordered commands that create (or, when its Python exists, update) the worker environment
    in ``venv_dir``, which must be outside ``plugin_dir``. Every command runs in the folder above the
    environment (never the plugin folder, whose files would shadow modules)."""
    p = _path(platform)
    if not venv_dir or not p.isabs(venv_dir):
        raise SetupPlanError(f"the worker environment needs an absolute folder, got {venv_dir!r}")
    if is_inside(venv_dir, plugin_dir, platform):
        raise SetupPlanError(f"the worker environment must be outside the plugin folder {plugin_dir} "
                             "(a plugin update replaces that folder): choose another folder")
    if not choice.installable:
        raise SetupPlanError(choice.reason)
    python = worker_python(venv_dir, platform)
    if update is None:
        update = os.path.isfile(python)
    cwd = p.dirname(p.normpath(venv_dir))
    pip = (python, "-m", "pip", "install")
    steps: List[Step] = []
    if not update:
        if not base_python:
            raise SetupPlanError("no Python found to make the worker environment with: install Python "
                                 f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer and choose it")
        steps.append(Step("check-python", QT_TRANSLATE_NOOP(TR_CONTEXT, "Check the base Python"),
                          (base_python, "-c", _CHECK_PYTHON.format(min=MIN_PYTHON, need="%d.%d" % MIN_PYTHON)),
                          cwd=cwd, hint=QT_TRANSLATE_NOOP(TR_CONTEXT, "Choose another base Python.")))
        steps.append(Step("create-venv", QT_TRANSLATE_NOOP(TR_CONTEXT, "Create the virtual environment"),
                          (base_python, "-m", "venv", venv_dir), cwd=cwd,
                          hint=QT_TRANSLATE_NOOP(TR_CONTEXT, "On Debian and Ubuntu, install the python3-venv "
                                                             "package (sudo apt install python3-venv).")))
    network_hint = QT_TRANSLATE_NOOP(TR_CONTEXT, "pip's message is at the end of the log; the most common cause is "
                                                 "the network (internet connection, proxy). Run Create / update "
                                                 "again once fixed: finished steps are then quick.")
    steps.append(Step("upgrade-pip", QT_TRANSLATE_NOOP(TR_CONTEXT, "Upgrade pip"),
                      pip + ("--upgrade", "pip"), cwd=cwd, hint=network_hint))
    index = ("--index-url", choice.index_url) if choice.index_url else ()
    steps.append(Step("install-torch", QT_TRANSLATE_NOOP(TR_CONTEXT, "Install PyTorch and torchvision (several GB)"),
                      pip + choice.torch_requirements + index, cwd=cwd, hint=network_hint))
    steps.append(Step("install-packages", QT_TRANSLATE_NOOP(TR_CONTEXT, "Install the worker packages"),
                      pip + WORKER_REQUIREMENTS, cwd=cwd, hint=network_hint))
    steps.append(diagnostics_step(python, plugin_dir, cwd))
    return steps
