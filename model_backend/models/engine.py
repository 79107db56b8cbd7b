"""The engine interface every backend implements (local transformers, remote OpenAI-compatible)."""

from __future__ import annotations

import abc
import threading
from typing import Callable, Dict, Optional

from ..core.encoding import CoordinateFrame
from ..core.families import Family
from ..core.interface import MAX_REGIONS, Answer, AnswerMeta, AskRequest
from .parsing import parse_regions

TextCallback = Callable[[str], None]


class Engine(abc.ABC):
    """A loaded model answering ``AskRequest``s.

    ``ask`` streams text pieces to ``on_text`` as they are generated and stops early (finish_reason
    ``cancelled``) once ``cancel`` is set. It raises ``EarthGPTXError`` subclasses for user-caused
    problems; a malformed model answer never raises (its text is kept, bad regions are counted).
    """

    family: Family

    @abc.abstractmethod
    def ask(self, request: AskRequest, on_text: Optional[TextCallback] = None,
            cancel: Optional[threading.Event] = None) -> Answer:
        ...

    @abc.abstractmethod
    def describe(self) -> Dict[str, object]:
        """Model id, backend, device, quantization and memory, for status lines."""

    def close(self) -> None:
        """Release the model (default: nothing to release)."""


def finish_answer(text: str, family: Family, frame: CoordinateFrame, meta: AnswerMeta) -> Answer:
    """Parse the regions of a complete answer ``text`` into chip pixels (the first ``MAX_REGIONS``;
    the rest counted in ``meta.cut_regions``) and attach ``meta``."""
    regions, dropped = parse_regions(text, frame, family.parse_style)
    meta.dropped_regions = dropped
    meta.cut_regions = max(0, len(regions) - MAX_REGIONS)
    return Answer(text=text, regions=regions[:MAX_REGIONS], meta=meta)
