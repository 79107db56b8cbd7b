"""EarthGPT-X processor: chip + visual prompts + text -> model tensors (DESIGN §2, §6).

Geometry (``Convention.SQUARE_UNIT``): a W x H chip is padded to a square of side D = max(W, H),
centred (offsets (D - W) / 2 and (D - H) / 2, possibly half pixels), and that square is resized to
S x S (S = ``image_size``). Chip pixel (x, y) lands at output pixel ((x + (D - W) / 2) * S / D,
(y + (D - H) / 2) * S / D), i.e. at square-unit coordinate (x + (D - W) / 2) / D: the same numbers the
text uses. The prompt masks are rendered in that same S x S geometry with ``marks.prompt_mask``.

Outputs (``__call__``): ``input_ids`` / ``attention_mask`` (B, L), ``pixel_values`` (B, 3, S, S) float32
normalised with ``image_mean`` / ``image_std``, ``prompt_masks`` (B, P, S, S) float32 (channel k: prompt
index k + 1). Each ``<image>`` in the text becomes ``num_visual_tokens`` image tokens.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...core.marks import default_line_width, default_point_radius, prompt_mask
from ...core.prompts import VisualPrompt

PROCESSOR_FILE = "earthgptx_processor.json"
IMAGE_TOKEN = "<image>"
#: the conversation format: Qwen/ChatML turns, the image placeholder first in the first user turn
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{- '<image>\\n' -}}{%- else -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
USER_PREFIX = "<|im_start|>user\n"
ASSISTANT_PREFIX = "<|im_start|>assistant\n"
TURN_END = "<|im_end|>\n"


def square_geometry(width: int, height: int, size: int) -> Tuple[float, float, float]:
    """(offset_x, offset_y, scale): output pixel = (chip pixel + offset) * scale."""
    side = float(max(width, height))
    return (side - width) / 2.0, (side - height) / 2.0, size / side


def pad_and_resize(image: np.ndarray, size: int, fill: Sequence[int]) -> np.ndarray:
    """(H, W, 3) uint8 chip -> (size, size, 3) uint8: centred on a ``fill`` square of side max(W, H), resized
    (bicubic) with exact half-pixel offsets."""
    from PIL import Image

    h, w = image.shape[:2]
    side = max(w, h)
    canvas = np.empty((side + 2, side + 2, 3), np.uint8)
    canvas[:] = np.asarray(fill, np.uint8)
    top, left = (side - h) // 2 + 1, (side - w) // 2 + 1
    canvas[top:top + h, left:left + w] = image[..., :3]
    x0 = left - (side - w) / 2.0
    y0 = top - (side - h) / 2.0
    out = Image.fromarray(canvas).resize((size, size), Image.Resampling.BICUBIC, box=(x0, y0, x0 + side, y0 + side))
    return np.asarray(out)


def square_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A (H, W) bool mask of the chip as (size, size) float32 in the model's square geometry (centred
    on an empty square of side max(W, H), like ``pad_and_resize``; an output pixel is inside when its
    centre falls on an inside chip pixel)."""
    h, w = mask.shape
    ox, oy, scale = square_geometry(w, h, size)
    centres = (np.arange(size) + 0.5) / scale
    cols = np.floor(centres - ox).astype(int)
    rows = np.floor(centres - oy).astype(int)
    inside_c, inside_r = (cols >= 0) & (cols < w), (rows >= 0) & (rows < h)
    out = np.zeros((size, size), np.float32)
    out[np.ix_(inside_r, inside_c)] = mask[np.ix_(rows[inside_r], cols[inside_c])]
    return out


def render_prompt_masks(prompts: Sequence[VisualPrompt], width: int, height: int, size: int,
                        max_prompts: int, masks: Optional[Dict[int, np.ndarray]] = None) -> np.ndarray:
    """(max_prompts, size, size) float32: channel k is 1 where prompt index k + 1 covers the output pixel.

    Prompts are in chip pixels of a ``width`` x ``height`` chip; points and scribbles keep the chip's
    default radius / stroke width, scaled to the output. ``masks``: mask prompts, index -> (height,
    width) bool mask of the chip, sampled into their channel as they are (a segmentation as prompt)."""
    for index, mask in (masks or {}).items():
        if mask.shape != (height, width):
            raise ValueError(f"mask prompt {index} is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}")
    ox, oy, scale = square_geometry(width, height, size)
    radius = default_point_radius(width, height) * scale
    stroke = default_line_width(width, height) * scale
    out = np.zeros((max_prompts, size, size), np.float32)
    for p in prompts:
        if not 1 <= p.index <= max_prompts:
            raise ValueError(f"prompt index {p.index} is outside 1..{max_prompts} (the model's max_prompts)")
        q = p.transformed(lambda xs, ys: ((np.asarray(xs) + ox) * scale, (np.asarray(ys) + oy) * scale))
        out[p.index - 1] = np.maximum(out[p.index - 1],
                                      prompt_mask([q.with_index(1)], size, size, max(radius, 0.5), max(stroke, 0.5)))
    for index, mask in (masks or {}).items():
        if not 1 <= index <= max_prompts:
            raise ValueError(f"prompt index {index} is outside 1..{max_prompts} (the model's max_prompts)")
        out[index - 1] = np.maximum(out[index - 1], square_mask(mask.astype(bool), size))
    return out


