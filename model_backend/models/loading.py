"""Loading a transformers VLM: where it comes from, on which device, in which precision, and whether
it fits (headless side; imports torch lazily so ``--help`` and the CLI stay fast).

Device and precision policy (``LoadPolicy``), announced through ``on_status``, never silent:

- ``device="auto"``: CUDA when ``torch.cuda.is_available()``, else Apple MPS, else the CPU.
- ``quantization="auto"``: on CUDA, bitsandbytes 4-bit NF4 with double quantization and bfloat16
  compute, the vision tower, projector and ``lm_head`` kept in bfloat16 (quantizing the vision tower
  breaks VLMs); on MPS and on the CPU, bfloat16 without quantization. bitsandbytes does not refuse
  4-bit on a CPU, so this code decides: ``quantization="4bit"`` on the CPU is allowed only when asked
  for explicitly (slow), and said so.
- Before loading, the memory the weights need is estimated from the configuration (no weights read)
  and compared with the free memory of the device; a model that does not fit is refused.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from ..core.engine_options import DEVICES, QUANTIZATIONS
from ..core.errors import InsufficientMemoryError, InvalidArgumentError, ModelNotFoundError
from ..core.families import Family, family

StatusCallback = Callable[[str], None]
#: modules kept unquantized in 4-bit: the vision tower (with its merger, the projector) and lm_head
SKIP_QUANTIZATION = ["visual", "lm_head"]
_GIB = 1024 ** 3
_RUNTIME_MARGIN_BYTES = int(0.5 * _GIB)   # activations, KV cache of one chip question, CUDA context
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit


@dataclass(frozen=True)
class LoadPolicy:
    device: str = "auto"
    quantization: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise InvalidArgumentError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.quantization not in QUANTIZATIONS:
            raise InvalidArgumentError(
                f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {self.quantization!r}")


@dataclass(frozen=True)
class LoadPlan:
    """What will be loaded where: device (``cuda:0``, ``mps``, ``cpu``), quantization (``4bit``,
    ``bf16``, ``fp32``), the estimate in bytes and the free memory it was checked against."""

    source: str
    model_id: str
    family: Family
    device: str
    quantization: str
    needed_bytes: int
    available_bytes: int
    announcement: str


def resolve_source(model: str, on_status: StatusCallback = lambda m: None,
                   cancel: Optional[threading.Event] = None) -> str:
    """A local folder holding the model: ``model`` itself when it is a folder, else the Hugging Face
    cache entry of hub id ``model``, downloaded when online: its size said first, then its progress
    through ``on_status`` (bytes of total, at most once a second); setting ``cancel`` stops the download
    (the files fetched stay in the cache, the next try resumes)."""
    if os.path.isdir(model):
        if not os.path.exists(os.path.join(model, "config.json")):
            raise ModelNotFoundError(f"{model} is a folder but holds no model (config.json is missing)")
        check_model_folder(model)
        return model
    if os.path.exists(model):
        raise ModelNotFoundError(f"{model} is a file; give the folder that holds the model's config.json")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        folder = snapshot_download(model, local_files_only=True)
    except HFValidationError:
        raise ModelNotFoundError(f"{model!r} is neither a model folder nor a Hugging Face model id") from None
    except Exception:  # not in the cache: download below
        folder = None
    if folder is None:
        if offline:
            raise ModelNotFoundError(_not_downloaded(model, "HF_HUB_OFFLINE is set"))
        try:
            to_fetch = sum(f.file_size or 0 for f in snapshot_download(model, dry_run=True) if f.will_download)
            size = f"{to_fetch / _GIB:.1f} GiB to fetch"
        except Exception:  # an older hub, or no answer to the listing: said without a size
            size = "several GB"
        on_status(f"Downloading {model} from the Hugging Face hub ({size}, once; it can be cancelled and resumes "
                  f"where it stopped)...")
        try:
            folder = snapshot_download(model, tqdm_class=download_reporter(model, on_status, cancel))
        except DownloadCancelled:
            raise InvalidArgumentError(f"the download of {model} was cancelled; what came is kept in the "
                                       f"Hugging Face cache and the next try goes on from there") from None
        except Exception as exc:  # network, unknown repository, gated model
            raise ModelNotFoundError(_not_downloaded(model, str(exc).strip().splitlines()[0][:200])) from None
    check_model_folder(folder)
    return folder


class DownloadCancelled(Exception):
    """Raised from a download's progress when its ``cancel`` is set."""


