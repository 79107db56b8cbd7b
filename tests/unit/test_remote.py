"""RemoteEngine against real HTTP servers on 127.0.0.1 (stdlib http.server / raw sockets, port 0)."""

from __future__ import annotations

import base64
import http.client
import io
import itertools
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from model_backend.core.errors import EarthGPTXError, InvalidArgumentError
from model_backend.core.interface import Answer, AskRequest, Task
from model_backend.core.prompts import PromptKind, VisualPrompt
from model_backend.models.remote import RemoteEngine, RemoteEngineError, chat_completions_url, fit_to_factor

GROUNDING_ANSWER = '```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "ship"}]\n```'


from openai_server import delta, error, serve, sse_events, stream, url


def chip(w, h, value=None):
    if value is not None:
        return np.full((h, w, 3), value, np.uint8)
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def sent_image(record):
    """The PNG the client sent in the first user turn, and the text parts of every message."""
    messages = record["body"]["messages"]
    parts = messages[0]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 1
    data_url = images[0]["image_url"]["url"]
    assert data_url.startswith("data:image/png;base64,")
    png = base64.b64decode(data_url.split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    texts = [p["text"] for m in messages for p in m["content"] if p["type"] == "text"]
    return Image.open(io.BytesIO(png)), texts


# -- endpoint rule and arguments ------------------------------------------------------------------
@pytest.mark.parametrize("endpoint, expected", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://127.0.0.1:8000/v1/chat/completions", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://127.0.0.1:8000/v1/chat/completions/", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://127.0.0.1:8080/chat/completions", "http://127.0.0.1:8080/chat/completions"),
    ("https://127.0.0.1/openai/v1", "https://127.0.0.1/openai/v1/chat/completions"),
    ("http://user:pw@[::1]:11434/v1?x=1", "http://[::1]:11434/v1/chat/completions"),
])
def test_endpoint_rule(endpoint, expected):
    engine = RemoteEngine(endpoint, "m")
    assert engine.url == expected
    assert "pw" not in json.dumps(engine.describe()) and "pw" not in repr(engine)


def test_endpoint_paths_and_credentials():
    scheme, host, port, path, base, userinfo = chat_completions_url("http://u:p%40ss@127.0.0.1/v1?k=2")
    assert (scheme, host, port, path, base, userinfo) == (
        "http", "127.0.0.1", 80, "/v1/chat/completions?k=2", "http://127.0.0.1/v1", "u:p@ss")


@pytest.mark.parametrize("kwargs", [
    {"endpoint": "ftp://127.0.0.1/v1"}, {"endpoint": "127.0.0.1:8000"}, {"endpoint": ""},
    {"endpoint": "http:///v1"}, {"model": " "}, {"family": "llava"}, {"timeout": 0},
    {"retries": -1}, {"max_image_pixels": 100},
])
def test_invalid_arguments(kwargs):
    args = {"endpoint": "http://127.0.0.1:8000/v1", "model": "m", **kwargs}
    with pytest.raises(InvalidArgumentError):
        RemoteEngine(**args)


def test_fit_to_factor():
    assert fit_to_factor(500, 300, 28, 1024 * 1024) == (504, 308)
    w, h = fit_to_factor(2000, 1500, 28, 1024 * 1024)
    assert w % 28 == 0 and h % 28 == 0 and w * h <= 1024 * 1024 and abs(w / h - 4 / 3) < 0.05
    assert fit_to_factor(10, 10, 28, 1024 * 1024) == (56, 56)


