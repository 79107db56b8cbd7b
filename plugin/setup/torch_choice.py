"""The NVIDIA driver and GPUs of this machine, and the PyTorch build that fits them (standard library only).

Choice of the PyTorch build (``choose_torch``):

- An NVIDIA driver is found with ``nvidia-smi`` (``detect_nvidia``). Each CUDA build of PyTorch needs a
  minimum driver (NVIDIA's CUDA toolkit release notes, "CUDA Toolkit and Corresponding Driver
  Versions", GA releases, Linux / Windows):

  ========  =============  ===========  ===========================  ==========================
  build     CUDA           Linux        Windows                      compute capability (GPUs)
  ========  =============  ===========  ===========================  ==========================
  cu130     13.0           580.65.06    580.88                       7.5 (Turing) and newer
  cu128     12.8           570.26       570.65                       7.0 (Volta) to 12.x
  cu126     12.6           560.28.03    560.76                       5.0 (Maxwell) to 9.0
  ========  =============  ===========  ===========================  ==========================

  The newest build that the driver supports and that has kernels for GPU 0 (the worker's
  ``cuda:0``) wins. A driver older than all of them but at least 525.60.13 (Linux) / 527.41
  (Windows) still runs CUDA 12 builds through CUDA's minor-version compatibility: the oldest CUDA 12
  build that fits the GPU is chosen and a driver update is recommended. Older drivers, and GPUs no
  build has kernels for, get the CPU build.
- No usable NVIDIA driver (Linux, Windows): the CPU build from https://download.pytorch.org/whl/cpu
  (PyPI's default torch on Linux is a multi-GB CUDA build).
- macOS: PyTorch from PyPI (it includes MPS for Apple silicon GPUs). PyTorch publishes no wheels for
  Intel Macs any more: there the environment cannot be made (use a remote engine).

``TORCH_CUDA_BUILDS`` lists the builds published for ``TORCH_REQUIREMENTS``' version (2.14.1's default
build on PyPI is cu130, with kernels sm_75 to sm_120). Update the table with the pin.
"""

from __future__ import annotations

import csv
import os
import platform as _platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Tuple

from . import QT_TRANSLATE_NOOP
from .requirements import CPU_INDEX_URL, PYTORCH_INDEX, TORCH_REQUIREMENTS, TORCH_VERSION

TR_CONTEXT = "EarthGPTX"  # a literal of this module: tools/i18n.py reads the context from here


@dataclass(frozen=True)
class CudaBuild:
    tag: str                        # cu128: index https://download.pytorch.org/whl/cu128
    cuda: str                       # CUDA version of the build, "12.8"
    min_driver_linux: Tuple[int, ...]
    min_driver_windows: Tuple[int, ...]
    min_capability: Tuple[int, int]
    max_capability: Optional[Tuple[int, int]]  # None: up to the newest GPUs known

    @property
    def index_url(self) -> str:
        return PYTORCH_INDEX + self.tag

    def min_driver(self, platform: str) -> Tuple[int, ...]:
        return self.min_driver_windows if platform.startswith("win") else self.min_driver_linux

    def supports(self, capability: Optional[Tuple[int, int]]) -> bool:
        if capability is None:
            return True
        # kernels for sm_XY also run on sm_XZ, Z >= Y (CUDA binary compatibility within a major version)
        return capability >= self.min_capability and (
            self.max_capability is None or capability[0] <= self.max_capability[0])


#: newest first
TORCH_CUDA_BUILDS = (
    CudaBuild("cu130", "13.0", (580, 65, 6), (580, 88), (7, 5), None),
    CudaBuild("cu128", "12.8", (570, 26), (570, 65), (7, 0), (12, 0)),
    CudaBuild("cu126", "12.6", (560, 28, 3), (560, 76), (5, 0), (9, 0)),
)
#: oldest drivers that run any CUDA 12.x build through minor-version compatibility
CUDA12_COMPAT_DRIVER = {"linux": (525, 60, 13), "win32": (527, 41)}


# -- NVIDIA driver ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class NvidiaGpu:
    name: str
    memory_mib: Optional[int]
    compute_capability: Optional[Tuple[int, int]] = None

    def describe(self) -> str:
        mem = f", {self.memory_mib / 1024:.0f} GiB" if self.memory_mib else ""
        cc = (f", compute capability {self.compute_capability[0]}.{self.compute_capability[1]}"
              if self.compute_capability else "")
        return f"{self.name}{mem}{cc}"


