"""The engine interface every backend implements (local transformers, remote OpenAI-compatible)."""

from __future__ import annotations

import abc
import threading
from typing import Callable, Dict, Optional

from ..core.encoding import CoordinateFrame
from ..core.families import Family
from ..core.interface import MAX_REGIONS, Answer, AnswerMeta, AskRequest
from .parsing import parse_regions
from .thinking import split_thinking

TextCallback = Callable[[str], None]


class Engine(abc.ABC):
    """A loaded model answering ``AskRequest``s.

    ``ask`` streams answer text to ``on_text`` and a thinking model's thoughts to ``on_reasoning`` as
    they are generated, and stops early (finish_reason ``cancelled``) once ``cancel`` is set. Models
    are asked not to think unless the engine was made with ``thinking=True``. It raises
    ``EarthGPTXError`` subclasses for user-caused problems; a malformed model answer never raises (its
    text is kept, bad regions are counted).
    """

    family: Family
    #: ``ask`` may run in several threads at once (a remote server); a local model answers one at a time
    concurrent: bool = False

    @abc.abstractmethod
    def ask(self, request: AskRequest, on_text: Optional[TextCallback] = None,
            cancel: Optional[threading.Event] = None, on_reasoning: Optional[TextCallback] = None) -> Answer:
        ...

    @abc.abstractmethod
    def describe(self) -> Dict[str, object]:
        """Model id, backend, device, quantization and memory, for status lines."""

    def close(self) -> None:
        """Release the model (default: nothing to release)."""


def finish_answer(text: str, family: Family, frame: CoordinateFrame, meta: AnswerMeta, opened: bool = False,
                  reasoning: str = "") -> Answer:
    """The answer of a complete generated ``text``: thoughts split off (``split_thinking``; ``opened``:
    the prompt opened a ``<think>`` block; ``reasoning``: thoughts that came apart, e.g. a server's
    reasoning deltas), regions parsed from the answer alone into chip pixels (the first
    ``MAX_REGIONS``; the rest counted in ``meta.cut_regions``), and ``meta`` attached."""
    thought, answer = split_thinking(text, opened)
    regions, dropped = parse_regions(answer, frame, family.parse_style)
    meta.dropped_regions = dropped
    meta.cut_regions = max(0, len(regions) - MAX_REGIONS)
    reasoning = "\n\n".join(part for part in (reasoning.strip(), thought) if part)
    return Answer(text=answer, regions=regions[:MAX_REGIONS], meta=meta, reasoning=reasoning)