class EarthGPTXProcessor:
    """Tokenizer + image/prompt preprocessing. ``save_pretrained`` writes ``earthgptx_processor.json``
    and the tokenizer files; ``from_pretrained`` reads them back."""

    def __init__(self, tokenizer, image_size: int = 448, num_visual_tokens: int = 1220, max_prompts: int = 8,
                 image_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 image_std: Sequence[float] = (0.229, 0.224, 0.225), image_token: str = IMAGE_TOKEN,
                 chat_template: str = CHAT_TEMPLATE):
        self.tokenizer = tokenizer
        self.image_size = int(image_size)
        self.num_visual_tokens = int(num_visual_tokens)
        self.max_prompts = int(max_prompts)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.image_token = image_token
        self.chat_template = chat_template
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {image_token!r} token")

    # -- save / load --------------------------------------------------------------------------------
    def to_dict(self) -> Dict:
        return {"processor_class": type(self).__name__, "image_size": self.image_size,
                "num_visual_tokens": self.num_visual_tokens, "max_prompts": self.max_prompts,
                "image_mean": self.image_mean, "image_std": self.image_std, "image_token": self.image_token,
                "chat_template": self.chat_template}

    def save_pretrained(self, out_dir: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, PROCESSOR_FILE), "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
        self.tokenizer.save_pretrained(out_dir)

    @classmethod
    def from_pretrained(cls, path: str) -> "EarthGPTXProcessor":
        from transformers import AutoTokenizer

        with open(os.path.join(path, PROCESSOR_FILE), encoding="utf-8") as f:
            cfg = json.load(f)
        cfg.pop("processor_class", None)
        return cls(AutoTokenizer.from_pretrained(path), **cfg)

    # -- text ---------------------------------------------------------------------------------------
    def apply_chat_template(self, messages: List[dict], add_generation_prompt: bool = True,
                            tokenize: bool = False, **template_kwargs) -> str:
        """The conversation as the template renders it; other keywords (``enable_thinking``) are
        template variables, as transformers' processors pass them."""
        import jinja2

        text = jinja2.Environment().from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, **template_kwargs)
        if tokenize:
            raise ValueError("tokenize=True is not supported: call the processor on the text")
        return text

    def expand_image_tokens(self, text: str) -> str:
        return text.replace(self.image_token, self.image_token * self.num_visual_tokens)

    # -- images -------------------------------------------------------------------------------------
    def preprocess_image(self, image) -> np.ndarray:
        """(H, W, 3) uint8 array or PIL image -> (3, S, S) float32."""
        arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        fill = [int(round(m * 255)) for m in self.image_mean]
        sq = pad_and_resize(arr.astype(np.uint8), self.image_size, fill).astype(np.float32) / 255.0
        sq = (sq - np.array(self.image_mean, np.float32)) / np.array(self.image_std, np.float32)
        return sq.transpose(2, 0, 1)

    def __call__(self, text, images=None, prompts: Optional[Sequence[Sequence[VisualPrompt]]] = None,
                 return_tensors: str = "pt", padding: bool = True,
                 mask_prompts: Optional[Sequence[Dict[int, np.ndarray]]] = None):
        """``text``: a string or list of strings, one ``<image>`` each when ``images`` is given;
        ``images``: one chip per text; ``prompts``: one sequence of chip-pixel prompts per image;
        ``mask_prompts``: per image, prompt index -> (H, W) bool mask of that image."""
        import torch
        from transformers import BatchFeature

        texts = [text] if isinstance(text, str) else list(text)
        data: Dict[str, object] = {}
        if images is not None:
            images = list(images)
            if len(images) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(images)} images")
            prompts = list(prompts) if prompts is not None else [()] * len(images)
            extra = list(mask_prompts) if mask_prompts is not None else [None] * len(images)
            pix, masks = [], []
            for img, ps, mp in zip(images, prompts, extra):
                arr = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img)
                pix.append(self.preprocess_image(arr))
                masks.append(render_prompt_masks(ps, arr.shape[1], arr.shape[0], self.image_size, self.max_prompts,
                                                 mp))
            data["pixel_values"] = torch.from_numpy(np.stack(pix))
            data["prompt_masks"] = torch.from_numpy(np.stack(masks))
            for t in texts:
                if t.count(self.image_token) != 1:
                    raise ValueError(f"each text needs exactly one {self.image_token} placeholder")
            texts = [self.expand_image_tokens(t) for t in texts]
        enc = self.tokenizer(texts, padding=padding, return_tensors=return_tensors, add_special_tokens=False)
        data.update(enc)
        return BatchFeature(data=data)

    def decode(self, ids, **kwargs) -> str:
        return self.tokenizer.decode(ids, **kwargs)

    # -- training -----------------------------------------------------------------------------------
    def training_sequence(self, conversations: Sequence[Dict[str, str]]) -> Tuple[List[int], List[int]]:
        """(input_ids, labels) of one conversation [{"from": "human"|"gpt", "value": ...}, ...].

        The image placeholder goes first in the first human turn (a ``<image>`` already in the text is
        moved there); labels are -100 on every human turn (with its chat markup and the image tokens)
        and the answer ids (plus its end-of-turn) on every gpt turn."""
        ids: List[int] = []
        labels: List[int] = []
        first = True
        for turn in conversations:
            value = str(turn["value"])
            if turn["from"] == "human":
                value = value.replace(self.image_token, "").strip()
                text = USER_PREFIX + (self.image_token + "\n" if first else "") + value + TURN_END + ASSISTANT_PREFIX
                first = False
                part = self.tokenizer(self.expand_image_tokens(text), add_special_tokens=False)["input_ids"]
                ids += part
                labels += [-100] * len(part)
            elif turn["from"] == "gpt":
                part = self.tokenizer(value + TURN_END, add_special_tokens=False)["input_ids"]
                ids += part
                labels += part
            else:
                raise ValueError(f"turn 'from' must be human or gpt, got {turn['from']!r}")
        return ids, labels
