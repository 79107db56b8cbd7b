"""A thinking model's thoughts kept apart from its answer (stdlib only; used by every engine).

Thinking models (Qwen3.5, Qwen3-VL Thinking) write ``<think>...</think>`` before the answer. Their chat
templates may open the block in the prompt (the generated text then holds only ``...</think>``), and a
server may leak the block into the answer text. The rule here, for whole texts and for streams: text
up to the last ``</think>`` is reasoning; text after an unclosed ``<think>`` is reasoning (the answer was
cut while thinking); text in a block the prompt opened is reasoning until it closes. Only the rest is
the answer, the only text parsed for regions.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

OPEN, CLOSE = "<think>", "</think>"


def split_thinking(text: str, opened: bool = False) -> Tuple[str, str]:
    """``(reasoning, answer)`` of a complete generated ``text``; ``opened``: the prompt ended inside a
    ``<think>`` block (the template opened it)."""
    close = text.rfind(CLOSE)
    if opened and close < 0:   # still inside the block the prompt opened, whatever it mentions
        return text.strip(), ""
    if close >= 0:
        reasoning, answer = text[:close], text[close + len(CLOSE):]
        start = reasoning.find(OPEN)
        if start >= 0:
            reasoning = reasoning[:start] + reasoning[start + len(OPEN):]
        return reasoning.strip(), answer.strip()
    start = text.find(OPEN)
    if start >= 0:
        return text[start + len(OPEN):].strip(), text[:start].strip()
    return "", text


def prompt_opens_thinking(prompt_text: str) -> bool:
    """True when a rendered prompt ends inside a ``<think>`` block (thinking on, template-opened)."""
    tail = prompt_text.rstrip()
    return tail.endswith(OPEN)


class ThinkingStream:
    """Splits streamed pieces into answer text (``on_text``) and reasoning (``on_reasoning``) as they
    arrive, holding back only what could be the start of a tag. ``opened``: the stream starts inside
    a ``<think>`` block. Text before a ``</think>`` met while answering (a server that leaks a
    template-opened block) was given as answer; ``split_thinking`` on the whole text is what is stored."""

    def __init__(self, on_text: Optional[Callable[[str], None]], on_reasoning: Optional[Callable[[str], None]] = None,
                 opened: bool = False) -> None:
        self._on_text, self._on_reasoning = on_text, on_reasoning
        self.thinking = opened
        self._held = ""

    def feed(self, piece: str) -> None:
        text = self._held + piece
        self._held = ""
        while text:
            tags = (CLOSE,) if self.thinking else (OPEN, CLOSE)
            found = [(text.find(t), t) for t in tags if t in text]
            if found:
                at, tag = min(found)
                # what comes before a tag goes where the stream was: the same however it was cut (a
                # </think> met while answering shows later that it was thought; the stored split says so)
                self._emit(text[:at], self.thinking)
                self.thinking = tag == OPEN
                text = text[at + len(tag):]
                continue
            keep = max((n for t in tags for n in range(1, len(t)) if text.endswith(t[:n])), default=0)
            self._emit(text[:len(text) - keep], self.thinking)
            self._held = text[len(text) - keep:]
            return

    def close(self) -> None:
        """Give what was held back (a stream that ended on part of a tag)."""
        held, self._held = self._held, ""
        self._emit(held, self.thinking)

    def _emit(self, text: str, reasoning: bool) -> None:
        target = self._on_reasoning if reasoning else self._on_text
        if text and target is not None:
            target(text)