# -- requests and streamed answers ---------------------------------------------------------------
def test_rel_1000_request_stream_grounding_usage_and_token():
    pieces = ["```json\n[", '{"bbox_2d": [100, 200, ', "300, 400], ", '"label": "ship"}]\n```']
    assert "".join(pieces) == GROUNDING_ANSWER
    with serve(stream(sse_events(pieces, usage={"prompt_tokens": 321, "completion_tokens": 9}))) as srv:
        engine = RemoteEngine(url(srv), "Qwen/Qwen3-VL-2B-Instruct", api_key="sk-secret-123")
        request = AskRequest(chip(640, 480), "What is this?", prompts=(VisualPrompt.box(64, 96, 192, 192),),
                             task=Task.VQA, max_new_tokens=77)
        got = []
        answer = engine.ask(request, on_text=got.append)
    assert len(srv.received) == 1
    record = srv.received[0]
    assert record["path"] == "/v1/chat/completions"
    assert record["headers"]["Authorization"] == "Bearer sk-secret-123"
    body = record["body"]
    assert body["model"] == "Qwen/Qwen3-VL-2B-Instruct"
    assert body["max_tokens"] == 77 and body["temperature"] == 0 and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"][0]["role"] == "user"
    image, texts = sent_image(record)
    assert image.size == (640, 480) and image.mode == "RGB"
    assert "[100, 200, 300, 400]" in texts[-1] and "What is this?" in texts[-1]
    assert got == pieces and answer.text == GROUNDING_ANSWER
    assert len(answer.regions) == 1
    region = answer.regions[0]
    assert region.label == "ship" and region.shape.kind is PromptKind.BOX
    assert np.allclose(np.ravel(region.shape.vertices), (64, 96, 192, 192))
    meta = answer.meta
    assert (meta.model_id, meta.backend, meta.quantization) == ("Qwen/Qwen3-VL-2B-Instruct", "openai", "remote")
    assert meta.device == f"127.0.0.1:{srv.server_address[1]}"
    assert (meta.prompt_tokens, meta.generated_tokens, meta.finish_reason) == (321, 9, "stop")
    assert set(meta.timings) == {"encode", "first_token", "generate", "total"}
    assert all(v >= 0 for v in meta.timings.values())
    assert meta.timings["total"] >= meta.timings["generate"] >= meta.timings["first_token"]
    desc = engine.describe()
    assert desc["model_id"] == "Qwen/Qwen3-VL-2B-Instruct" and desc["backend"] == "openai"
    assert desc["endpoint"] == url(srv) and desc["family"] == "qwen3_vl" and desc["device"] == "remote"
    assert "sk-secret" not in json.dumps(desc) + repr(engine)


def test_qwen2_5_vl_chip_is_resized_to_multiples_of_28():
    pieces = ['[{"bbox_2d": [0, 0, 252, 154], "label": "field"}]']
    with serve(stream(sse_events(pieces))) as srv:
        engine = RemoteEngine(url(srv), "qwen2.5-vl", family="qwen2_5_vl")
        request = AskRequest(chip(500, 300), "Describe it.", prompts=(VisualPrompt.point(250, 150),),
                             task=Task.VQA)
        answer = engine.ask(request)
        big = engine.ask(AskRequest(chip(2000, 1500, value=90), "Describe it.", task=Task.VQA))
    image, texts = sent_image(srv.received[0])
    assert image.size == (504, 308)
    assert "[252, 154]" in texts[-1]
    assert np.allclose(np.ravel(answer.regions[0].shape.vertices), (0, 0, 250, 150))
    image, _ = sent_image(srv.received[1])
    w, h = image.size
    assert w % 28 == 0 and h % 28 == 0 and w * h <= 1024 * 1024
    assert big.text == pieces[0] and "Authorization" not in srv.received[0]["headers"]


def test_large_rel_1000_chip_is_scaled_down_and_small_chip_sent_losslessly():
    with serve(stream(sse_events(["ok"]))) as srv:
        engine = RemoteEngine(url(srv), "m", max_image_pixels=512 * 512)
        engine.ask(AskRequest(chip(2000, 1000, value=7), "Q?", prompts=(VisualPrompt.box(200, 100, 1000, 500),),
                              task=Task.VQA))
        small = chip(33, 17)
        engine.ask(AskRequest(small, "Q?"))
    image, texts = sent_image(srv.received[0])
    w, h = image.size
    assert w * h <= 512 * 512 and abs(w / h - 2) < 0.02
    assert "[100, 100, 500, 500]" in texts[-1]
    image, _ = sent_image(srv.received[1])
    assert np.array_equal(np.asarray(image), small)


