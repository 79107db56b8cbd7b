"""The segmentation engine: SAM 2.1 (default), SAM or SAM 3 through transformers, prompts in chip
pixels (and, with SAM 3, noun phrases) to boolean masks of the chip's size, each with its score (headless
side; torch).

Loading follows the VLM rules (``loading``): a folder or hub id (offline message when missing), the
device from ``LoadPolicy`` (``auto``: CUDA, MPS, CPU), the precision (``auto``: bfloat16 on CUDA,
float32 elsewhere; these models are small and never quantized to 4-bit), the memory the weights and one
image's activations need estimated from the configuration and refused when it does not fit. The image
is encoded once per ``segment`` call and the embeddings reused for every prompt on it. SAM 3 outlines a
phrase with its detector (``Sam3Model``) and drawn prompts with its tracker (``Sam3TrackerModel``, from
the same folder, loaded the first time prompts come and sharing the detector's image backbone).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.engine_options import DEFAULT_SEGMENTER
from ..core.errors import InsufficientMemoryError, InvalidArgumentError, ModelNotFoundError
from ..core.mask_prompts import MaskPrompt
from .loading import (LoadPolicy, StatusCallback, check_model_folder, choose_device, free_bytes, resolve_source,
                      stored_parameters)

#: model_type -> (model class, processor class) in transformers
CLASSES = {"sam2": ("Sam2Model", "Sam2Processor"), "sam": ("SamModel", "SamProcessor"),
           "sam3": ("Sam3Model", "Sam3Processor")}
#: model_type of a checkpoint -> its family (SAM 3's release is a ``sam3_video`` checkpoint; its image
#: detector, ``Sam3Model``, loads from it)
FAMILY_OF = {"sam2": "sam2", "sam": "sam", "sam3": "sam3", "sam3_video": "sam3"}
_GIB = 1024 ** 3
#: one image's activations through the encoder at its input size (1024x1024 for the released models)
#: and the CUDA context: a generous fixed margin
_ACTIVATION_MARGIN_BYTES = int(0.75 * _GIB)


@dataclass
class Mask:
    """One outline's raster: ``mask`` bool (H, W) in chip pixels, ``score`` the model's predicted IoU
    (0..1), and the prompt it answers (``prompt``; for a phrase, ``rank`` orders its instances)."""

    mask: np.ndarray
    score: float
    prompt: MaskPrompt


@dataclass(frozen=True)
class SegmenterPlan:
    """What is loaded where: ``family`` (``sam2``, ``sam``, ``sam3``), device, precision (``bf16``,
    ``fp32``), the memory estimate in bytes and the free memory it was checked against."""

    source: str
    model_id: str
    family: str
    device: str
    precision: str
    needed_bytes: int
    available_bytes: int
    announcement: str


def segmenter_family(folder: str) -> Optional[str]:
    """The family (``sam2``, ``sam``, ``sam3``) of the model in ``folder`` from its config.json alone, or
    None for a model that is not a segmenter."""
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            return FAMILY_OF.get(json.load(f).get("model_type"))
    except (OSError, ValueError, AttributeError):
        return None


def plan_segmenter(source: str, policy: LoadPolicy, model_id: Optional[str] = None) -> SegmenterPlan:
    """Decide device and precision for the segmenter in folder ``source`` and check that it fits."""
    from transformers import AutoConfig

    model_id = model_id or source
    config = AutoConfig.from_pretrained(source)
    kind = FAMILY_OF.get(getattr(config, "model_type", ""))
    if kind is None:
        raise InvalidArgumentError(f"{model_id} is a {getattr(config, 'model_type', '') or 'unknown'} model, not a "
                                   f"segmentation model: choose "
                                   f"SAM 2.1 (default {DEFAULT_SEGMENTER}), SAM or SAM 3")
    device = choose_device(policy)
    precision = policy.quantization
    if precision == "auto":
        precision = "bf16" if device == "cuda" else "fp32"
    if precision == "4bit":
        raise InvalidArgumentError("segmentation models are small and are not quantized to 4-bit: choose bf16 or fp32")
    device_name = "cuda:0" if device == "cuda" else device
    needed = estimate_segmenter_bytes(source, precision)
    available = free_bytes(device_name)
    if needed > available:
        raise InsufficientMemoryError(
            f"{model_id} needs about {needed / _GIB:.1f} GiB on {device_name} in {precision}, but only "
            f"{available / _GIB:.1f} GiB is free: close other programs using that memory or choose a smaller "
            f"segmenter (e.g. facebook/sam2.1-hiera-tiny)")
    announcement = f"Loading the segmenter {model_id} on {device_name} in {precision}, about {needed / _GIB:.1f} GiB."
    return SegmenterPlan(source, model_id, kind, device_name, precision, needed, available, announcement)


def estimate_segmenter_bytes(source: str, precision: str) -> int:
    """Bytes the segmenter in folder ``source`` needs: its stored parameters (counted from the
    safetensors headers, no weights read) at the precision's size, plus a fixed margin for one image's
    activations and the runtime. For SAM 3 they hold the detector and the tracker's heads and neck; the
    tracker reuses the detector's backbone, so both loaded stay within the count."""
    return int(stored_parameters(source) * (2 if precision == "bf16" else 4)) + _ACTIVATION_MARGIN_BYTES