@dataclass(frozen=True)
class NvidiaInfo:
    driver_version: str             # as nvidia-smi prints it: "570.133.07"
    gpus: Tuple[NvidiaGpu, ...]

    @property
    def driver(self) -> Tuple[int, ...]:
        return parse_driver_version(self.driver_version)


NVIDIA_QUERY_FIELDS = ("driver_version,name,memory.total,compute_cap", "driver_version,name,memory.total")


def parse_driver_version(text: str) -> Tuple[int, ...]:
    """``"570.133.07"`` -> ``(570, 133, 7)``; ``"560.94"`` -> ``(560, 94)``; ``()`` when unreadable."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text or "")
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def parse_nvidia_smi(text: str) -> Optional[NvidiaInfo]:
    """Read ``nvidia-smi --query-gpu=driver_version,name,memory.total[,compute_cap]
    --format=csv,noheader`` output (one line per GPU); None when it lists no GPU."""
    gpus: List[NvidiaGpu] = []
    driver = ""
    for row in csv.reader((text or "").splitlines(), skipinitialspace=True):
        row = [c.strip() for c in row]
        if len(row) < 3 or not parse_driver_version(row[0]) or not row[1]:
            continue  # error messages ("NVIDIA-SMI has failed ...", "No devices were found")
        driver = driver or row[0]
        mem = re.match(r"(\d+)", row[2])
        cc = re.match(r"(\d+)\.(\d+)", row[3]) if len(row) > 3 else None
        gpus.append(NvidiaGpu(row[1], int(mem.group(1)) if mem else None,
                              (int(cc.group(1)), int(cc.group(2))) if cc else None))
    return NvidiaInfo(driver, tuple(gpus)) if gpus else None


def find_nvidia_smi(platform: str = sys.platform, which: Callable[[str], Optional[str]] = shutil.which,
                    exists: Callable[[str], bool] = os.path.isfile) -> Optional[str]:
    """Path of nvidia-smi, also where QGIS was started with a short PATH; None on macOS."""
    if platform == "darwin":
        return None
    found = which("nvidia-smi")
    if found:
        return found
    if platform.startswith("win"):
        candidates = [r"C:\Windows\System32\nvidia-smi.exe",
                      r"C:\Program Files\NVIDIA Corporation\NVSMI\nvidia-smi.exe"]
    else:
        candidates = ["/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi", "/usr/lib/wsl/lib/nvidia-smi"]
    return next((c for c in candidates if exists(c)), None)


def nvidia_query_argvs(smi: str) -> List[List[str]]:
    """Queries to try in order: with compute_cap first (drivers before ~510 reject that field)."""
    return [[smi, f"--query-gpu={fields}", "--format=csv,noheader"] for fields in NVIDIA_QUERY_FIELDS]


def no_window_flags(platform: str = sys.platform) -> int:
    """subprocess creationflags that keep a console window from flashing up from QGIS on Windows."""
    return 0x08000000 if platform.startswith("win") else 0  # CREATE_NO_WINDOW


def detect_nvidia(timeout: float = 10.0, platform: str = sys.platform,
                  run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                  smi: Optional[str] = None) -> Optional[NvidiaInfo]:
    """The NVIDIA driver and GPUs from nvidia-smi; None when there is no nvidia-smi, it fails or it
    times out. Blocks up to ``timeout`` seconds per query: the dialog runs the same queries with
    QProcess instead."""
    smi = smi or find_nvidia_smi(platform)
    if not smi:
        return None
    for argv in nvidia_query_argvs(smi):
        try:
            result = run(argv, capture_output=True, text=True, timeout=timeout,
                         creationflags=no_window_flags(platform))
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
        if result.returncode == 0:
            return parse_nvidia_smi(result.stdout)
    return None


# -- PyTorch build ---------------------------------------------------------------------------------
REASONS = {
    "cuda": QT_TRANSLATE_NOOP(
        TR_CONTEXT, "NVIDIA driver {driver} supports CUDA {cuda}: PyTorch's {build} build, for {gpu}."),
    "cuda-compat": QT_TRANSLATE_NOOP(
        TR_CONTEXT, "NVIDIA driver {driver} is older than the {minimum} that CUDA {cuda} asks for, but runs "
                    "CUDA 12 builds through minor-version compatibility: PyTorch's {build} build, for {gpu}. "
                    "Updating the driver is recommended."),
    "no-driver": QT_TRANSLATE_NOOP(
        TR_CONTEXT, "No NVIDIA driver found: PyTorch's CPU build. Answers will be slow on the CPU."),
    "driver-too-old": QT_TRANSLATE_NOOP(
        TR_CONTEXT, "NVIDIA driver {driver} is too old for the CUDA builds of PyTorch {torch}: PyTorch's CPU "
                    "build. Update the driver to {minimum} or newer to use {gpu}."),
    "gpu-unsupported": QT_TRANSLATE_NOOP(
        TR_CONTEXT, "The CUDA builds of PyTorch {torch} have no kernels for {gpu}: PyTorch's CPU build."),
    "macos-arm": QT_TRANSLATE_NOOP(
        TR_CONTEXT, "macOS on Apple silicon: PyTorch from PyPI, which uses the GPU through Metal (MPS)."),
    "macos-intel": QT_TRANSLATE_NOOP(
        TR_CONTEXT, "macOS on an Intel Mac: PyTorch {torch} publishes no build for it, so the worker "
                    "environment cannot be made here. Use a remote engine instead."),
}


@dataclass(frozen=True)
class TorchChoice:
    """Which PyTorch to install. ``build``: ``cu128``..., ``cpu`` or ``pypi``; ``index_url`` None for
    PyPI; ``device`` the worker will use (``cuda``, ``mps``, ``cpu``); ``reason_key`` a key of
    ``REASONS`` formatted with ``reason_args``; ``installable`` False where no build exists."""

    build: str
    index_url: Optional[str]
    device: str
    reason_key: str
    reason_args: Mapping[str, str] = field(default_factory=dict)
    installable: bool = True

    @property
    def reason(self) -> str:
        return REASONS[self.reason_key].format(**self.reason_args)

    @property
    def torch_requirements(self) -> Tuple[str, ...]:
        """Pins with the build's local label (``torch==2.14.1+cu128``) when installing from PyTorch's
        index, so that an update also switches an installed build of the same version (a CPU build
        after a new GPU, say)."""
        if self.index_url is None:
            return TORCH_REQUIREMENTS
        return tuple(f"{r}+{self.build}" for r in TORCH_REQUIREMENTS)


def _driver_text(version: Tuple[int, ...]) -> str:
    return ".".join(f"{p:02d}" if i == 2 else str(p) for i, p in enumerate(version))


def choose_torch(nvidia: Optional[NvidiaInfo], platform: str = sys.platform,
                 machine: Optional[str] = None) -> TorchChoice:
    """The PyTorch build for this machine (see the module's table)."""
    machine = (machine if machine is not None else _platform.machine()).lower()
    if platform == "darwin":
        if machine in ("arm64", "aarch64"):
            return TorchChoice("pypi", None, "mps", "macos-arm")
        return TorchChoice("pypi", None, "cpu", "macos-intel", {"torch": TORCH_VERSION}, installable=False)
    cpu = lambda key, **args: TorchChoice("cpu", CPU_INDEX_URL, "cpu", key,  # noqa: E731
                                          {"torch": TORCH_VERSION, **args})
    if nvidia is None or not nvidia.gpus or not nvidia.driver:
        return cpu("no-driver")
    gpu = nvidia.gpus[0]
    cc = gpu.compute_capability
    fitting = [b for b in TORCH_CUDA_BUILDS if b.supports(cc)]
    gpu_text = gpu.name + (f" (compute capability {cc[0]}.{cc[1]})" if cc else "")
    if not fitting:
        return cpu("gpu-unsupported", gpu=gpu_text)
    os_key = "win32" if platform.startswith("win") else "linux"
    args = {"driver": nvidia.driver_version, "gpu": gpu_text, "torch": TORCH_VERSION}
    for build in fitting:
        if nvidia.driver >= build.min_driver(platform):
            return TorchChoice(build.tag, build.index_url, "cuda", "cuda", {**args, "cuda": build.cuda,
                                                                            "build": build.tag})
    cuda12 = [b for b in fitting if b.cuda.startswith("12.")]
    if cuda12 and nvidia.driver >= CUDA12_COMPAT_DRIVER[os_key]:
        build = cuda12[-1]
        return TorchChoice(build.tag, build.index_url, "cuda", "cuda-compat",
                           {**args, "cuda": build.cuda, "build": build.tag,
                            "minimum": _driver_text(build.min_driver(platform))})
    return cpu("driver-too-old", driver=nvidia.driver_version, gpu=gpu_text,
               minimum=_driver_text(fitting[0].min_driver(platform)))
