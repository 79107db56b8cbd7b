"""A thinking model's thoughts are kept apart from its answer: whole texts, streams cut anywhere, and a
loopback server that sends the thoughts as reasoning deltas or leaks them into the content."""

import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from model_backend.core.interface import AskRequest, Task
from model_backend.models.remote import RemoteEngine, RemoteEngineError
from model_backend.models.thinking import ThinkingStream, prompt_opens_thinking, split_thinking
from openai_server import error, serve, sse_events, stream, url

THOUGHT_BOX = '{"bbox_2d": [10, 10, 20, 20], "label": "maybe a ship"}'
ANSWER_BOX = '[{"bbox_2d": [100, 200, 300, 400], "label": "ship"}]'


@pytest.mark.parametrize("text, opened, reasoning, answer", [
    ("<think>\nIs it " + THOUGHT_BOX + "?\n</think>\n\n" + ANSWER_BOX, False, "Is it " + THOUGHT_BOX + "?", ANSWER_BOX),
    ("Looking... " + THOUGHT_BOX + "\n</think>\n\n" + ANSWER_BOX, True, "Looking... " + THOUGHT_BOX, ANSWER_BOX),
    ("Looking... " + THOUGHT_BOX + "\n</think>\n\n" + ANSWER_BOX, False, "Looking... " + THOUGHT_BOX, ANSWER_BOX),
    ("<think>\n\n</think>\n\n" + ANSWER_BOX, False, "", ANSWER_BOX),
    ("<think>still thinking about " + THOUGHT_BOX, False, "still thinking about " + THOUGHT_BOX, ""),
    ("still thinking", True, "still thinking", ""),
    (ANSWER_BOX, False, "", ANSWER_BOX),
    ("a < b and <thin is not a tag", False, "", "a < b and <thin is not a tag"),
])
def test_split_thinking(text, opened, reasoning, answer):
    assert split_thinking(text, opened) == (reasoning, answer)


def test_a_prompt_opens_thinking_when_it_ends_inside_a_block():
    assert prompt_opens_thinking("<|im_start|>assistant\n<think>\n")
    assert not prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not prompt_opens_thinking("<|im_start|>assistant\n")


@given(st.lists(st.integers(1, 12), min_size=1, max_size=60), st.booleans())
def test_a_stream_cut_anywhere_splits_as_the_whole_text(cuts, opened):
    text = ("" if opened else "<think>") + "Is it " + THOUGHT_BOX + "? </thin k> no.</think>\n\n" + ANSWER_BOX + " <"
    answer, reasoning, pieces, at = [], [], [], 0
    for n in cuts * 20:
        if at >= len(text):
            break
        pieces.append(text[at:at + n])
        at += n
    pieces.append(text[at:])
    split = ThinkingStream(answer.append, reasoning.append, opened)
    for piece in pieces:
        split.feed(piece)
    split.close()
    want_reasoning, want_answer = split_thinking(text, opened)
    assert "".join(answer).strip() == want_answer and "".join(reasoning).strip() == want_reasoning


def _chip():
    return np.full((64, 64, 3), 80, np.uint8)


def _reasoning_events(field):
    chunk = lambda delta: "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events = [chunk({"role": "assistant", "content": ""}), chunk({field: "Is it " + THOUGHT_BOX + "? "}),
              chunk({field: "Yes."}), chunk({"content": ANSWER_BOX})]
    events.append("data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    return [e + "\n\n" for e in events] + ["data: [DONE]\n\n"]


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])   # vLLM / Ollama, llama.cpp / older vLLM
def test_reasoning_deltas_are_kept_apart_and_never_parsed(field):
    with serve(stream(_reasoning_events(field))) as srv:
        text, thoughts = [], []
        answer = RemoteEngine(url(srv), "m", family="qwen3_5").ask(
            AskRequest(_chip(), "ships", task=Task.GROUNDING), on_text=text.append, on_reasoning=thoughts.append)
    assert answer.text == ANSWER_BOX and "".join(text) == ANSWER_BOX
    assert answer.reasoning == "Is it " + THOUGHT_BOX + "? Yes." == "".join(thoughts)
    assert [r.label for r in answer.regions] == ["ship"]