def test_comments_and_event_lines_are_ignored_and_a_stream_without_done_is_kept_as_incomplete():
    events = [": keep-alive\n\n", "event: message\n", "data:\n\n"]
    events += sse_events(["alpha ", "beta ", "gamma"], finish="length", done=False)
    with serve(stream(events, chunked=False)) as srv:
        got = []
        answer = RemoteEngine(url(srv, ""), "m").ask(AskRequest(chip(64, 64), "Q?"), on_text=got.append)
    assert got == ["alpha ", "beta ", "gamma"] and answer.text == "alpha beta gamma"
    assert answer.meta.finish_reason == "incomplete"
    assert (answer.meta.prompt_tokens, answer.meta.generated_tokens) == (0, 3)
    assert answer.regions == []


def test_length_is_the_servers_finish_reason_when_the_stream_is_whole():
    with serve(stream(sse_events(["alpha ", "beta"], finish="length"))) as srv:
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?"))
    assert (answer.text, answer.meta.finish_reason) == ("alpha beta", "length")


@pytest.mark.parametrize("event, words", [
    (b"data: {not json\n\n", "not JSON"),
    (b"data: [1, 2]\n\n", "not a JSON object"),
    (b'data: {"choices": 5}\n\n', "'choices' that is not a list"),
    (b'data: {"choices": [7]}\n\n', "'choices' that is not a list"),
    (b'data: {"choices": [{"index": 0, "delta": "text"}]}\n\n', "delta is not an object"),
    (b'data: {"choices": [{"index": 0, "delta": {"content": 5}}]}\n\n', "'content' that is not text"),
    (b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]}\n\n', "'finish_reason' that is not"),
    (b'data: {"choices": [{"index": 0, "delta": {"content": "caf\xe9"}}]}\n\n', "not UTF-8"),
])
def test_a_malformed_event_is_an_error_not_silence(event, words):
    events = sse_events(["partial "], done=False)[:2] + [event] + sse_events(["more"])[1:]
    with serve(stream(events)) as srv:
        with pytest.raises(RemoteEngineError, match=words) as info:
            RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("body", ['{"choices": 5}', '{"choices": [{"message": "hi"}]}', '[1]', '{"choices": [{'])
def test_a_malformed_json_answer_is_an_error(body):
    with serve(error(200, body)) as srv:
        with pytest.raises(RemoteEngineError, match="sent .*OpenAI-compatible"):
            RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?"))


def test_an_endless_stream_is_cut_at_max_new_tokens():
    endless = ("data: " + json.dumps(delta(f"w{i} ")) + "\n\n" for i in itertools.count())
    with serve(stream(endless)) as srv:
        got = []
        start = time.monotonic()
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?", max_new_tokens=20), on_text=got.append)
    assert time.monotonic() - start < 5
    assert len(got) == 20 and answer.text == "".join(f"w{i} " for i in range(20))
    assert answer.meta.finish_reason == "length"


def test_an_endless_stream_of_huge_pieces_is_cut_by_characters():
    endless = ("data: " + json.dumps(delta("x" * 10_000)) + "\n\n" for _ in itertools.count())
    with serve(stream(endless)) as srv:
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?", max_new_tokens=50))
    assert answer.meta.finish_reason == "length" and len(answer.text) <= 50 * 64 + 10_000


def test_keep_alives_do_not_hold_off_the_first_token_timeout():
    endless = (": keep-alive\n\n" for _ in itertools.count())
    with serve(stream(endless, delay=0.05)) as srv:
        start = time.monotonic()
        with pytest.raises(RemoteEngineError, match=r"no answer .* within 0.5 s .*keep-alive"):
            RemoteEngine(url(srv), "m", timeout=0.5).ask(AskRequest(chip(32, 32), "Q?"))
    assert time.monotonic() - start < 2.0


def test_keep_alives_do_not_hold_off_the_idle_timeout():
    events = itertools.chain(sse_events(["first "])[:2], (": keep-alive\n\n" for _ in itertools.count()))
    with serve(stream(events, delay=0.05)) as srv:
        start = time.monotonic()
        with pytest.raises(RemoteEngineError, match="stopped sending for more than 0.5 s"):
            RemoteEngine(url(srv), "m", timeout=0.5).ask(AskRequest(chip(32, 32), "Q?"))
    assert time.monotonic() - start < 2.5


