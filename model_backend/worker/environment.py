"""What the worker's Python environment holds and what it can use: the report behind
``python -m model_backend.commands.diagnostics`` (run INSIDE the worker environment).

Reports Python; PyTorch (version, CUDA build, CUDA and MPS availability, each GPU with total and free
memory and whether the build has kernels for it); the NVIDIA driver (nvidia-smi); the packages the
worker needs (bitsandbytes, transformers, accelerate, rasterio, pyproj, shapely, numpy, ...) with their
versions, ``missing`` or the error they raise on import; the Hugging Face cache and the models in it;
free RAM and disk; and findings (what looks wrong, and what to do).

Every probe is guarded: a missing or broken package is reported, never a crash. The package probes
(torch and everything that loads native libraries) run in a child interpreter, so even a package that
kills the interpreter on import (a DLL clash, a bad CUDA install) is reported with what was being
imported. Standard library only at import time.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import warnings
from typing import Any, Callable, Dict, List, Optional

REPORT_VERSION = 1
#: (import name, distribution name), in probe order; torch is probed first in more detail
PACKAGES = [
    ("numpy", "numpy"), ("torchvision", "torchvision"), ("bitsandbytes", "bitsandbytes"),
    ("transformers", "transformers"), ("accelerate", "accelerate"), ("safetensors", "safetensors"),
    ("tokenizers", "tokenizers"), ("huggingface_hub", "huggingface_hub"), ("PIL", "pillow"),
    ("jinja2", "jinja2"), ("rasterio", "rasterio"), ("pyproj", "pyproj"), ("shapely", "shapely"),
    ("fiona", "fiona"), ("psutil", "psutil"),
]
PROBE_TIMEOUT_S = 300.0
_GIB = 1024 ** 3
_PROBING = "--- earthgptx diagnostics: probing "


# -- helpers ----------------------------------------------------------------------------------------
def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _guard(probe: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    try:
        return probe()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a probe reports, never crashes
        return {"status": "error", "error": _error_text(exc)}


def _dist_version(dist: str) -> Optional[str]:
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:  # noqa: BLE001
        return None


# -- package probes (child interpreter) -------------------------------------------------------------
def probe_package(module: str, dist: str) -> Dict[str, Any]:
    """``{"status": "ok", "version": ...}``, ``{"status": "missing"}`` or ``{"status": "error", ...}``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module or (exc.name or "").split(".")[0] == module:
            return {"status": "missing"}
        return {"status": "error", "error": _error_text(exc), "version": _dist_version(dist)}
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        return {"status": "error", "error": _error_text(exc), "version": _dist_version(dist)}
    version = getattr(mod, "__version__", None) or _dist_version(dist)
    return {"status": "ok", "version": str(version) if version is not None else None}


def arch_supported(capability: List[int], arch_list: List[str]) -> Optional[bool]:
    """Whether a build compiled for ``arch_list`` (``sm_86``, ``compute_90``...) runs on a GPU of
    compute ``capability``: SASS for sm_XY runs on sm_XZ with Z >= Y; PTX for compute_XY on any newer
    GPU. None when the list is empty (unknown)."""
    if not arch_list:
        return None
    major, minor = capability
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        digits = "".join(ch for ch in digits if ch.isdigit())
        if len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def probe_torch() -> Dict[str, Any]:
    try:
        import torch
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "torch":
            return {"status": "missing"}
        return {"status": "error", "error": _error_text(exc), "version": _dist_version("torch")}
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        return {"status": "error", "error": _error_text(exc), "version": _dist_version("torch")}
    info: Dict[str, Any] = {"status": "ok", "version": str(torch.__version__),
                            "cuda_build": getattr(torch.version, "cuda", None),
                            "hip_build": getattr(torch.version, "hip", None)}
    caught: List[str] = []
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        info["cuda_available"] = _safe(lambda: bool(torch.cuda.is_available()), False)
        info["device_count"] = _safe(lambda: int(torch.cuda.device_count()), 0) if info["cuda_available"] else 0
    caught.extend(str(r.message).strip().splitlines()[0][:300] for r in records if str(r.message).strip())
    info["arch_list"] = _safe(lambda: list(torch.cuda.get_arch_list()), [])
    info["cudnn"] = _safe(lambda: torch.backends.cudnn.version(), None)
    devices = []
    for i in range(info["device_count"]):
        devices.append(_guard(lambda i=i: _probe_device(torch, i, info["arch_list"])))
    info["devices"] = devices
    mps = getattr(torch.backends, "mps", None)
    info["mps_built"] = _safe(lambda: bool(mps and mps.is_built()), False)
    info["mps_available"] = _safe(lambda: bool(mps and mps.is_available()), False)
    info["threads"] = _safe(lambda: torch.get_num_threads(), None)
    info["warnings"] = sorted(set(caught))
    return info