class SegmentEngine:
    """One segmenter kept in memory. ``model``: a local folder or a Hugging Face hub id."""

    def __init__(self, model: str = DEFAULT_SEGMENTER, policy: LoadPolicy = LoadPolicy(),
                 on_status: StatusCallback = lambda m: None):
        import torch
        import transformers

        self.source = resolve_source(model, on_status)
        self.plan = plan_segmenter(self.source, policy, model_id=model)
        self._on_status = on_status
        on_status(self.plan.announcement)
        started = time.perf_counter()
        self.dtype = torch.bfloat16 if self.plan.precision == "bf16" else torch.float32
        loaded, self.processor = self._load(*(getattr(transformers, name) for name in CLASSES[self.plan.family]))
        self.model = loaded.to(self.plan.device).eval()
        #: SAM 3's (Sam3TrackerModel, Sam3TrackerProcessor) for drawn prompts, loaded when the first come
        self.tracker: Optional[Tuple[Any, Any]] = None
        self.load_seconds = time.perf_counter() - started

    def _load(self, model_cls, processor_cls) -> Tuple[Any, Any]:
        """``model_cls`` (on the CPU, in the plan's precision) and ``processor_cls`` from the folder, a
        broken folder said in one line."""
        try:
            check_model_folder(self.source)
            return model_cls.from_pretrained(self.source, dtype=self.dtype), processor_cls.from_pretrained(self.source)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ModelNotFoundError(f"the segmenter in {self.source} cannot be loaded: {first}; copy or download "
                                     f"it again") from None

    @property
    def family(self) -> str:
        return self.plan.family

    @property
    def takes_phrases(self) -> bool:
        """True for SAM 3, which finds every instance of a noun phrase."""
        return self.plan.family == "sam3"

    def describe(self) -> Dict[str, object]:
        return {"model_id": self.plan.model_id, "family": self.plan.family, "device": self.plan.device,
                "precision": self.plan.precision, "memory_estimate_gib": round(self.plan.needed_bytes / _GIB, 2),
                "load_seconds": round(self.load_seconds, 2)}

    def segment(self, image: np.ndarray, prompts: Sequence[MaskPrompt], phrase: Optional[str] = None,
                threshold: float = 0.5) -> List[Mask]:
        """Masks of ``image`` (uint8 (H, W, 3)) for each of ``prompts`` (chip pixels), the image encoded
        once; then, with SAM 3, the instances of ``phrase`` whose score reaches ``threshold`` (ranked by
        score). A lone point asks for three candidate masks and keeps the best scored (a point is
        ambiguous: a car or the car park)."""
        phrase = (phrase or "").strip()
        if phrase and not self.takes_phrases:
            raise InvalidArgumentError(f"{self.plan.model_id} ({self.family}) outlines prompts only; a phrase needs "
                                       f"a SAM 3 model")
        masks = self._prompted(image, prompts) if prompts else []
        return masks + self._phrase(image, phrase, threshold) if phrase else masks

    def _prompter(self) -> Tuple[Any, Any]:
        """The model and processor that answer drawn prompts: the engine's own, or SAM 3's tracker, loaded
        on the first call with the detector's backbone in place of its copy (the same weights)."""
        if not self.takes_phrases:
            return self.model, self.processor
        if self.tracker is None:
            import transformers

            self._on_status(f"Loading the tracker of {self.plan.model_id} for drawn prompts.")
            tracker, processor = self._load(transformers.Sam3TrackerModel, transformers.Sam3TrackerProcessor)
            tracker.vision_encoder.backbone = self.model.vision_encoder.backbone
            self.tracker = (tracker.to(self.plan.device).eval(), processor)
        return self.tracker

    def _prompted(self, image: np.ndarray, prompts: Sequence[MaskPrompt]) -> List[Mask]:
        """One mask per prompt, the best scored of its candidates, the image encoded once."""
        import torch

        model, processor = self._prompter()
        inputs = processor(images=image, return_tensors="pt")
        masks = []
        with torch.inference_mode():
            embeddings = self._oom_guard(lambda: model.get_image_embeddings(
                inputs["pixel_values"].to(self.plan.device, self.dtype)))
            for p in prompts:
                several = p.box is None and len(p.points) == 1
                out = model(image_embeddings=embeddings, multimask_output=several,
                            **self._prompt_tensors(processor, image, inputs, p))
                extra = (inputs["reshaped_input_sizes"],) if self.family == "sam" else ()
                found = processor.post_process_masks(out.pred_masks.float().cpu(), inputs["original_sizes"],
                                                     *extra)[0][0]          # (candidates, H, W)
                scores = out.iou_scores[0, 0].float().cpu()
                best = int(torch.argmax(scores))
                masks.append(Mask(found[best].numpy().astype(bool), float(scores[best]), p))
        return masks

    def _prompt_tensors(self, processor, image: np.ndarray, inputs, p: MaskPrompt) -> Dict[str, object]:
        """One object's prompt as the model's tensors, rescaled by ``processor`` to its input size
        (nesting: image, object, point, xy)."""
        kwargs: Dict[str, object] = {}
        if p.points:
            kwargs.update(input_points=[[[list(pt) for pt in p.points]]], input_labels=[[list(p.labels)]])
        if p.box is not None:
            kwargs["input_boxes"] = [[list(p.box)]]
        if self.family == "sam":   # SamProcessor rescales prompts from the image it is given
            encoded = processor(images=image, return_tensors="pt", **kwargs)
        else:
            encoded = processor(original_sizes=inputs["original_sizes"], return_tensors="pt", **kwargs)
        out = {}
        for key in ("input_points", "input_labels", "input_boxes"):
            if key in encoded:
                value = encoded[key].to(self.plan.device)
                out[key] = value.to(self.dtype) if key != "input_labels" else value
        return out

    def _phrase(self, image: np.ndarray, phrase: str, threshold: float) -> List[Mask]:
        """SAM 3: every instance of ``phrase`` scoring at least ``threshold``, best first."""
        import torch

        inputs = self.processor(images=image, text=phrase, return_tensors="pt")
        with torch.inference_mode():
            pixels = inputs["pixel_values"].to(self.plan.device, self.dtype)
            out = self._oom_guard(lambda: self.model(pixel_values=pixels,
                                                     input_ids=inputs["input_ids"].to(self.plan.device),
                                                     attention_mask=inputs["attention_mask"].to(self.plan.device)))
        found = self.processor.post_process_instance_segmentation(
            out, threshold=threshold, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist())[0]
        order = torch.argsort(found["scores"].float(), descending=True).tolist()
        return [Mask(found["masks"][k].cpu().numpy().astype(bool), float(found["scores"][k]),
                     MaskPrompt("phrase", rank, label=phrase)) for rank, k in enumerate(order, start=1)]

    def _oom_guard(self, run):
        """``run()``, a GPU out of memory said in one line."""
        import torch

        try:
            return run()
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise InsufficientMemoryError("the GPU ran out of memory while encoding the chip: lower the chip pixel "
                                          "budget, choose a smaller segmenter or close other GPU programs") from None

    def close(self) -> None:
        import gc

        import torch

        del self.model
        self.tracker = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