def test_the_timeout_bounds_each_wait_not_the_whole_answer():
    pieces = [f"p{i} " for i in range(8)]
    with serve(stream(sse_events(pieces), delay=0.2)) as srv:
        start = time.monotonic()
        answer = RemoteEngine(url(srv), "m", timeout=0.6).ask(AskRequest(chip(32, 32), "Q?"))
    assert time.monotonic() - start > 1.2            # longer than the timeout in all, never between pieces
    assert answer.text == "".join(pieces) and answer.meta.finish_reason == "stop"


@pytest.mark.parametrize("endpoint", ["http://[::1:8000/v1", "http://[fe80::1/v1", "http://]::1[/v1"])
def test_an_unclosed_ipv6_endpoint_is_one_clear_line(endpoint):
    with pytest.raises(InvalidArgumentError, match="endpoint") as info:
        RemoteEngine(endpoint, "m")
    assert "\n" not in str(info.value)


def test_non_streaming_json_answer_is_accepted():
    obj = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "a harbour"},
                        "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    with serve(error(200, json.dumps(obj))) as srv:
        got = []
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?"), on_text=got.append)
    assert got == ["a harbour"] and answer.text == "a harbour"
    assert (answer.meta.prompt_tokens, answer.meta.generated_tokens) == (5, 2)


# -- cancel and close ------------------------------------------------------------------------------
def test_cancel_after_first_piece_returns_quickly():
    pieces = [f"p{i} " for i in range(30)]
    with serve(stream(sse_events(pieces), delay=0.2)) as srv:
        cancel, got = threading.Event(), []

        def on_text(piece):
            got.append(piece)
            cancel.set()
        start = time.monotonic()
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?"), on_text=on_text, cancel=cancel)
        elapsed = time.monotonic() - start
    assert answer.meta.finish_reason == "cancelled"
    assert got == ["p0 "] and answer.text == "p0 "
    assert elapsed < 1.5


def test_cancel_while_waiting_for_the_first_byte():
    def slow(handler, body):
        handler.server.stopping.wait(5)
    with serve(slow) as srv:
        cancel = threading.Event()
        timer = threading.Timer(0.3, cancel.set)
        timer.start()
        start = time.monotonic()
        try:
            answer = RemoteEngine(url(srv), "m", timeout=5).ask(AskRequest(chip(32, 32), "Q?"), cancel=cancel)
        finally:
            timer.cancel()
        elapsed = time.monotonic() - start
    assert answer.meta.finish_reason == "cancelled" and answer.text == ""
    assert elapsed < 1.5


def test_cancel_before_asking_sends_nothing():
    with serve(stream(sse_events(["x"]))) as srv:
        cancel = threading.Event()
        cancel.set()
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?"), cancel=cancel)
    assert answer.meta.finish_reason == "cancelled" and srv.received == []


def test_close_breaks_off_an_answer():
    with serve(stream(sse_events(["a", "b", "c"]), delay=0.2)) as srv:
        engine = RemoteEngine(url(srv), "m")
        with pytest.raises(RemoteEngineError, match="closed"):
            engine.ask(AskRequest(chip(32, 32), "Q?"), on_text=lambda piece: engine.close())
        with pytest.raises(RemoteEngineError, match="closed"):
            engine.ask(AskRequest(chip(32, 32), "Q?"))


# -- HTTP errors (never retried) -----------------------------------------------------------------
def test_a_key_read_from_a_crlf_file_is_sent_without_its_line_end():
    with serve(stream(sse_events(["ok"]))) as srv:
        assert RemoteEngine(url(srv), "m", api_key="sk-abc123\r\n").ask(AskRequest(chip(32, 32), "Q?")).text == "ok"
    assert srv.received[0]["headers"]["Authorization"] == "Bearer sk-abc123"


@pytest.mark.parametrize("key", ["sk-abc\r123", "sk-abc 123", "sk-abc\u00e9123", "sk-abc\udc80123"])
def test_a_key_with_stray_characters_is_refused_without_showing_it(key):
    with pytest.raises(InvalidArgumentError) as info:
        RemoteEngine("http://127.0.0.1:9/v1", "m", api_key=key)
    assert "123" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("api_key, endpoint_auth, secret", [("sk-secret-key-42", "", "sk-secret-key-42"),
                                                            (None, "user:pa55word-42@", "pa55word-42")])