@pytest.mark.parametrize("content", [
    "<think>\nIs it " + THOUGHT_BOX + "?\n</think>\n\n" + ANSWER_BOX,     # a server without a reasoning parser
    "Is it " + THOUGHT_BOX + "?\n</think>\n\n" + ANSWER_BOX,              # ... whose template opened the block
])
def test_thoughts_leaked_into_the_content_never_reach_the_answer_or_the_map(content):
    pieces = [content[i:i + 7] for i in range(0, len(content), 7)]
    with serve(stream(sse_events(pieces))) as srv:
        answer = RemoteEngine(url(srv), "m", family="qwen3_5").ask(AskRequest(_chip(), "ships", task=Task.GROUNDING))
    assert answer.text == ANSWER_BOX and [r.label for r in answer.regions] == ["ship"]
    assert "maybe a ship" in answer.reasoning and "maybe a ship" not in answer.text


def test_thinking_is_asked_off_by_default_and_on_when_allowed():
    with serve(stream(sse_events(["ok"]))) as srv:
        RemoteEngine(url(srv), "m").ask(AskRequest(_chip(), "Q?"))
        RemoteEngine(url(srv), "m", thinking=True).ask(AskRequest(_chip(), "Q?"))
        off, on = (r["body"] for r in srv.received)
    assert off["chat_template_kwargs"] == {"enable_thinking": False} and off["reasoning_effort"] == "none"
    assert on["chat_template_kwargs"] == {"enable_thinking": True} and "reasoning_effort" not in on


def test_a_server_refusing_reasoning_effort_none_is_asked_again_without_it():
    def behaviour(handler, body):
        if "reasoning_effort" in body:
            return error(400, json.dumps({"error": {"message": "reasoning_effort must be low, medium or high"}}))(
                handler, body)
        return stream(sse_events(["fine"]))(handler, body)
    with serve(behaviour) as srv:
        engine = RemoteEngine(url(srv), "m")
        assert engine.ask(AskRequest(_chip(), "Q?")).text == "fine"
        assert engine.ask(AskRequest(_chip(), "Q?")).text == "fine"    # remembered: no second refusal
    assert ["reasoning_effort" in r["body"] for r in srv.received] == [True, False, False]
    with serve(error(400, json.dumps({"error": {"message": "messages: field required"}}))) as srv:
        with pytest.raises(RemoteEngineError, match="HTTP 400.*field required"):
            RemoteEngine(url(srv), "m").ask(AskRequest(_chip(), "Q?"))
        assert len(srv.received) == 1


def test_a_thought_sent_under_both_names_is_kept_once_and_an_answer_sent_as_reasoning_is_the_answer():
    chunk = lambda delta, finish=None: "data: " + json.dumps({"choices": [{"index": 0, "delta": delta,
                                                                           "finish_reason": finish}]}) + "\n\n"
    both = [chunk({"reasoning": "Hmm, ", "reasoning_content": "Hmm, "}), chunk({"content": ANSWER_BOX}),
            chunk({}, "stop"), "data: [DONE]\n\n"]
    with serve(stream(both)) as srv:
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(_chip(), "Q?"))
    assert answer.reasoning == "Hmm," and answer.text == ANSWER_BOX
    # vLLM's qwen3 parser with thinking off and no <think> written: the answer arrives as reasoning
    misrouted = [chunk({"reasoning": ANSWER_BOX[:9]}), chunk({"reasoning": ANSWER_BOX[9:]}), chunk({}, "stop"),
                 "data: [DONE]\n\n"]
    with serve(stream(misrouted)) as srv:
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(_chip(), "ships", task=Task.GROUNDING))
        assert (answer.text, answer.reasoning) == (ANSWER_BOX, "") and len(answer.regions) == 1
        cut = RemoteEngine(url(srv), "m", thinking=True).ask(AskRequest(_chip(), "ships", task=Task.GROUNDING))
    assert cut.text == "" and cut.reasoning == ANSWER_BOX and cut.regions == []   # allowed to think: thoughts


@given(st.integers(1, 11))
def test_a_closing_tag_met_while_answering_streams_the_same_however_it_is_cut(cut):
    text = "abc</think>x"
    whole, pieces = [], []
    one = ThinkingStream(whole.append, whole.append)
    one.feed(text)
    one.close()
    two = ThinkingStream(pieces.append, pieces.append)
    two.feed(text[:cut])
    two.feed(text[cut:])
    two.close()
    assert "".join(whole) == "".join(pieces) == "abcx"
    assert split_thinking(text) == ("abc", "x")               # what is stored


def test_a_block_the_prompt_opened_stays_thought_whatever_it_mentions():
    assert split_thinking("I should check the <think> tag, box at [1, 2", opened=True) == (
        "I should check the <think> tag, box at [1, 2", "")