def download_reporter(model: str, on_status: StatusCallback, cancel: Optional[threading.Event],
                      every_s: float = 1.0):
    """A tqdm class for ``snapshot_download``'s byte bars: says "Downloading MODEL: 1.20 of 8.00 GiB
    (15 %)" through ``on_status`` at most every ``every_s`` seconds, and raises ``DownloadCancelled``
    once ``cancel`` is set."""
    from tqdm import tqdm

    said = [0.0]

    class Reporter(tqdm):
        def __init__(self, *args, **kwargs):
            self.in_bytes, self.done = kwargs.get("unit") == "B", 0
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            shown = super().update(n)
            self.done += n or 0
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled()
            total, now = getattr(self, "total", None), time.monotonic()
            if self.in_bytes and total and now - said[0] >= every_s:
                said[0] = now
                on_status(f"Downloading {model}: {self.done / _GIB:.2f} of {total / _GIB:.2f} GiB "
                          f"({100.0 * self.done / total:.0f} %)")
            return shown

    return Reporter


def check_model_folder(folder: str) -> None:
    """Refuse, before anything is loaded, a model folder whose ``config.json`` does not parse, that has
    no weights, or whose weights are missing, unreadable or cut short (each safetensors header is read
    and its tensors' extent compared with the file's size; no tensor data is read)."""
    def broken(why: str) -> ModelNotFoundError:
        return ModelNotFoundError(f"the model in {folder} is incomplete or damaged: {why}; copy or download "
                                  f"it again")

    try:
        with open(os.path.join(folder, "config.json"), "rb") as f:
            config = json.loads(f.read().decode("utf-8"))
    except OSError as exc:
        raise broken(f"config.json cannot be read ({exc.strerror})") from None
    except (ValueError, RecursionError) as exc:
        raise broken(f"config.json is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise broken("config.json names no model_type")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        try:
            with open(index, "rb") as f:
                weight_map = json.loads(f.read().decode("utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
            if not all(isinstance(name, str) and name and os.path.basename(name) == name for name in shards):
                raise ValueError("shard names are not file names")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise broken("model.safetensors.index.json cannot be read as a weight index") from None
    else:
        shards = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
        if not shards and not any(n.startswith("pytorch_model") and n.endswith(".bin") for n in os.listdir(folder)):
            raise broken("it holds no weights (no *.safetensors or pytorch_model*.bin)")
    for shard in shards:
        why = _safetensors_problem(os.path.join(folder, shard))
        if why:
            raise broken(f"{shard} {why}")


def _safetensors_problem(path: str) -> Optional[str]:
    """Why the safetensors file at ``path`` cannot be loaded (missing, unreadable, header or data cut
    short), or None when its header is whole and its data as long as the header says."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return "is cut short (no header)"
            length = struct.unpack("<Q", head)[0]
            if length > size - 8 or length > _MAX_SAFETENSORS_HEADER:
                return "is cut short (its header is longer than the file)"
            header = json.loads(f.read(length).decode("utf-8"))
    except FileNotFoundError:
        return "is missing"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    except (ValueError, RecursionError):
        return "has a damaged header"
    if not isinstance(header, dict):
        return "has a damaged header"
    try:
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        return "has a damaged header"
    if 8 + length + end > size:
        return f"is cut short ({size} bytes, its header needs {8 + length + end})"
    return None


def stored_parameters(folder: str) -> int:
    """Parameters in the safetensors files of ``folder``, from their headers (no tensor data read)."""
    total = 0
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".safetensors")):
        with open(os.path.join(folder, name), "rb") as f:
            length = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(length).decode("utf-8"))
        for key, tensor in header.items():
            if key != "__metadata__":
                count = 1
                for n in tensor["shape"]:
                    count *= int(n)
                total += count
    return total


def _not_downloaded(model: str, why: str) -> str:
    return (f"model {model} is not downloaded and cannot be fetched ({why}). On a machine with internet run "
            f"`hf download {model} --local-dir {model.split('/')[-1]}`, copy that folder here and pass its "
            f"path as the model.")


def plan_load(source: str, policy: LoadPolicy, model_id: Optional[str] = None) -> LoadPlan:
    """Decide device and precision for the model in folder ``source`` and check that it fits."""
    from transformers import AutoConfig

    from . import earthgptx  # noqa: F401  registers the native EarthGPT-X (model_type "earthgptx")

    config = AutoConfig.from_pretrained(source)
    fam = family(getattr(config, "model_type", ""))
    device = choose_device(policy)
    quant = policy.quantization
    if quant == "auto":
        quant = "4bit" if device == "cuda" else "bf16"
    if quant == "4bit" and device == "mps":
        raise InvalidArgumentError("bitsandbytes 4-bit is not available on Apple MPS; choose bf16")
    device_name = "cuda:0" if device == "cuda" else device
    needed = estimate_bytes(config, quant)
    available = free_bytes(device_name)
    model_id = model_id or source
    announcement = _announce(model_id, device_name, quant, needed, policy)
    if needed > available:
        raise InsufficientMemoryError(
            f"{model_id} needs about {needed / _GIB:.1f} GiB on {device_name} in {quant}, but only "
            f"{available / _GIB:.1f} GiB is free: close other programs using that memory, choose a smaller "
            f"model, or another quantization")
    return LoadPlan(source, model_id, fam, device_name, quant, needed, available, announcement)


def choose_device(policy: LoadPolicy) -> str:
    """``cuda``, ``mps`` or ``cpu`` for ``policy.device`` (``auto``: the first available), refusing a
    device that is not there."""
    import torch

    device = policy.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("device cuda was chosen but PyTorch sees no CUDA GPU (torch.cuda.is_available() "
                                   "is False): check the NVIDIA driver and that a CUDA build of torch is installed")
    if device == "mps" and not _mps_available():
        raise InvalidArgumentError("device mps was chosen but Apple MPS is not available")
    return device


def _announce(model_id: str, device: str, quant: str, needed: int, policy: LoadPolicy) -> str:
    size = f"about {needed / _GIB:.1f} GiB"
    if device.startswith("cuda"):
        how = "4-bit NF4 (vision tower and lm_head in bfloat16)" if quant == "4bit" else quant
        return f"Loading {model_id} on {device} in {how}, {size}."
    why = "" if policy.device != "auto" else "No CUDA GPU found: "
    slow = " Answers will be slow on the CPU (minutes for a large model)." if device == "cpu" else ""
    if quant == "4bit":
        return f"{why}loading {model_id} on {device} with bitsandbytes CPU 4-bit, as asked, {size}.{slow}"
    return f"{why}loading {model_id} on {device} in {quant}, {size}.{slow}"


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def estimate_bytes(config, quant: str) -> int:
    """Bytes the weights take once loaded, from the configuration alone (meta-device model, no
    weights read), plus a fixed runtime margin. 4-bit: 0.5 byte per quantized Linear weight plus
    block scales (1/64 of it, double-quantized); the skipped modules and the rest in bfloat16."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    quantizable, other = _count_params(model, torch.nn.Linear, skip_modules(getattr(config, "model_type", "")))
    per_param = {"4bit": None, "bf16": 2.0, "fp32": 4.0}[quant]
    if per_param is None:
        weights = quantizable * 0.5 * (1 + 1 / 64) + other * 2.0
    else:
        weights = (quantizable + other) * per_param
    return int(weights) + _RUNTIME_MARGIN_BYTES


def skip_modules(model_type: str) -> list:
    """Modules kept unquantized in 4-bit: the vision side and ``lm_head`` (the native EarthGPT-X: its
    encoders, spatial-aware encoder, fusion and projector). The Qwen3.5 generation also keeps, in its
    Gated DeltaNet layers, the projections to the per-head decay and write strength (``in_proj_a``,
    ``in_proj_b``: a few thousand weights each, read by an exponential), and in its MoE layers the shared
    expert's one-output gate; the conv1d, ``A_log`` and ``dt_bias`` there are not Linear layers, never
    quantized, and the MoE experts are fused parameters, kept in bfloat16 (and counted so)."""
    if model_type == "earthgptx":
        from .earthgptx import SKIP_QUANTIZATION as EARTHGPTX_SKIP

        return list(EARTHGPTX_SKIP)
    if model_type in ("qwen3_5", "qwen3_5_moe"):
        return list(SKIP_QUANTIZATION) + ["in_proj_a", "in_proj_b", "shared_expert_gate"]
    return list(SKIP_QUANTIZATION)


def _count_params(model, linear_type, skip=None) -> Tuple[int, int]:
    """(parameters in quantizable Linear layers, all other parameters)."""
    skip = SKIP_QUANTIZATION if skip is None else skip
    quantizable = 0
    for name, module in model.named_modules():
        if isinstance(module, linear_type) and not any(s in name for s in skip):
            quantizable += sum(p.numel() for p in module.parameters(recurse=False))
    total = sum(p.numel() for p in model.parameters())
    return quantizable, total - quantizable


def free_bytes(device: str) -> int:
    """Free memory of ``device``: CUDA from the driver, otherwise the system's available RAM."""
    import torch

    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def load_model(plan: LoadPlan):
    """(model, processor) for a plan; the model in eval mode on its device."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    kwargs: Dict[str, object] = {}
    if plan.quantization == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            llm_int8_skip_modules=skip_modules(plan.family.name))
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = {"": plan.device}
    else:
        kwargs["dtype"] = torch.bfloat16 if plan.quantization == "bf16" else torch.float32
    try:
        if plan.family.name == "earthgptx":
            from .earthgptx import EarthGPTXProcessor

            processor = EarthGPTXProcessor.from_pretrained(plan.source)
        else:
            processor = AutoProcessor.from_pretrained(plan.source)
        model = AutoModelForImageTextToText.from_pretrained(plan.source, **kwargs)
    except (OSError, ValueError, KeyError) as exc:  # damaged files check_model_folder does not read
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(f"the model in {plan.source} cannot be loaded: {first}; copy or download it "
                                 f"again") from None
    if plan.quantization != "4bit":
        model.to(plan.device)
    model.eval()
    return model, processor