def test_a_server_echoing_the_credentials_is_redacted(api_key, endpoint_auth, secret):
    def echo(handler, body):
        text = json.dumps({"error": {"message": f"bad credentials: {handler.headers.get('Authorization')} "
                                                f"(key sk-secret-key-42, password pa55word-42)"}})
        error(401, text)(handler, body)

    with serve(echo) as srv:
        engine = RemoteEngine(url(srv).replace("http://", "http://" + endpoint_auth), "m", api_key=api_key)
        with pytest.raises(RemoteEngineError) as info:
            engine.ask(AskRequest(chip(32, 32), "Q?"))
    message = str(info.value)
    assert "bad credentials" in message and "[redacted]" in message
    assert secret not in message
    assert base64.b64encode(b"user:pa55word-42").decode() not in message


@pytest.mark.parametrize("status, api_key, words", [
    (401, "sk-wrong", ["token", "401"]), (401, None, ["token", "API key"]), (403, "sk-wrong", ["token", "403"]),
])
def test_auth_errors_mention_the_token(status, api_key, words):
    with serve(error(status, '{"error": {"message": "Invalid API key"}}')) as srv:
        with pytest.raises(RemoteEngineError) as info:
            RemoteEngine(url(srv), "m", api_key=api_key).ask(AskRequest(chip(32, 32), "Q?"))
    message = str(info.value)
    assert all(w in message for w in words) and "Invalid API key" in message
    assert "sk-wrong" not in message
    assert len(srv.received) == 1
    assert isinstance(info.value, EarthGPTXError)


def test_404_mentions_url_and_model():
    with serve(error(404, '{"error": {"message": "The model `nope` does not exist."}}')) as srv:
        with pytest.raises(RemoteEngineError) as info:
            RemoteEngine(url(srv), "nope").ask(AskRequest(chip(32, 32), "Q?"))
    message = str(info.value)
    assert "'nope'" in message and "/v1/chat/completions" in message and "does not exist" in message


def test_500_carries_truncated_server_text():
    text = "CUDA out of memory. " + "x" * 2000
    with serve(error(500, json.dumps({"detail": text}))) as srv:
        with pytest.raises(RemoteEngineError) as info:
            RemoteEngine(url(srv), "m", retries=3).ask(AskRequest(chip(32, 32), "Q?"))
    message = str(info.value)
    assert "500" in message and "CUDA out of memory" in message and len(message) < 500
    assert len(srv.received) == 1
    with serve(error(502, "<html>Bad gateway</html>", "text/html")) as srv:
        with pytest.raises(RemoteEngineError, match="502.*Bad gateway"):
            RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?"))


def test_error_event_in_stream():
    events = sse_events(["partial"], done=False)[:2] + ['data: {"error": {"message": "engine crashed"}}\n\n']
    with serve(stream(events)) as srv:
        with pytest.raises(RemoteEngineError, match="engine crashed"):
            RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?"))


def test_html_page_is_not_an_answer():
    with serve(error(200, "<html>hello</html>", "text/html")) as srv:
        with pytest.raises(RemoteEngineError, match="OpenAI-compatible"):
            RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?"))


# -- connection failures, retries and timeouts ----------------------------------------------------
@pytest.mark.parametrize("retries", [0, 2])
def test_connection_refused_is_retried_then_reported(monkeypatch, retries):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # bound, never listening: refused
    holder.bind(("127.0.0.1", 0))
    try:
        engine = RemoteEngine(f"http://127.0.0.1:{holder.getsockname()[1]}/v1", "m", retries=retries)
        engine.retry_backoff = 0.01
        attempts = []
        original = engine._new_connection
        monkeypatch.setattr(engine, "_new_connection", lambda: attempts.append(1) or original())
        with pytest.raises(RemoteEngineError, match="refused") as info:
            engine.ask(AskRequest(chip(32, 32), "Q?"))
    finally:
        holder.close()
    assert len(attempts) == retries + 1
    assert f"tried {retries + 1} time" in str(info.value)


