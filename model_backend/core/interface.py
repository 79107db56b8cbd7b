"""The one model interface: what goes into a question and what comes back (numpy/stdlib only).

All geometry here is in CHIP PIXELS (GDAL convention, x = column, y = row). Requests and answers
serialise to plain JSON-able dicts for the worker protocol (``model_backend/worker/PROTOCOL.md``).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidArgumentError, InvalidPromptError
from .normalise import Modality
from .prompts import PromptKind, VisualPrompt

#: the largest generation budget of one answer
MAX_NEW_TOKENS = 32768
#: the most regions kept from one answer, in the order they were written
MAX_REGIONS = 1000


class Task(str, enum.Enum):
    """What the analyst asks for; each has one template in ``model_backend.models.tasks``."""

    SCENE_CLASSIFICATION = "scene_classification"
    CAPTIONING = "captioning"
    VQA = "vqa"
    REGION_CAPTIONING = "region_captioning"
    REFERRING_CLASSIFICATION = "referring_classification"
    RELATION = "relation"
    GROUNDING = "grounding"
    CHAT = "chat"


class Role(str, enum.Enum):
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class Turn:
    """One earlier message of the conversation (text only; the chip is sent with the first turn)."""

    role: Role
    text: str


@dataclass
class AskRequest:
    """A question about one chip.

    image: (H, W, 3) uint8 RGB, the model-ready chip (marks are drawn by the adapter, not here).
    prompts: indexed visual prompts in chip pixels. instruction: the analyst's text (for grounding,
    the phrase to find). history: earlier turns, oldest first. max_new_tokens: generation budget.
    """

    image: np.ndarray
    instruction: str
    prompts: Tuple[VisualPrompt, ...] = ()
    task: Task = Task.CHAT
    modality: Modality = Modality.OPTICAL
    history: Tuple[Turn, ...] = ()
    max_new_tokens: int = 512

    def __post_init__(self) -> None:
        try:
            self.task = Task(self.task)
        except ValueError:
            raise InvalidArgumentError(f"unknown task {self.task!r}; choose one of "
                                       f"{', '.join(t.value for t in Task)}") from None
        try:
            self.modality = Modality(self.modality)
        except ValueError:
            raise InvalidArgumentError(f"unknown modality {self.modality!r}; choose one of "
                                       f"{', '.join(m.value for m in Modality)}") from None
        self.prompts = tuple(self.prompts)
        image = np.asarray(self.image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise InvalidArgumentError(f"the chip must be a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
        check_max_new_tokens(self.max_new_tokens)
        check_question(self.task, self.instruction, len(self.prompts))
        indexes = [p.index for p in self.prompts]
        if len(set(indexes)) != len(indexes):
            raise InvalidPromptError(f"prompt indexes must be distinct, got {indexes}")


def check_max_new_tokens(value: object) -> None:
    """Refuse a generation budget that is not an integer of 1..``MAX_NEW_TOKENS``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NEW_TOKENS:
        raise InvalidArgumentError(f"max_new_tokens must be 1..{MAX_NEW_TOKENS}, got {value!r}")


def check_question(task: Task, instruction: str, prompt_count: int) -> None:
    """Refuse an empty question for tasks that need text, and too few visual prompts for region tasks."""
    if task in (Task.VQA, Task.GROUNDING, Task.CHAT) and not instruction.strip():
        raise InvalidArgumentError(f"the question is empty; the {task.value} task needs text")
    needed = {Task.REGION_CAPTIONING: 1, Task.REFERRING_CLASSIFICATION: 1, Task.RELATION: 2}.get(task, 0)
    if prompt_count < needed:
        raise InvalidPromptError(f"the {task.value} task needs at least {needed} visual prompt(s), got {prompt_count}")


@dataclass(frozen=True)
class Region:
    """A region parsed from an answer: ``shape`` in chip pixels (a point, a box or a polygon),
    its ``label`` and the ``span`` (start, end) of answer text it was parsed from."""

    shape: VisualPrompt
    label: str
    span: Tuple[int, int]

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.shape.kind.value, "vertices": [list(v) for v in self.shape.vertices],
                "label": self.label, "span": list(self.span)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Region":
        shape = VisualPrompt(PromptKind(d["kind"]), tuple(tuple(v) for v in d["vertices"]))
        return cls(shape, str(d.get("label", "")), (int(d["span"][0]), int(d["span"][1])))


@dataclass
class AnswerMeta:
    """Where an answer came from and what it cost.

    timings: seconds, keys ``encode`` (prompt building and processor), ``first_token``, ``generate``,
    ``total``. finish_reason: ``stop``, ``length`` (token budget), ``cancelled``, or ``incomplete`` (a
    remote stream that ended before its end marker: the text is what came).
    dropped_regions: coordinate groups found in the text that could not be turned into regions.
    cut_regions: regions past ``MAX_REGIONS`` (a repetition loop, say) that were not kept.
    """

    model_id: str = ""
    backend: str = ""
    quantization: str = ""
    device: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    timings: Dict[str, float] = field(default_factory=dict)
    finish_reason: str = "stop"
    dropped_regions: int = 0
    cut_regions: int = 0


@dataclass
class Answer:
    """text: the answer (a thinking model's thoughts taken out); regions: parsed from ``text`` only;
    reasoning: the thoughts, kept apart (never parsed, never written as the answer)."""

    text: str
    regions: List[Region]
    meta: AnswerMeta
    reasoning: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"text": self.text, "regions": [r.to_dict() for r in self.regions], "meta": asdict(self.meta),
                "reasoning": self.reasoning}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Answer":
        return cls(str(d["text"]), [Region.from_dict(r) for r in d.get("regions", [])], AnswerMeta(**d.get("meta", {})),
                   str(d.get("reasoning", "")))


def prompts_to_dicts(prompts: Sequence[VisualPrompt]) -> List[Dict[str, Any]]:
    return [{"kind": p.kind.value, "vertices": [list(v) for v in p.vertices], "index": p.index} for p in prompts]


def prompts_from_dicts(items: Sequence[Dict[str, Any]]) -> Tuple[VisualPrompt, ...]:
    out = []
    for d in items:
        try:
            out.append(VisualPrompt(PromptKind(d["kind"]), tuple(tuple(v) for v in d["vertices"]),
                                    int(d.get("index", len(out) + 1))))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidPromptError):
                raise
            raise InvalidPromptError(f"malformed visual prompt {d!r}: {exc}") from None
    return tuple(out)


def history_from_dicts(items: Optional[Sequence[Dict[str, Any]]]) -> Tuple[Turn, ...]:
    return tuple(Turn(Role(d["role"]), str(d["text"])) for d in (items or ()))