def _safe(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except (Exception, SystemExit):  # noqa: BLE001
        return default


def _probe_device(torch, index: int, arch_list: List[str]) -> Dict[str, Any]:
    props = torch.cuda.get_device_properties(index)
    dev: Dict[str, Any] = {"status": "ok", "index": index, "name": props.name,
                           "capability": [props.major, props.minor], "total_bytes": int(props.total_memory)}
    try:
        free, total = torch.cuda.mem_get_info(index)
        dev["free_bytes"], dev["total_bytes"] = int(free), int(total)
    except Exception as exc:  # noqa: BLE001
        dev["free_bytes"] = None
        dev["error"] = _error_text(exc)
    dev["arch_supported"] = arch_supported([props.major, props.minor], arch_list)
    dev["bf16"] = _safe(lambda: bool(torch.cuda.is_bf16_supported()), None) if index == 0 else None
    return dev


def probe_packages(emit: Optional[Callable[[str, Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """torch and every package of ``PACKAGES`` (imports them: run in the child interpreter);
    ``emit(name, result)`` is called as each one is done."""
    result: Dict[str, Any] = {}
    probes = [("torch", probe_torch)] + [(d, lambda m=m, d=d: probe_package(m, d)) for m, d in PACKAGES]
    for name, probe in probes:
        if emit is not None:  # lets the parent tell this package's messages from earlier ones
            sys.stderr.write(_PROBING + name + "\n")
            sys.stderr.flush()
        result[name] = _guard(probe)
        if emit is not None:
            emit(name, result[name])
    return result


def _probe_names() -> List[str]:
    return ["torch"] + [d for _, d in PACKAGES]


def _run_probe_child(timeout: float = PROBE_TIMEOUT_S) -> Dict[str, Any]:
    """``probe_packages`` in a child interpreter, which prints one JSON line per package as it goes:
    a child that dies or hangs is reported against the package it was importing."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    flags = 0x08000000 if sys.platform.startswith("win") else 0  # CREATE_NO_WINDOW
    try:
        r = subprocess.run([sys.executable, "-m", "model_backend.commands.diagnostics", "--probe-packages"],
                           capture_output=True, text=True, encoding="utf-8", errors="replace", env=env,
                           timeout=timeout, creationflags=flags)
        out, err, code = r.stdout, r.stderr, r.returncode
        why = ("" if code == 0 else f"the interpreter exited with status {code}" if code > 0
               else f"the interpreter was killed by signal {-code}")
    except subprocess.TimeoutExpired as exc:
        dec = (lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or ""))
        out, err, why = dec(exc.stdout), dec(exc.stderr), f"the probe did not finish within {timeout:g} s"
    except OSError as exc:
        out, err, why = "", "", f"cannot start {sys.executable}: {exc.strerror}"
    report: Dict[str, Any] = {}
    for line in out.splitlines():
        try:
            item = json.loads(line)
            report[item["name"]] = item["result"]
        except (ValueError, KeyError, TypeError):
            continue
    pending = [n for n in _probe_names() if n not in report]
    if pending:
        lines = err.splitlines()
        marks = [i for i, ln in enumerate(lines) if ln.startswith(_PROBING)]
        tail = [ln for ln in lines[marks[-1] + 1 if marks else 0:] if ln.strip()][-4:]
        why = why or "the probe printed no result"
        detail = why + (": " + " | ".join(tail)[:600] if tail else "")
        report[pending[0]] = {"status": "error", "error": f"{detail} (while importing {pending[0]})"}
        for name in pending[1:]:
            report[name] = {"status": "unknown", "error": f"not probed: the probe stopped at {pending[0]}"}
    return {name: report[name] for name in _probe_names()}


# -- light probes (this interpreter) ----------------------------------------------------------------
def probe_python() -> Dict[str, Any]:
    return {"version": platform.python_version(), "implementation": platform.python_implementation(),
            "executable": sys.executable, "prefix": sys.prefix,
            "virtualenv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
            "platform": platform.platform(), "machine": platform.machine(), "bits": 64 if sys.maxsize > 2 ** 32 else 32}


def probe_model_backend() -> Dict[str, Any]:
    from .. import __version__
    from . import PROTOCOL_VERSION

    return {"version": __version__, "protocol": PROTOCOL_VERSION,
            "path": os.path.dirname(os.path.abspath(__file__))}


def probe_nvidia_driver(timeout: float = 10.0) -> Dict[str, Any]:
    smi = shutil.which("nvidia-smi")
    if smi is None and sys.platform.startswith("win"):
        known = (r"C:\Windows\System32\nvidia-smi.exe", r"C:\Program Files\NVIDIA Corporation\NVSMI\nvidia-smi.exe")
        smi = next((p for p in known if os.path.isfile(p)), None)
    if smi is None:
        if os.path.isfile("/proc/driver/nvidia/version"):
            with open("/proc/driver/nvidia/version", encoding="utf-8", errors="replace") as f:
                return {"status": "ok", "source": "/proc/driver/nvidia/version", "version": None,
                        "text": f.readline().strip()}
        return {"status": "missing"}
    flags = 0x08000000 if sys.platform.startswith("win") else 0  # CREATE_NO_WINDOW
    r = subprocess.run([smi, "--query-gpu=driver_version,name,memory.total", "--format=csv,noheader"],
                       capture_output=True, text=True, timeout=timeout, creationflags=flags)
    if r.returncode != 0:
        first = (r.stdout + r.stderr).strip().splitlines()
        return {"status": "error", "source": smi,
                "error": first[0][:300] if first else f"nvidia-smi exited with status {r.returncode}"}
    gpus = [[c.strip() for c in line.split(",")] for line in r.stdout.strip().splitlines() if line.strip()]
    return {"status": "ok", "source": smi, "version": gpus[0][0] if gpus else None,
            "gpus": [{"name": g[1] if len(g) > 1 else "", "memory": g[2] if len(g) > 2 else ""} for g in gpus]}


def hf_cache_dir() -> str:
    """The Hugging Face hub cache folder, as huggingface_hub resolves it (HF_HUB_CACHE, HF_HOME...)."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001
        pass
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return os.path.expanduser(os.environ["HUGGINGFACE_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def probe_hf_cache(path: Optional[str] = None, use_hub: bool = True) -> Dict[str, Any]:
    """The cached repositories (models first) with their size on disk; ``scan_cache_dir`` when
    huggingface_hub imports, else a walk of the ``models--org--name`` folders."""
    path = path or hf_cache_dir()
    info: Dict[str, Any] = {"status": "ok", "path": path, "exists": os.path.isdir(path), "repos": []}
    if not info["exists"]:
        return info
    info["disk_free_bytes"] = _safe(lambda: shutil.disk_usage(path).free, None)
    if use_hub:
        try:
            from huggingface_hub import scan_cache_dir

            scan = scan_cache_dir(path)
            info["method"] = "huggingface_hub.scan_cache_dir"
            repos = [{"repo_id": r.repo_id, "repo_type": r.repo_type, "size_bytes": int(r.size_on_disk),
                      "files": int(r.nb_files), "refs": sorted({ref for rev in r.revisions for ref in rev.refs})}
                     for r in scan.repos]
            info["repos"] = sorted(repos, key=lambda r: (r["repo_type"] != "model", r["repo_id"]))
            if scan.warnings:
                info["warnings"] = [_error_text(w) for w in scan.warnings[:5]]
            return info
        except Exception as exc:  # noqa: BLE001 - fall back to walking the folder
            info["scan_error"] = _error_text(exc)
    info["method"] = "folder walk"
    repos = []
    for entry in sorted(os.listdir(path)):
        kind, sep, rest = entry.partition("--")
        if not sep or kind not in ("models", "datasets", "spaces"):
            continue
        size = files = 0
        for root, _, names in os.walk(os.path.join(path, entry, "blobs")):
            for name in names:
                st = _safe(lambda: os.lstat(os.path.join(root, name)), None)
                if st is not None:
                    size, files = size + st.st_size, files + 1
        repos.append({"repo_id": rest.replace("--", "/"), "repo_type": kind[:-1], "size_bytes": size, "files": files,
                      "refs": sorted(_safe(lambda: os.listdir(os.path.join(path, entry, "refs")), []))})
    info["repos"] = sorted(repos, key=lambda r: (r["repo_type"] != "model", r["repo_id"]))
    return info


def probe_memory() -> Dict[str, Any]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return {"status": "ok", "method": "psutil", "total_bytes": int(vm.total), "available_bytes": int(vm.available)}
    except Exception:  # noqa: BLE001
        pass
    if os.path.isfile("/proc/meminfo"):
        values = {}
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    values[key] = int(parts[0]) * 1024
        return {"status": "ok", "method": "/proc/meminfo", "total_bytes": values.get("MemTotal"),
                "available_bytes": values.get("MemAvailable", values.get("MemFree"))}
    if sys.platform.startswith("win"):
        import ctypes

        class _Status(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                        ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                        ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                        ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                        ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

        status = _Status()
        status.dwLength = ctypes.sizeof(_Status)
        ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))
        return {"status": "ok", "method": "GlobalMemoryStatusEx", "total_bytes": int(status.ullTotalPhys),
                "available_bytes": int(status.ullAvailPhys)}
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"status": "ok", "method": "sysconf", "total_bytes": int(total), "available_bytes": None}


# -- report -----------------------------------------------------------------------------------------
def collect(packages: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The whole report as a JSON-ready dict. ``packages``: a ``probe_packages`` result to use instead
    of probing in a child interpreter."""
    report: Dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "python": _guard(probe_python),
        "model_backend": _guard(probe_model_backend),
    }
    pkgs = packages if packages is not None else _guard(_run_probe_child)
    report["torch"] = pkgs.pop("torch", {"status": "unknown"}) if "status" not in pkgs else pkgs
    report["packages"] = pkgs if "status" not in pkgs else {}
    report["nvidia_driver"] = _guard(probe_nvidia_driver)
    report["hf_cache"] = _guard(probe_hf_cache)
    report["memory"] = _guard(probe_memory)
    report["memory"]["disk_free_bytes"] = _safe(lambda: shutil.disk_usage(sys.prefix).free, None)
    report["findings"] = findings(report)
    return report


def findings(report: Dict[str, Any]) -> List[str]:
    """What looks wrong, each with what to do."""
    out: List[str] = []
    py = report.get("python", {})
    version = tuple(int(p) for p in str(py.get("version", "0.0")).split(".")[:2] if p.isdigit())
    if version and version < (3, 10):
        out.append(f"Python {py.get('version')} is too old for the worker: make the environment with Python 3.10 "
                   "or newer.")
    torch = report.get("torch", {})
    driver = report.get("nvidia_driver", {})
    if torch.get("status") == "missing":
        out.append("PyTorch is not installed: local models cannot run (create / update the worker environment).")
    elif torch.get("status") not in ("ok", None):
        out.append(f"PyTorch does not import ({torch.get('error', torch.get('status'))}): update the worker "
                   "environment.")
    else:
        gpu_driver = driver.get("status") == "ok"
        if gpu_driver and not torch.get("cuda_build"):
            out.append("An NVIDIA driver is present but this PyTorch is a CPU build: update the worker environment "
                       "to get a CUDA build.")
        elif torch.get("cuda_build") and gpu_driver and not torch.get("cuda_available"):
            which = f"driver {driver['version']}" if driver.get("version") else "driver"
            out.append(f"PyTorch {torch.get('version')} (CUDA {torch.get('cuda_build')}) cannot use the GPU: the "
                       f"NVIDIA {which} may be too old for CUDA {torch.get('cuda_build')}; update the driver or the worker "
                       "environment (it picks a CUDA build the driver supports).")
        for w in torch.get("warnings", []):
            out.append(f"PyTorch warned: {w}")
        for dev in torch.get("devices", []):
            if dev.get("arch_supported") is False:
                cc = ".".join(str(c) for c in dev.get("capability", []))
                out.append(f"This PyTorch build has no kernels for GPU {dev.get('index')} ({dev.get('name')}, compute "
                           f"capability {cc}): install a build that supports it (update the worker environment).")
        if not torch.get("cuda_available") and not torch.get("mps_available"):
            out.append("No GPU is usable: models run on the CPU (minutes per answer for a 4B model).")
    pk = report.get("packages", {})
    bnb = pk.get("bitsandbytes", {})
    if torch.get("cuda_available") and bnb.get("status") != "ok":
        out.append("bitsandbytes does not import: 4-bit quantization is unavailable on the GPU "
                   f"({bnb.get('error', bnb.get('status'))}).")
    missing = [name for name, p in pk.items() if p.get("status") == "missing" and name != "psutil"]
    if missing:
        out.append("Missing packages: " + ", ".join(missing) + " (create / update the worker environment).")
    broken = [f"{name} ({p.get('error')})" for name, p in pk.items() if p.get("status") == "error"]
    if broken:
        out.append("Packages that fail to import: " + "; ".join(broken) + ".")
    return out


def _size(n: Optional[float]) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GiB", _GIB), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _status(p: Dict[str, Any]) -> str:
    if p.get("status") == "ok":
        return str(p.get("version") or "ok")
    if p.get("status") == "missing":
        return "missing"
    version = f"{p['version']}, " if p.get("version") else ""
    return f"{p.get('status', 'error').upper()} ({version}{p.get('error', '')})"


def format_text(report: Dict[str, Any]) -> str:
    """The report as plain text (aligned, copyable into a bug report)."""
    lines: List[str] = []
    add = lines.append
    mb = report.get("model_backend", {})
    add(f"EarthGPT-X worker diagnostics (model_backend {mb.get('version', '?')}, protocol {mb.get('protocol', '?')}, "
        f"{report.get('created', '')})")
    py = report.get("python", {})
    add("")
    add("Python")
    add(f"  version          {py.get('version', '?')} ({py.get('implementation', '?')}, {py.get('bits', '?')}-bit)")
    add(f"  executable       {py.get('executable', '?')}")
    add(f"  platform         {py.get('platform', '?')}")
    add(f"  virtual env      {'yes' if py.get('virtualenv') else 'no'} ({py.get('prefix', '?')})")
    t = report.get("torch", {})
    add("")
    add("PyTorch")
    add(f"  torch            {_status(t)}")
    if t.get("status") == "ok":
        add(f"  CUDA build       {t.get('cuda_build') or 'none (CPU build)'}"
            + (f", cuDNN {t['cudnn']}" if t.get("cudnn") else ""))
        add(f"  CUDA available   {'yes' if t.get('cuda_available') else 'no'}")
        if t.get("arch_list"):
            add(f"  kernels for      {' '.join(t['arch_list'])}")
        for d in t.get("devices", []):
            if d.get("status") != "ok":
                add(f"  GPU              {_status(d)}")
                continue
            cc = ".".join(str(c) for c in d.get("capability", []))
            fits = {True: "", False: ", NO KERNELS IN THIS BUILD", None: ""}[d.get("arch_supported")]
            add(f"  GPU {d['index']:<12d} {d.get('name')} (compute capability {cc}{fits}): "
                f"{_size(d.get('total_bytes'))} total, {_size(d.get('free_bytes'))} free")
        mps = "available" if t.get("mps_available") else "built, not available" if t.get("mps_built") else "no"
        add(f"  MPS (Apple)      {mps}")
    drv = report.get("nvidia_driver", {})
    if drv.get("status") == "ok":
        text = drv.get("version") or drv.get("text", "")
        gpus = ", ".join(f"{g['name']} ({g['memory']})" for g in drv.get("gpus", []))
        add(f"  NVIDIA driver    {text}" + (f": {gpus}" if gpus else ""))
    else:
        add(f"  NVIDIA driver    {'not found (no nvidia-smi)' if drv.get('status') == 'missing' else _status(drv)}")
    add("")
    add("Packages")
    for name, p in report.get("packages", {}).items():
        add(f"  {name:<16} {_status(p)}")
    hf = report.get("hf_cache", {})
    add("")
    if hf.get("status") != "ok":
        add(f"Hugging Face cache: {_status(hf)}")
    else:
        state = "" if hf.get("exists") else " (does not exist yet: no model downloaded)"
        free = f", {_size(hf['disk_free_bytes'])} free on its disk" if hf.get("disk_free_bytes") is not None else ""
        add(f"Hugging Face cache {hf.get('path')}{state}{free}")
        repos = hf.get("repos", [])
        if hf.get("exists") and not repos:
            add("  (empty)")
        for r in repos:
            kind = "" if r.get("repo_type") == "model" else f" [{r.get('repo_type')}]"
            add(f"  {r['repo_id']:<44} {_size(r.get('size_bytes')):>10}  {r.get('files', '?')} files{kind}")
    m = report.get("memory", {})
    add("")
    add("Memory")
    if m.get("status") == "ok":
        add(f"  RAM              {_size(m.get('total_bytes'))} total, {_size(m.get('available_bytes'))} available")
    else:
        add(f"  RAM              {_status(m)}")
    add(f"  disk             {_size(m.get('disk_free_bytes'))} free for the environment")
    add("")
    found = report.get("findings", [])
    add("Findings" if found else "Findings: none")
    for f in found:
        add(f"  - {f}")
    return "\n".join(lines) + "\n"