def test_server_closing_without_answer_is_retried():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted, stop = [], threading.Event()

    def accept_and_close():
        for _ in range(200):                      # bounded: at most ~10 s
            if stop.is_set():
                return
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()
    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()
    try:
        engine = RemoteEngine(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", "m", retries=2)
        engine.retry_backoff = 0.01
        with pytest.raises(RemoteEngineError, match="dropped the connection"):
            engine.ask(AskRequest(chip(32, 32), "Q?"))
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert len(accepted) == 3


def test_a_stream_cut_after_it_began_is_kept_as_incomplete_and_not_retried():
    events = sse_events(["first ", "second"], done=False)[:2]
    with serve(stream(events, terminate=False)) as srv:
        got = []
        answer = RemoteEngine(url(srv), "m", retries=3).ask(AskRequest(chip(32, 32), "Q?"), on_text=got.append)
    assert got == ["first "] and answer.text == "first " and answer.meta.finish_reason == "incomplete"
    assert len(srv.received) == 1


def test_server_that_never_answers_times_out():
    listener = socket.create_server(("127.0.0.1", 0))       # listens, never accepts nor answers
    try:
        engine = RemoteEngine(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", "m", timeout=0.5, retries=2)
        start = time.monotonic()
        with pytest.raises(RemoteEngineError, match="timeout"):
            engine.ask(AskRequest(chip(32, 32), "Q?"))
        elapsed = time.monotonic() - start
    finally:
        listener.close()
    assert 0.4 < elapsed < 1.5                               # one wait, timeouts are not retried


def test_stream_that_stalls_times_out():
    with serve(_stalling(sse_events(["first "])[:2])) as srv:
        start = time.monotonic()
        with pytest.raises(RemoteEngineError, match="stopped sending"):
            RemoteEngine(url(srv), "m", timeout=0.5).ask(AskRequest(chip(32, 32), "Q?"))
        elapsed = time.monotonic() - start
    assert elapsed < 2.0


def _stalling(events):
    def behaviour(handler, body):
        stream(events, terminate=False)(handler, body)
        handler.server.stopping.wait(5)
    return behaviour


# -- proxies from the environment -----------------------------------------------------------------
class _Proxy(ThreadingHTTPServer):
    """A loopback forward proxy that knows one name, ``vllm.internal``, as the test server."""

    daemon_threads = True
    block_on_close = False


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        self.server.seen.append(("CONNECT", self.path, self.headers.get("Proxy-Authorization")))
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        self.server.seen.append(("POST", self.path, self.headers.get("Proxy-Authorization")))
        target = urllib.parse.urlsplit(self.path)
        assert target.hostname == "vllm.internal"
        body = self.rfile.read(int(self.headers["Content-Length"]))
        conn = http.client.HTTPConnection("127.0.0.1", self.server.target_port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "host")}
        conn.request("POST", target.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.getheader("Content-Type", "text/event-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()


@pytest.fixture
def proxy():
    srv = _Proxy(("127.0.0.1", 0), _ProxyHandler)
    srv.seen, srv.target_port = [], None
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _no_proxy_env(monkeypatch):
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_http_proxy_of_the_environment_carries_the_request(monkeypatch, proxy):
    _no_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://analyst:s3cret@127.0.0.1:{proxy.server_address[1]}")
    with serve(stream(sse_events(["Two ", "ships."]))) as srv:
        proxy.target_port = srv.server_address[1]
        engine = RemoteEngine("http://vllm.internal:8000/v1", "m")
        answer = engine.ask(AskRequest(chip(32, 32), "Q?"))
        assert answer.text == "Two ships."
        assert "s3cret" not in json.dumps(engine.describe()) and engine.describe()["proxy"].startswith("127.0.0.1:")
    method, path, auth = proxy.seen[0]
    assert (method, path) == ("POST", "http://vllm.internal:8000/v1/chat/completions")
    assert auth == "Basic " + base64.b64encode(b"analyst:s3cret").decode()
    assert "Proxy-Authorization" not in srv.received[0]["headers"]


def test_https_goes_through_a_connect_tunnel_and_a_refusal_is_reported(monkeypatch, proxy):
    _no_proxy_env(monkeypatch)
    monkeypatch.setenv("https_proxy", f"http://u:p4ss@127.0.0.1:{proxy.server_address[1]}")
    engine = RemoteEngine("https://vllm.internal/v1", "m", retries=0)
    with pytest.raises(RemoteEngineError) as info:
        engine.ask(AskRequest(chip(32, 32), "Q?"))
    assert "p4ss" not in str(info.value) and "through the proxy 127.0.0.1:" in str(info.value)
    assert proxy.seen[0][:2] == ("CONNECT", "vllm.internal:443")
    assert proxy.seen[0][2] == "Basic " + base64.b64encode(b"u:p4ss").decode()


def test_no_proxy_and_loopback_servers_bypass_the_proxy(monkeypatch, proxy):
    _no_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.setenv("NO_PROXY", "vllm.internal")
    assert "proxy" not in RemoteEngine("http://vllm.internal:8000/v1", "m").describe()
    with serve(stream(sse_events(["ok"]))) as srv:
        assert RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?")).text == "ok"
    assert proxy.seen == []


def test_a_malformed_proxy_setting_is_one_clear_line_without_its_password(monkeypatch):
    _no_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", "socks5://u:hunter2@127.0.0.1:1080")
    with pytest.raises(InvalidArgumentError, match="proxy") as info:
        RemoteEngine("http://vllm.internal:8000/v1", "m")
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)


def test_a_very_elongated_chip_is_sent_padded_and_boxes_come_back_on_the_chip():
    answer = '[{"bbox_2d": [250, 0, 500, 500], "label": "strip"}, {"bbox_2d": [0, 600, 100, 900], "label": "pad"}]'
    with serve(stream(sse_events([answer]))) as srv:
        got = RemoteEngine(url(srv), "m").ask(AskRequest(chip(4000, 4, value=90), "Q?", task=Task.GROUNDING))
        image, _ = sent_image(srv.received[0])
    assert image.size == (4000, 40)
    pixels = np.asarray(image)
    assert (pixels[:4] == 90).all() and (pixels[4:] == 0).all()
    assert [r.label for r in got.regions] == ["strip"] and got.meta.dropped_regions == 1
    (x1, y1), (x2, y2) = got.regions[0].shape.vertices
    assert (x1, y1, x2, y2) == pytest.approx((1000, 0, 2000, 4))


def test_a_repetition_loop_keeps_the_first_regions_and_counts_the_rest():
    boxes = ", ".join('{"bbox_2d": [%d, 10, %d, 20], "label": "car"}' % (i % 900, i % 900 + 5) for i in range(1500))
    with serve(stream(sse_events(["[" + boxes + "]"]))) as srv:
        answer = RemoteEngine(url(srv), "m").ask(AskRequest(chip(512, 512), "cars", task=Task.GROUNDING,
                                                            max_new_tokens=4000))
    assert len(answer.regions) == 1000 and answer.meta.cut_regions == 500
    assert answer.regions[0].shape.vertices[0][0] == pytest.approx(0)     # the first ones, in order
    assert Answer.from_dict(answer.to_dict()).meta.cut_regions == 500


@pytest.mark.parametrize("prompt_tokens, resized", [(150, True), (260, False)])
def test_a_qwen2_5_vl_image_resized_again_by_the_server_is_an_error_not_wrong_coordinates(prompt_tokens, resized):
    """504x308 is 18x11 = 198 merged tokens: a server reporting fewer prompt tokens downsized it."""
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 1}
    with serve(stream(sse_events(['[{"bbox_2d": [0, 0, 252, 154], "label": "field"}]'], usage=usage))) as srv:
        engine = RemoteEngine(url(srv), "qwen2.5-vl", family="qwen2_5_vl")
        ask = lambda: engine.ask(AskRequest(chip(500, 300), "field", task=Task.GROUNDING))
        if resized:
            with pytest.raises(RemoteEngineError, match=r"resized the 504x308 image .*150 prompt tokens.*max_pixels"):
                ask()
        else:
            assert len(ask().regions) == 1


@pytest.mark.parametrize("status, header", [(429, "0.05"), (503, None), (429, "Wed, 21 Oct 2026 07:28:00 GMT")])
def test_a_busy_server_is_asked_again_after_the_wait_it_asks_for(status, header):
    calls = []

    def behaviour(handler, body):
        calls.append(time.monotonic())
        if len(calls) <= 2:
            data = json.dumps({"error": {"message": "too many requests"}}).encode()
            handler.send_response(status)
            if header:
                handler.send_header("Retry-After", header)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        stream(sse_events(["answered"]))(handler, body)

    with serve(behaviour) as srv:
        engine = RemoteEngine(url(srv), "m")
        engine.retry_backoff = 0.02
        assert engine.ask(AskRequest(chip(32, 32), "Q?")).text == "answered"
        engine.busy_retries = 1
        calls.clear()
        with pytest.raises(RemoteEngineError, match=f"busy \\(HTTP {status}\\).*after 2 tries"):
            engine.ask(AskRequest(chip(32, 32), "Q?"))
    assert len(calls) == 2


def test_a_question_waiting_on_a_busy_server_can_be_cancelled():
    with serve(error(503, "overloaded")) as srv:
        engine = RemoteEngine(url(srv), "m")
        engine.retry_backoff = 5.0
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        start = time.monotonic()
        answer = engine.ask(AskRequest(chip(32, 32), "Q?"), cancel=cancel)
    assert answer.meta.finish_reason == "cancelled" and time.monotonic() - start < 2


def test_a_server_trickling_bytes_is_timed_out_between_pieces():
    """One byte every 0.3 s keeps each recv short; the wait between two pieces is still bounded."""
    def trickle(handler, body):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        first = sse_events(["first "])[1].encode()
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(first), first))
        handler.wfile.flush()
        for byte in b"ffff" * 20:
            if handler.server.stopping.wait(0.3):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
    with serve(trickle) as srv:
        start = time.monotonic()
        with pytest.raises(RemoteEngineError, match="stopped sending for more than 1 s"):
            RemoteEngine(url(srv), "m", timeout=1.0).ask(AskRequest(chip(32, 32), "Q?"))
    assert time.monotonic() - start < 3


