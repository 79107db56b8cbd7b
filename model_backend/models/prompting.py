"""Turn an ``AskRequest`` into what a model family reads: the chip with numbered marks drawn on it and
the user text with the same prompts written as coordinates (numpy/stdlib only; used by every engine)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np

from ..core.encoding import CoordinateFrame
from ..core.families import Family
from ..core.interface import AskRequest, Role
from ..core.marks import draw_marks
from .tasks import MODALITY_PREAMBLES, describe_prompt, render_task


@dataclass
class Prompt:
    """image: the marked chip (H, W, 3) uint8; text: the user message for this question;
    messages: the whole conversation in chat-template form, the image in the first user turn."""

    image: np.ndarray
    text: str
    messages: List[dict]


def user_text(request: AskRequest, family: Family, frame: CoordinateFrame) -> str:
    """Modality preamble, one sentence per visual prompt, and the task's template."""
    parts = [MODALITY_PREAMBLES[request.modality.value]]
    numbered = len(request.prompts) > 1
    for p in request.prompts:
        parts.append(describe_prompt(p.kind.value, p.index, frame.format_prompt(p), numbered))
    if request.prompts or request.task.value == "grounding":
        parts.append(family.coordinate_note)
    parts.append(render_task(request.task.value, request.instruction, [p.index for p in request.prompts],
                             family.grounding_format))
    return " ".join(parts)


def build_prompt(request: AskRequest, family: Family, frame: CoordinateFrame) -> Prompt:
    """The marked chip and the conversation for ``request`` under ``family``'s convention ``frame``."""
    image = draw_marks(request.image, request.prompts) if request.prompts else request.image
    text = user_text(request, family, frame)
    turns = [(t.role, t.text) for t in request.history] + [(Role.USER, text)]
    messages = []
    for k, (role, content) in enumerate(turns):
        items = [{"type": "text", "text": content}]
        if k == 0:
            items.insert(0, {"type": "image"})
        messages.append({"role": role.value, "content": items})
    return Prompt(image=image, text=text, messages=messages)
