"""The local engine: a transformers VLM (Qwen3-VL, Qwen2.5-VL) answering chip questions, streamed.

Visual prompts go in twice (EarthGPT-X's dual prompting): drawn as numbered marks on the chip and
written as coordinates in the family's convention (``model_backend.models.prompting``).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from ..core.encoding import Convention, CoordinateFrame, pad_to_aspect
from ..core.errors import InsufficientMemoryError
from ..core.interface import Answer, AnswerMeta, AskRequest
from .engine import Engine, TextCallback, finish_answer
from .loading import LoadPlan, LoadPolicy, StatusCallback, free_bytes, load_model, plan_load, resolve_source
from .prompting import build_prompt
from .thinking import ThinkingStream, prompt_opens_thinking


#: the most tiles ``batch_size_for`` puts in one ``generate`` (more adds latency, little throughput)
AUTO_BATCH_MAX = 16


class LocalEngine(Engine):
    """One model kept in memory. ``model``: a local folder or a Hugging Face hub id."""

    def __init__(self, model: str, policy: LoadPolicy = LoadPolicy(), on_status: StatusCallback = lambda m: None,
                 thinking: bool = False, cancel: Optional[threading.Event] = None):
        self.thinking = bool(thinking)
        source = resolve_source(model, on_status, cancel)   # ``cancel`` stops a download
        self.plan: LoadPlan = plan_load(source, policy, model_id=model)
        on_status(self.plan.announcement)
        started = time.perf_counter()
        self.model, self.processor = load_model(self.plan)
        self.load_seconds = time.perf_counter() - started
        self.family = self.plan.family
        self._tokenizer = self.processor.tokenizer
        missing = _missing_linear_attention_kernels(self.model.config)
        if missing:
            on_status(f"{', '.join(missing)} not installed: the linear-attention layers run their PyTorch code "
                      f"(correct, slower)")

    def describe(self) -> Dict[str, object]:
        return {"model_id": self.plan.model_id, "backend": "local", "family": self.family.name,
                "device": self.plan.device, "quantization": self.plan.quantization,
                "memory_estimate_gib": round(self.plan.needed_bytes / 1024 ** 3, 2),
                "load_seconds": round(self.load_seconds, 2)}

    def frame_for(self, width: int, height: int, image_width: Optional[int] = None,
                  image_height: Optional[int] = None) -> CoordinateFrame:
        """The coordinate frame of a ``width`` x ``height`` chip, given to the model as an image of
        ``image_width`` x ``image_height`` (default: the chip; larger when padded), as this model sees it."""
        iw, ih = image_width or width, image_height or height
        if self.family.convention is Convention.RESIZED_PIXELS:
            rw, rh = self._resized_size(iw, ih)
            return CoordinateFrame(Convention.RESIZED_PIXELS, width, height, rw, rh, iw, ih)
        return CoordinateFrame(self.family.convention, width, height, image_width=iw, image_height=ih)

    def _template_reads(self, variable: str) -> bool:
        """True when the processor's chat template mentions ``variable``."""
        template = getattr(self.processor, "chat_template", None) or ""
        if isinstance(template, dict):
            template = template.get("default", "")
        return variable in template

    def _resized_size(self, width: int, height: int):
        """The processor's resize of a chip (Qwen2.5-VL: multiples of patch x merge within its pixel range)."""
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        ip = self.processor.image_processor
        factor = ip.patch_size * ip.merge_size
        rh, rw = smart_resize(height, width, factor=factor, min_pixels=ip.size["shortest_edge"],
                              max_pixels=ip.size["longest_edge"])
        return rw, rh

    def _render(self, request: AskRequest):
        """(prompt text, marked image, frame) of ``request`` as this model reads it."""
        image = pad_to_aspect(request.image)  # a very elongated chip, padded to what the processor takes
        frame = self.frame_for(request.image.shape[1], request.image.shape[0], image.shape[1], image.shape[0])
        prompt = build_prompt(dataclasses.replace(request, image=image), self.family, frame)
        # thinking templates (Qwen3.5, Qwen3 Thinking) read enable_thinking; to the others it would be an
        # unknown processor keyword (transformers warns on every question)
        extra = {"enable_thinking": self.thinking} if self._template_reads("enable_thinking") else {}
        text = self.processor.apply_chat_template(prompt.messages, add_generation_prompt=True, tokenize=False,
                                                  **extra)
        return text, prompt.image, frame

    def encode(self, request: AskRequest):
        """(model inputs on the device, frame, opened): the processor's tensors for ``request``;
        ``opened``: the rendered prompt ends inside a ``<think>`` block."""
        from PIL import Image

        text, image, frame = self._render(request)
        if self.family.name == "earthgptx":  # the native model also reads the prompts as a mask
            inputs = self.processor(text=[text], images=[image], prompts=[request.prompts], return_tensors="pt")
        else:
            inputs = self.processor(text=[text], images=[Image.fromarray(image)], return_tensors="pt")
        self._check_resize(inputs, 0, frame)
        return inputs.to(self.model.device), frame, prompt_opens_thinking(text)

    def _check_resize(self, inputs, row: int, frame: CoordinateFrame) -> None:
        if frame.convention is Convention.RESIZED_PIXELS:
            _, gh, gw = (int(v) for v in inputs["image_grid_thw"][row])
            patch = self.processor.image_processor.patch_size
            if (gw * patch, gh * patch) != (frame.resized_width, frame.resized_height):
                raise RuntimeError(f"processor resized the chip to {gw * patch}x{gh * patch}, "
                                   f"expected {frame.resized_width}x{frame.resized_height}")

    def batch_size_for(self, width: int, height: int, max_new_tokens: int, free: Optional[int] = None,
                       most: int = AUTO_BATCH_MAX) -> int:
        """Tiles of ``width`` x ``height`` chip pixels that one ``generate`` can take in ``free`` bytes
        (default: the device's free memory now, the model already loaded), keeping a fifth spare: 1
        to ``most``. The native EarthGPT-X answers one tile at a time (1)."""
        if self.family.name == "earthgptx":
            return 1
        free = free_bytes(self.plan.device) if free is None else free
        return max(1, min(most, int(0.8 * free // self.tile_bytes(width, height, max_new_tokens))))

    def tile_bytes(self, width: int, height: int, max_new_tokens: int) -> int:
        """A generous estimate of the memory one more tile adds to a batch, in bytes: the key/value
        cache of its tokens (image, about 256 of prompt, ``max_new_tokens``) in the full-attention
        layers, the fixed state of the linear-attention layers, the vision tower's activations (24
        hidden vectors per patch) and the language model's prefill (12 per token), and its logits."""
        config = self.model.config
        text = getattr(config, "text_config", config)
        vision = getattr(config, "vision_config", None)
        size = 4 if self.plan.quantization == "fp32" else 2
        ip = getattr(self.processor, "image_processor", None)
        patch = int(getattr(ip, "patch_size", None) or getattr(vision, "patch_size", 14) or 14)
        merge = int(getattr(ip, "merge_size", None) or getattr(vision, "spatial_merge_size", 2) or 2)
        if self.family.convention is Convention.RESIZED_PIXELS:
            width, height = self._resized_size(width, height)
        patches = math.ceil(width / patch) * math.ceil(height / patch)
        tokens = patches // (merge * merge) + 256 + int(max_new_tokens)
        layers = int(text.num_hidden_layers)
        types = list(getattr(text, "layer_types", None) or [])
        full = sum(t == "full_attention" for t in types) if types else layers
        heads = int(getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
        head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads)
        kv = 2 * full * heads * head_dim * size * tokens
        linear = (layers - full) * int(getattr(text, "linear_num_value_heads", 0) or 0) * \
            int(getattr(text, "linear_key_head_dim", 0) or 0) * int(getattr(text, "linear_value_head_dim", 0) or 0) * 4
        vision_hidden = int(getattr(vision, "hidden_size", 0) or 0)
        activations = 24 * patches * vision_hidden * size + 12 * tokens * int(text.hidden_size) * size
        return int(kv + linear + activations + 4 * int(text.vocab_size))

    def ask_batch(self, requests: Sequence[AskRequest], cancel: Optional[threading.Event] = None) -> List[Answer]:
        """Answers to ``requests`` from one ``generate`` over all of them (left padding; greedy, so each
        answer is the one ``ask`` gives alone). Not streamed; the native EarthGPT-X answers one by one."""
        from PIL import Image

        if self.family.name == "earthgptx" or len(requests) == 1:
            return [self.ask(r, cancel=cancel) for r in requests]
        cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        rendered = [self._render(r) for r in requests]
        tokenizer = self.processor.tokenizer
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            inputs = self.processor(text=[t for t, _, _ in rendered],
                                    images=[Image.fromarray(i) for _, i, _ in rendered], padding=True,
                                    return_tensors="pt")
        finally:
            tokenizer.padding_side = side
        for row, (_, _, frame) in enumerate(rendered):
            self._check_resize(inputs, row, frame)
        inputs = inputs.to(self.model.device)
        width = int(inputs["input_ids"].shape[1])
        budget = max(r.max_new_tokens for r in requests)
        t1 = time.perf_counter()
        output = self._generate(inputs, budget, cancel, lower="--batch-size, the chip pixel budget")
        t2 = time.perf_counter()
        eos = self._eos()
        answers = []
        for row, (request, (text, _, frame)) in enumerate(zip(requests, rendered)):
            ids = output[row, width:].tolist()[:request.max_new_tokens]
            end = next((k for k, t in enumerate(ids) if t in eos), None)
            generated = ids if end is None else ids[:end + 1]
            finish = "cancelled" if cancel.is_set() else \
                "length" if end is None and len(generated) >= request.max_new_tokens else "stop"
            meta = AnswerMeta(model_id=self.plan.model_id, backend="local", quantization=self.plan.quantization,
                              device=self.plan.device, prompt_tokens=int(inputs["attention_mask"][row].sum()),
                              generated_tokens=len(generated), finish_reason=finish,
                              timings={"encode": (t1 - t0) / len(requests), "first_token": 0.0,
                                       "generate": (t2 - t1) / len(requests),
                                       "total": (time.perf_counter() - t0) / len(requests)})
            answers.append(finish_answer(self._tokenizer.decode(generated, skip_special_tokens=True), self.family,
                                         frame, meta, prompt_opens_thinking(text)))
        return answers

    def ask(self, request: AskRequest, on_text: Optional[TextCallback] = None,
            cancel: Optional[threading.Event] = None, on_reasoning: Optional[TextCallback] = None) -> Answer:
        cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        inputs, frame, opened = self.encode(request)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        split = ThinkingStream(on_text, on_reasoning, opened)
        streamer = _Streamer(self._tokenizer, split.feed)
        t1 = time.perf_counter()
        output = self._generate(inputs, request.max_new_tokens, cancel, streamer=streamer)
        t2 = time.perf_counter()
        split.close()
        generated = output[0, prompt_tokens:]
        eos = self._eos()
        if cancel.is_set():
            finish = "cancelled"
        elif len(generated) >= request.max_new_tokens and int(generated[-1]) not in eos:
            finish = "length"
        else:
            finish = "stop"
        text = self._tokenizer.decode(generated, skip_special_tokens=True)
        meta = AnswerMeta(model_id=self.plan.model_id, backend="local", quantization=self.plan.quantization,
                          device=self.plan.device, prompt_tokens=prompt_tokens, generated_tokens=int(len(generated)),
                          finish_reason=finish,
                          timings={"encode": t1 - t0, "first_token": (streamer.first_at or t2) - t1,
                                   "generate": t2 - t1, "total": time.perf_counter() - t0})
        return finish_answer(text, self.family, frame, meta, opened)

    def _generate(self, inputs, max_new_tokens: int, cancel: threading.Event, streamer=None,
                  lower: str = "the chip pixel budget"):
        """Greedy ``generate`` over ``inputs``, stopped by ``cancel``; a GPU out of memory becomes
        ``InsufficientMemoryError`` saying what to ``lower``."""
        try:
            with torch.inference_mode():
                return self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                           streamer=streamer, stopping_criteria=[_Cancelled(cancel)])
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise InsufficientMemoryError(f"the GPU ran out of memory while answering: lower {lower} or the "
                                          f"maximum new tokens, or close other GPU programs") from None

    def _eos(self) -> set:
        return set(_as_list(self.model.generation_config.eos_token_id))

    def close(self) -> None:
        import gc

        del self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _missing_linear_attention_kernels(config) -> list:
    """The optional kernels of Gated DeltaNet layers (Qwen3.5) that are not installed, for a model that
    has such layers. transformers would warn about each in the middle of the first answer (and of its
    stream); it is said once here instead, at load."""
    import importlib.util
    import logging

    text = getattr(config, "text_config", config)
    if "linear_attention" not in (getattr(text, "layer_types", None) or []):
        return []
    logging.getLogger("transformers.integrations.hub_kernels").setLevel(logging.ERROR)
    return [name for module, name in (("fla", "flash-linear-attention"), ("causal_conv1d", "causal-conv1d"))
            if importlib.util.find_spec(module) is None]


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class _Streamer(BaseStreamer):
    """A transformers streamer: decodes generated tokens as they come and
    hands the new text to ``on_text``; holds back a trailing incomplete UTF-8 character."""

    def __init__(self, tokenizer, on_text: Optional[TextCallback]):
        super().__init__()
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.ids = []
        self.sent = 0
        self.prompt_seen = False
        self.first_at: Optional[float] = None

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate first passes the prompt
            self.prompt_seen = True
            return
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.ids.extend(np.asarray(value.cpu()).reshape(-1).tolist())
        if self.on_text is not None:
            text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
            if not text.endswith("\ufffd") and len(text) > self.sent:
                self.on_text(text[self.sent:])
                self.sent = len(text)

    def end(self) -> None:
        if self.on_text is not None:
            text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
            if len(text) > self.sent:
                self.on_text(text[self.sent:])
                self.sent = len(text)


class _Cancelled(StoppingCriteria):
    """A stopping criterion that ends generation once ``event`` is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)