def test_a_cancel_breaks_a_proxy_that_never_answers_connect(monkeypatch):
    """The socket is known from the moment it exists: a cancel breaks the CONNECT wait too (a TLS
    handshake itself is bounded by the timeout only: the ssl module takes the socket over)."""
    listener = socket.create_server(("127.0.0.1", 0))           # a proxy that accepts and says nothing
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        start = time.monotonic()
        answer = RemoteEngine("https://vllm.example.org/v1", "m", timeout=8).ask(AskRequest(chip(32, 32), "Q?"),
                                                                                 cancel=cancel)
    finally:
        listener.close()
    assert answer.meta.finish_reason == "cancelled" and time.monotonic() - start < 2


def test_an_endpoint_path_with_accents_or_spaces_is_percent_encoded():
    with serve(stream(sse_events(["ok"]))) as srv:
        answer = RemoteEngine(url(srv, "/modèle 1/v1?name=é"), "m").ask(AskRequest(chip(32, 32), "Q?"))
    assert answer.text == "ok"
    assert srv.received[0]["path"] == "/mod%C3%A8le%201/v1/chat/completions?name=%C3%A9"


def test_a_json_answer_with_a_null_error_is_an_answer():
    obj = {"choices": [{"index": 0, "message": {"content": "a harbour"}, "finish_reason": "stop"}], "error": None}
    with serve(error(200, json.dumps(obj))) as srv:
        assert RemoteEngine(url(srv), "m").ask(AskRequest(chip(32, 32), "Q?")).text == "a harbour"


def test_questions_in_flight_when_a_server_refuses_reasoning_effort_are_all_asked_again():
    def behaviour(handler, body):
        time.sleep(0.1)
        if "reasoning_effort" in body:
            return error(400, json.dumps({"error": {"message": "unknown field reasoning_effort"}}))(handler, body)
        return stream(sse_events(["fine"]))(handler, body)
    with serve(behaviour) as srv:
        engine = RemoteEngine(url(srv), "m")
        results = []
        threads = [threading.Thread(target=lambda: results.append(engine.ask(AskRequest(chip(32, 32), "Q?")).text))
                   for _ in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.01)
        for t in threads:
            t.join(30)
    assert results == ["fine"] * 4
