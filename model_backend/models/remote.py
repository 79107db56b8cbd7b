"""An engine that asks an OpenAI-compatible chat completions server (vLLM, Ollama's ``/v1``, llama.cpp).

Standard library HTTP (``http.client``) plus Pillow for the image; no ``requests``, no ``openai``
(ARCHITECTURE.md says why).

Endpoint rule: ``endpoint`` is the server's base URL. A trailing ``/chat/completions`` is removed, and a
URL with no path at all gets ``/v1``; any other path is kept as the base. So ``http://h:8000``,
``http://h:8000/v1`` and ``http://h:8000/v1/chat/completions`` all post to
``http://h:8000/v1/chat/completions``, while ``https://h/openai/v1`` posts to
``https://h/openai/v1/chat/completions``. ``user:password@`` in the URL becomes HTTP basic auth
(unless ``api_key`` is given); credentials and the query string never appear in ``describe()``,
answers or error messages.

Coordinates: the marked chip is sent as a PNG data URL. For ``rel_1000`` and ``square_unit`` families
the prompt coordinates do not depend on the image size, so a chip larger than ``max_image_pixels`` is
scaled down (aspect kept) before sending. For ``resized_pixels`` (Qwen2.5-VL) the chip is resized here
to multiples of the family's resize factor (28) within ``max_image_pixels`` so that the server's own
resize is the identity and the pixel coordinates written in the prompt are those the model sees;
``max_image_pixels`` must then not exceed the server's ``max_pixels``.

Proxies: ``HTTP_PROXY`` / ``HTTPS_PROXY`` (either case) are honoured as curl and pip honour them, with
``NO_PROXY`` exceptions; a server on this machine (``localhost``, a loopback address) never goes through
one. An https endpoint is reached through a CONNECT tunnel, an http one by sending the absolute URL to
the proxy. ``user:password@`` in the proxy URL becomes ``Proxy-Authorization`` and never
appears in messages.

Timeouts: ``timeout`` (seconds) bounds connecting, the wait from sending the question to the first
piece of the answer, and every wait between two pieces; keep-alive comments and empty events reset
neither. Bounds: at most ``max_new_tokens`` pieces (and 64 characters per piece) are read whatever
the server does; past that the stream is closed and the answer ends with ``finish_reason`` "length".
A stream that ends without ``data: [DONE]`` keeps what came and ends with "incomplete". An event
that is not UTF-8 JSON of the chat completion chunk shape is an error, never skipped.

Retries: only when the connection fails before any response byte arrives (refused, reset, closed
without an answer), ``retries`` times with a short doubling backoff; after HTTP 429 or 503 (busy),
``busy_retries`` times, waiting as the server's ``Retry-After`` says; never after another HTTP status
or once streaming has started.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import io
import ipaddress
import json
import math
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from typing import Dict, List, NoReturn, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..core.encoding import Convention, CoordinateFrame, pad_to_aspect
from ..core.errors import EarthGPTXError, InvalidArgumentError
from ..core.families import family as lookup_family
from ..core.interface import Answer, AnswerMeta, AskRequest
from .engine import Engine, TextCallback, finish_answer
from .prompting import build_prompt
from .thinking import ThinkingStream

BACKEND = "openai"
_ERROR_TEXT_CHARS = 300
_MAX_ERROR_BODY = 64 * 1024
_MAX_JSON_BODY = 32 * 1024 * 1024
_MAX_LINE = 8 * 1024 * 1024
_WATCH_INTERVAL = 0.05
_MAX_CHARS_PER_PIECE = 64
#: where servers put a thinking model's thoughts: vLLM (``reasoning``; ``reasoning_content`` before
#: 0.11), llama.cpp (``reasoning_content``), Ollama's /v1 (``reasoning``)
REASONING_FIELDS = ("reasoning", "reasoning_content")


class RemoteEngineError(EarthGPTXError):
    """The server could not be reached, refused the request, timed out or broke off the answer."""


class _RejectedReasoningEffort(RemoteEngineError):
    """HTTP 400 about ``reasoning_effort``: the server knows no "none" (vLLM before it did)."""


class ServerBusyError(RemoteEngineError):
    """HTTP 429 or 503: the server asks to come back later (``retry_after`` seconds when it said)."""

    def __init__(self, message: str, retry_after: Optional[float]) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def chat_completions_url(endpoint: str) -> Tuple[str, str, int, str, str, str]:
    """``(scheme, host, port, request_path, base_url, userinfo)`` of ``endpoint`` under the module's rule.

    ``request_path`` ends with ``/chat/completions`` (plus the query, if any); ``base_url`` is the
    base without credentials or query (for display); ``userinfo`` is ``user:password`` or ``""``.
    """
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise InvalidArgumentError("the server endpoint is empty; give a URL like http://127.0.0.1:8000/v1")
    try:
        parts = urllib.parse.urlsplit(endpoint.strip())
    except ValueError as exc:  # e.g. "http://[::1:8000/v1": an IPv6 address without its closing bracket
        raise InvalidArgumentError(f"the server endpoint is not a valid URL ({exc}); an IPv6 address is "
                                   f"written in brackets: http://[::1]:8000/v1") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidArgumentError(f"the server endpoint must be an http:// or https:// URL, got {_safe(endpoint)!r}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidArgumentError(f"the server endpoint has an invalid port: {_safe(endpoint)!r}") from None
    if not host:
        raise InvalidArgumentError(f"the server endpoint has no host: {_safe(endpoint)!r}")
    port = port or (443 if scheme == "https" else 80)
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        path = path[: -len("/chat/completions")].rstrip("/")
    if not path and not parts.path.rstrip("/").endswith("/chat/completions"):
        path = "/v1"
    # http.client sends the request line as ASCII: anything else (an accent, a space) percent-encoded
    query = urllib.parse.quote(parts.query, safe="=&%/?:@!$'()*+,;-._~")
    request_path = urllib.parse.quote(path, safe="/%!$&'()*+,;=:@-._~") + "/chat/completions" + \
        ("?" + query if query else "")
    shown_host = f"[{host}]" if ":" in host else host
    explicit_port = f":{parts.port}" if parts.port else ""
    base_url = f"{scheme}://{shown_host}{explicit_port}{path}"
    return scheme, host, port, request_path, base_url, _userinfo(parts)


def _userinfo(parts: urllib.parse.SplitResult) -> str:
    """``user:password`` of a URL, percent-decoded, or ``""`` when it has none."""
    if parts.username is None:
        return ""
    return urllib.parse.unquote(parts.username) + ":" + urllib.parse.unquote(parts.password or "")


def _basic_auth(userinfo: str) -> str:
    """The value of an ``Authorization`` / ``Proxy-Authorization`` header for ``user:password``."""
    return "Basic " + base64.b64encode(userinfo.encode("utf-8")).decode("ascii")


Proxy = Tuple[str, int, Dict[str, str]]


def _is_loopback(host: str) -> bool:
    """A server on this machine, which no proxy can reach."""
    try:
        return host.lower() == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(scheme: str, host: str) -> Optional[Proxy]:
    """``(host, port, headers)`` of the proxy the environment names for ``scheme://host``, or None when
    there is none or ``NO_PROXY`` exempts ``host``; ``headers`` carries ``Proxy-Authorization``."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    if not url or _is_loopback(host) or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    try:
        parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        proxy_host, proxy_port = parts.hostname, parts.port or 80
    except ValueError:
        proxy_host = None
    if not proxy_host or parts.scheme.lower() != "http":
        raise InvalidArgumentError(f"the {scheme} proxy of the environment must be an http://host:port URL, "
                                   f"got {_safe(url)!r}")
    userinfo = _userinfo(parts)
    return proxy_host, proxy_port, {"Proxy-Authorization": _basic_auth(userinfo)} if userinfo else {}


def _safe(endpoint: str) -> str:
    """``endpoint`` without ``user:password@`` and query (for error messages)."""
    try:
        p = urllib.parse.urlsplit(endpoint.strip())
        netloc = p.netloc.rsplit("@", 1)[-1]
        return urllib.parse.urlunsplit((p.scheme, netloc, p.path, "", ""))
    except ValueError:
        return "<unparseable URL>"


def fit_to_factor(width: int, height: int, factor: int, max_pixels: int,
                  min_pixels: Optional[int] = None) -> Tuple[int, int]:
    """``(w, h)``, multiples of ``factor`` nearest to ``width`` x ``height`` with ``min_pixels`` <=
    w * h <= ``max_pixels`` (the rule of the Qwen-VL image processors' ``smart_resize``)."""
    if min_pixels is None:
        min_pixels = 4 * factor * factor
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if w * h > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif w * h < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return int(w), int(h)


def _fit_within(width: int, height: int, max_pixels: int) -> Tuple[int, int]:
    """``(w, h)`` scaled down (aspect kept) so that w * h <= ``max_pixels``; unchanged when it fits."""
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    w, h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    return w, h


def _png_data_url(image: np.ndarray, size: Tuple[int, int]) -> str:
    pil = Image.fromarray(np.ascontiguousarray(image))
    if pil.size != size:
        pil = pil.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _openai_messages(messages: List[dict], image_url: str) -> List[dict]:
    """Chat-template messages (image as ``{"type": "image"}``) -> OpenAI chat completions messages."""
    out = []
    for m in messages:
        content = []
        for item in m["content"]:
            if item.get("type") == "image":
                content.append({"type": "image_url", "image_url": {"url": image_url}})
            elif item.get("type") == "text":
                content.append({"type": "text", "text": item["text"]})
            else:
                content.append(dict(item))
        out.append({"role": m["role"], "content": content})
    return out


def _error_text(raw: bytes, secrets: Sequence[str] = ()) -> str:
    """The server's error message from an error body (OpenAI, FastAPI or plain text), one line,
    at most ~300 characters, with every one of ``secrets`` (a server may echo the token) redacted."""
    text = raw.decode("utf-8", "replace").strip()
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(err, dict):
            err = err.get("message") or json.dumps(err)
        elif isinstance(err, list):
            err = json.dumps(err)
        if err:
            text = str(err)
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    text = " ".join(text.split()) or "(no error text)"
    if len(text) > _ERROR_TEXT_CHARS:
        text = text[:_ERROR_TEXT_CHARS] + "..."
    return text


class _Call:
    """One ``ask`` in flight: its current connection, so that a cancel or ``close`` can break it off."""

    def __init__(self) -> None:
        self.conn: Optional[http.client.HTTPConnection] = None
        #: the connection's socket, kept: ``conn.sock`` is None once a close-delimited response owns it
        self.sock: Optional[socket.socket] = None
        self.done = threading.Event()
        self.closed = False
        self.timed_out = False        # the watcher broke the connection at the stream's deadline
        self.sent_reasoning_effort = False

    def abort(self) -> None:
        # shutdown (not close) from another thread: wakes a blocked recv without racing on the descriptor
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Stream:
    """What came back: text pieces, finish reason, token usage, and the clock of the wait.

    ``limit`` is the most pieces to read (the request's ``max_new_tokens``); ``deadline`` is the
    ``time.monotonic()`` by which the next piece must come (moved by progress only, never by keep-alives).
    Content goes to the caller through ``split`` (thoughts apart), reasoning deltas to ``on_reasoning``.
    """

    def __init__(self, limit: int, timeout: float, split: ThinkingStream,
                 on_reasoning: Optional[TextCallback] = None) -> None:
        self.pieces: List[str] = []          # content, as it came (a leaked <think> block included)
        self.reasoning: List[str] = []       # reasoning deltas
        self.split, self.on_reasoning = split, on_reasoning
        self.finish: Optional[str] = None
        self.prompt_tokens: Optional[int] = None
        self.completion_tokens: Optional[int] = None
        self.first_piece: Optional[float] = None
        self.saw_data = False
        self.cancelled = False
        self.done = False          # the final event ([DONE], or a whole JSON answer) arrived
        self.overrun = False       # the server went on past ``limit``: we stopped reading
        self.limit = limit
        self.tokens = 0            # pieces of text (answer or reasoning) read so far
        self.chars = 0
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.reading = False       # the body is being read (the watcher enforces the deadline)

    def progress(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def finish_reason(self) -> str:
        if self.cancelled:
            return "cancelled"
        if self.overrun:
            return "length"
        if not self.done:
            return "incomplete"
        return "length" if self.finish == "length" else "stop"


class RemoteEngine(Engine):
    """A client of an OpenAI-compatible ``/v1/chat/completions`` server (see the module docstring).

    ``family`` names how the served model reads and writes coordinates (``qwen3_vl``, ``qwen2_5_vl``,
    ``earthgptx``). ``thinking``: let a thinking model think (default: asked not to, see
    ``_thinking_fields``; thoughts that still come are kept apart, never parsed). The engine holds no
    connection between calls; calls from several threads at once are fine. ``retry_backoff`` (seconds,
    doubled per retry, at most 2 s) and ``busy_retries`` may be changed after creation.
    """

    retry_backoff: float = 0.25
    #: times a question is asked again after HTTP 429 / 503 (the server's Retry-After, at most 30 s, or
    #: the doubling backoff)
    busy_retries: int = 8
    #: questions may be asked from several threads at once (``find --concurrency``)
    concurrent = True

    def __init__(self, endpoint: str, model: str, family: str = "qwen3_vl", api_key: Optional[str] = None,
                 timeout: float = 120.0, retries: int = 2, max_image_pixels: int = 1024 * 1024,
                 thinking: bool = False) -> None:
        self.thinking = bool(thinking)
        self._reasoning_effort = True   # send reasoning_effort "none" until a server refuses it
        (self._scheme, self._host, self._port, self._path,
         self.endpoint, userinfo) = chat_completions_url(endpoint)
        if not isinstance(model, str) or not model.strip():
            raise InvalidArgumentError("the model name is empty; give the name the server serves the model under")
        self.model = model.strip()
        self.family = lookup_family(family)
        if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
            raise InvalidArgumentError(f"retries must be 0..10, got {retries!r}")
        min_pixels = 4 * self.family.resize_factor ** 2
        if not isinstance(max_image_pixels, int) or max_image_pixels < max(min_pixels, 3136):
            raise InvalidArgumentError(f"max_image_pixels must be an integer of at least {max(min_pixels, 3136)}, "
                                       f"got {max_image_pixels!r}")
        self.timeout = float(timeout)
        self.retries = retries
        self.max_image_pixels = max_image_pixels
        self._auth: Optional[str] = None
        api_key = api_key.strip() if isinstance(api_key, str) else api_key
        if api_key:
            if not api_key.isascii() or not api_key.isprintable() or " " in api_key:
                raise InvalidArgumentError("the API key holds a space, a control or a non-ASCII character "
                                           "(copied with extra text?); give the key alone")
            self._auth = "Bearer " + api_key
        elif userinfo:
            self._auth = _basic_auth(userinfo)
        self._host_label = (f"[{self._host}]" if ":" in self._host else self._host) + f":{self._port}"
        self._proxy = proxy_for(self._scheme, self._host)
        self._target = self._path
        #: where a connection goes, for messages about reaching it
        #: what must never appear in a message: the endpoint's user:password and password, and the
        #: credential of each authorization header (the API key itself for a Bearer token)
        headers = [self._auth, *(self._proxy[2].values() if self._proxy else ())]
        credentials = [value.split(" ", 1)[1] for value in headers if value]
        self._secrets = tuple(x for x in (userinfo, userinfo.partition(":")[2], *credentials) if len(x) >= 4)
        self._where = self._host_label + (f" (through the proxy {self._proxy[0]}:{self._proxy[1]})"
                                          if self._proxy else "")
        if self._proxy and self._scheme == "http":  # a plain-HTTP proxy takes the absolute URL
            self._target = f"http://{self._host_label}{self._path}"
        self._calls: set = set()
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"RemoteEngine({self.endpoint!r}, model={self.model!r}, family={self.family.name!r})"

    @property
    def url(self) -> str:
        """The chat completions URL posted to (without credentials or query)."""
        return self.endpoint + "/chat/completions"

    # -- Engine API ------------------------------------------------------------------------------
    def describe(self) -> Dict[str, object]:
        described: Dict[str, object] = {"model_id": self.model, "backend": BACKEND, "endpoint": self.endpoint,
                                         "family": self.family.name, "device": "remote", "quantization": "remote"}
        if self._proxy:
            described["proxy"] = f"{self._proxy[0]}:{self._proxy[1]}"
        return described

    def close(self) -> None:
        """Break off calls in flight (they raise ``RemoteEngineError``); later calls raise too."""
        with self._lock:
            self._closed = True
            calls = list(self._calls)
        for call in calls:
            call.closed = True
            call.abort()

    def ask(self, request: AskRequest, on_text: Optional[TextCallback] = None,
            cancel: Optional[threading.Event] = None, on_reasoning: Optional[TextCallback] = None) -> Answer:
        t0 = time.perf_counter()
        if self._closed:
            raise RemoteEngineError("the remote engine is closed")
        image = pad_to_aspect(request.image)  # a very elongated chip, padded to what processors take
        frame, size = self._frame(request.image.shape, image.shape)
        prompt = build_prompt(dataclasses.replace(request, image=image), self.family, frame)
        fields = {
            "model": self.model,
            "messages": _openai_messages(prompt.messages, _png_data_url(prompt.image, size)),
            "max_tokens": request.max_new_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self._thinking_fields(),
        }
        t_encoded = time.perf_counter()
        busy = 0
        while True:
            try:
                stream = self._call(fields, request.max_new_tokens, cancel, on_text, on_reasoning)
                break
            except _RejectedReasoningEffort:   # a server that knows no reasoning_effort "none" (older vLLM)
                self._reasoning_effort = False
                fields.pop("reasoning_effort", None)
            except ServerBusyError as exc:      # 429 / 503: wait as asked (or doubling), then again
                if busy >= self.busy_retries:
                    raise RemoteEngineError(f"{exc}; still busy after {busy + 1} tries") from None
                delay = min(30.0, exc.retry_after if exc.retry_after is not None else self.retry_backoff * 2 ** busy)
                busy += 1
                if cancel is not None and cancel.wait(delay):
                    stream = _Stream(request.max_new_tokens, self.timeout, ThinkingStream(None))
                    stream.cancelled = True
                    break
                if cancel is None:
                    time.sleep(delay)
                if self._closed:
                    raise RemoteEngineError("the remote engine was closed while the server was busy") from None
        t_end = time.perf_counter()
        words = sum(len(item["text"].split()) for m in prompt.messages for item in m["content"]
                    if item.get("type") == "text")
        self._check_not_resized(frame, stream.prompt_tokens, words)

        finish = stream.finish_reason()
        meta = AnswerMeta(
            model_id=self.model, backend=BACKEND, quantization="remote", device=self._host_label,
            prompt_tokens=int(stream.prompt_tokens or 0),
            generated_tokens=int(stream.completion_tokens if stream.completion_tokens is not None
                                 else stream.tokens),
            timings={"encode": t_encoded - t0,
                     "first_token": (stream.first_piece if stream.first_piece is not None else t_end) - t_encoded,
                     "generate": t_end - t_encoded},
            finish_reason=finish)
        content, reasoning = "".join(stream.pieces), "".join(stream.reasoning)
        if not self.thinking and finish == "stop" and not content.strip() and reasoning.strip():
            # asked not to think, a whole answer, all of it as reasoning: the model wrote no <think>
            # block and the server's reasoning parser expected one (vLLM's qwen3 parser for Qwen3.5)
            content, reasoning = reasoning, ""
        answer = finish_answer(content, self.family, frame, meta, reasoning=reasoning)
        answer.meta.timings["total"] = time.perf_counter() - t0
        return answer

    def _check_not_resized(self, frame: CoordinateFrame, prompt_tokens: Optional[int], words: int) -> None:
        """For pixel-coordinate families (Qwen2.5-VL) the image is sent at the size the prompt's and the
        answer's coordinates refer to; a server whose own ``max_pixels`` is lower resizes it again and
        the coordinates no longer match. Its usage count tells: fewer prompt tokens than the image's own
        tokens (one per ``resize_factor``-pixel square) plus the text's ``words`` (a word is at least
        one token) means it did."""
        if frame.convention is not Convention.RESIZED_PIXELS or prompt_tokens is None:
            return
        factor = self.family.resize_factor
        image_tokens = (frame.resized_width // factor) * (frame.resized_height // factor)
        if prompt_tokens < image_tokens + words:
            raise RemoteEngineError(
                f"the server at {self._host_label} resized the {frame.resized_width}x{frame.resized_height} image "
                f"it was sent (it counts {prompt_tokens} prompt tokens, the image alone is {image_tokens}), so the "
                f"answer's pixel coordinates would not match: raise the server's max_pixels to at least "
                f"{frame.resized_width * frame.resized_height} (vLLM: --mm-processor-kwargs '{{\"max_pixels\": N}}') "
                f"or lower this engine's max_image_pixels")

    def _thinking_fields(self) -> Dict[str, object]:
        """The request fields that allow or forbid thinking: the chat template's ``enable_thinking``
        (vLLM, SGLang, llama.cpp) and, to forbid it, ``reasoning_effort`` "none" (Ollama's ``/v1``,
        llama.cpp), left out for servers that refused it once."""
        fields: Dict[str, object] = {"chat_template_kwargs": {"enable_thinking": self.thinking}}
        if not self.thinking and self._reasoning_effort:
            fields["reasoning_effort"] = "none"
        return fields

    def _call(self, fields: Dict[str, object], limit: int, cancel: Optional[threading.Event],
              on_text: Optional[TextCallback], on_reasoning: Optional[TextCallback]) -> "_Stream":
        """One exchange with the server; what came back."""
        body = json.dumps(fields, ensure_ascii=False).encode("utf-8")
        call = _Call()
        with self._lock:
            if self._closed:
                raise RemoteEngineError("the remote engine is closed")
            self._calls.add(call)
        call.sent_reasoning_effort = "reasoning_effort" in fields
        stream = _Stream(limit, self.timeout, ThinkingStream(on_text, on_reasoning), on_reasoning)
        threading.Thread(target=self._watch, args=(call, cancel, stream), daemon=True,
                         name="remote-engine-watch").start()
        try:
            self._exchange(body, call, cancel, stream)
        finally:
            call.done.set()
            if call.conn is not None:
                call.conn.close()
            with self._lock:
                self._calls.discard(call)
        stream.split.close()
        return stream

    # -- internals -------------------------------------------------------------------------------
    def _frame(self, chip_shape: Tuple[int, ...], image_shape: Tuple[int, ...]
               ) -> Tuple[CoordinateFrame, Tuple[int, int]]:
        """The coordinate frame of a chip of ``chip_shape`` (H, W, 3) given as an image of
        ``image_shape`` (the chip, padded), and the (w, h) of the image to send."""
        (h, w), (ih, iw) = chip_shape[:2], image_shape[:2]
        conv = self.family.convention
        if conv is Convention.RESIZED_PIXELS:
            rw, rh = fit_to_factor(iw, ih, self.family.resize_factor, self.max_image_pixels)
            return CoordinateFrame(conv, w, h, rw, rh, iw, ih), (rw, rh)
        return CoordinateFrame(conv, w, h, image_width=iw, image_height=ih), _fit_within(iw, ih, self.max_image_pixels)

    @staticmethod
    def _watch(call: _Call, cancel: Optional[threading.Event], stream: "_Stream") -> None:
        """Break the call's connection when ``cancel`` is set, or when the stream's deadline passes
        while a read is still blocked (a server trickling bytes keeps each recv short but never ends)."""
        while not call.done.wait(_WATCH_INTERVAL):
            if cancel is not None and cancel.is_set():
                call.abort()          # again every interval: a connection opened meanwhile is broken too
            elif stream.reading and time.monotonic() > stream.deadline + _WATCH_INTERVAL:
                call.timed_out = True
                call.abort()

    def _new_connection(self) -> http.client.HTTPConnection:
        host, port = (self._proxy[0], self._proxy[1]) if self._proxy else (self._host, self._port)
        if self._scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ssl.create_default_context())
            if self._proxy:
                conn.set_tunnel(self._host, self._port, headers=self._proxy[2])
            return conn
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _headers(self) -> Dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream",
                   "Connection": "close", "User-Agent": "EarthGPT-X-QGIS"}
        if self._auth:
            headers["Authorization"] = self._auth
        if self._proxy and self._scheme == "http":
            headers.update(self._proxy[2])
        return headers

    def _stopped(self, call: _Call, cancel: Optional[threading.Event], stream: _Stream) -> bool:
        """True (and ``stream`` marked cancelled) when the caller cancelled; raises when closed."""
        if call.closed:
            raise RemoteEngineError("the remote engine was closed while answering")
        if cancel is not None and cancel.is_set():
            stream.cancelled = True
            return True
        return False

    def _exchange(self, body: bytes, call: _Call, cancel: Optional[threading.Event], stream: _Stream) -> None:
        resp = self._post(body, call, cancel, stream)
        if resp is None:
            return
        if resp.status != 200:
            self._raise_http_error(resp, call.sent_reasoning_effort)
        ctype = (resp.getheader("Content-Type") or "").lower()
        if "json" in ctype and "event-stream" not in ctype:
            self._read_json(resp, call, cancel, stream)
        else:
            self._read_sse(resp, call, cancel, stream)
        if not stream.saw_data and not stream.cancelled:
            raise RemoteEngineError(
                f"the server at {self._host_label} did not answer with a chat completion stream "
                f"(content type {ctype or 'none'!r}); is {self.url} an OpenAI-compatible endpoint?")

    def _post(self, body: bytes, call: _Call, cancel: Optional[threading.Event],
              stream: _Stream) -> Optional[http.client.HTTPResponse]:
        """Send the request and return the response (status line and headers read); None if cancelled."""
        attempt = 0
        while True:
            if self._stopped(call, cancel, stream):
                return None
            conn = self._new_connection()
            call.conn = conn
            phase = "connect"
            create = conn._create_connection   # http.client's hook: the TCP socket, before TLS or CONNECT

            def created(*args, **kwargs):
                call.sock = create(*args, **kwargs)   # so that a cancel or close can break the handshake
                return call.sock
            conn._create_connection = created
            try:
                conn.connect()
                phase = "answer"
                stream.progress()             # the first-token clock starts when the question is sent
                call.sock = conn.sock
                call.sock.settimeout(self.timeout)
                conn.request("POST", self._target, body=body, headers=self._headers())
                return conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                call.conn = call.sock = None
                if self._stopped(call, cancel, stream):
                    return None
                if isinstance(exc, TimeoutError):
                    if phase == "connect":
                        raise RemoteEngineError(f"could not connect to {self._where} within "
                                                f"{self.timeout:g} s (timeout)") from None
                    raise RemoteEngineError(f"no answer from {self._where} within {self.timeout:g} s "
                                            f"(timeout); the server may be busy or still loading the model") from None
                if isinstance(exc, ConnectionError):
                    if attempt < self.retries:
                        attempt += 1
                        delay = min(2.0, self.retry_backoff * 2 ** (attempt - 1))
                        if cancel is not None:
                            cancel.wait(delay)
                        else:
                            time.sleep(delay)
                        continue
                    what = ("refused the connection" if isinstance(exc, ConnectionRefusedError)
                            else f"dropped the connection ({type(exc).__name__})")
                    raise RemoteEngineError(f"the server at {self._where} {what}; tried {attempt + 1} "
                                            f"time(s). Is the server running at {self.endpoint}?") from None
                if isinstance(exc, socket.gaierror):
                    raise RemoteEngineError(f"cannot resolve the server host {self._host!r}: {exc}") from None
                if isinstance(exc, ssl.SSLError):
                    raise RemoteEngineError(f"TLS error talking to {self._where}: {exc}") from None
                if isinstance(exc, http.client.HTTPException):
                    raise RemoteEngineError(f"the server at {self._where} did not answer valid HTTP: "
                                            f"{type(exc).__name__}") from None
                raise RemoteEngineError(f"cannot reach the server at {self._where}: {exc}") from None

    def _raise_http_error(self, resp: http.client.HTTPResponse, sent_reasoning_effort: bool = False) -> None:
        try:
            raw = resp.read(_MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            raw = b""
        text = _error_text(raw, self._secrets)
        status = resp.status
        if status in (429, 503):
            try:
                retry_after: Optional[float] = max(0.0, float(resp.getheader("Retry-After") or ""))
            except ValueError:
                retry_after = None   # absent, or an HTTP date: our own backoff
            raise ServerBusyError(f"the server at {self._host_label} is busy (HTTP {status}): {text}", retry_after)
        if status == 400 and "reasoning" in text.lower() and sent_reasoning_effort:
            raise _RejectedReasoningEffort(text)
        if status in (401, 403):
            if self._auth:
                msg = (f"the server at {self._host_label} refused the API token (HTTP {status}); "
                       f"check the API key: {text}")
            else:
                msg = (f"the server at {self._host_label} needs an API token (HTTP {status}); "
                       f"set the API key: {text}")
        elif status == 404:
            msg = (f"the server at {self._host_label} has no {self.url} or does not serve a model named "
                   f"{self.model!r} (HTTP 404); check the endpoint URL and the model name: {text}")
        else:
            msg = f"the server at {self._host_label} answered HTTP {status} {resp.reason}: {text}"
            location = resp.getheader("Location")
            if 300 <= status < 400 and location:
                msg += f" (redirected to {_safe(location)}; use that URL)"
        raise RemoteEngineError(msg)

    @staticmethod
    def _deliver(piece: str, stream: _Stream, reasoning: bool = False) -> None:
        if stream.first_piece is None:
            stream.first_piece = time.perf_counter()
        if reasoning:
            stream.reasoning.append(piece)
            if stream.on_reasoning is not None:
                stream.on_reasoning(piece)
        else:
            stream.pieces.append(piece)
            stream.split.feed(piece)

    def _read_json(self, resp, call, cancel, stream) -> None:
        """A server that ignored ``stream: true`` and sent one chat completion object."""
        raw = b""
        while True:
            chunk = self._read_some(resp, call, cancel, stream)
            if not chunk:
                break
            raw += chunk
            if len(raw) > _MAX_JSON_BODY:
                raise RemoteEngineError(f"the server at {self._host_label} sent an answer larger than "
                                        f"{_MAX_JSON_BODY // (1024 * 1024)} MiB")
        if stream.cancelled:
            return
        obj = self._json_object(raw, "answer")
        if obj.get("error"):
            raise RemoteEngineError(f"the server at {self._host_label} reported an error: "
                                    f"{_error_text(raw, self._secrets)}")
        self._usage(obj, stream)
        for choice in self._choices(obj):
            stream.saw_data = stream.done = True
            message = choice.get("message")
            if message is None:
                message = {}
            elif not isinstance(message, dict):
                self._malformed("a choice's message is not an object")
            thought = self._thought(message)
            if thought:
                self._deliver(thought[: stream.limit * _MAX_CHARS_PER_PIECE], stream, reasoning=True)
            content = self._text(message, "content")
            if content:
                self._deliver(content[: stream.limit * _MAX_CHARS_PER_PIECE], stream)
            self._finish(choice, stream)

    def _read_some(self, resp, call, cancel, stream) -> bytes:
        """The next bytes of the body (b"" at its end or on a cancel), waiting at most until the
        stream's deadline; a timeout or a broken connection raises ``RemoteEngineError``."""
        if self._stopped(call, cancel, stream):
            return b""
        left = stream.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            call.sock.settimeout(left)
            stream.reading = True
            data = resp.read1(65536)
            if call.timed_out:
                raise TimeoutError
            return data
        except TimeoutError:
            if self._stopped(call, cancel, stream):
                return b""
            if stream.tokens == 0:
                raise RemoteEngineError(f"no answer from {self._host_label} within {stream.timeout:g} s (timeout; "
                                        f"keep-alive messages do not count); the server may be busy or still "
                                        f"loading the model") from None
            raise RemoteEngineError(f"the server at {self._host_label} stopped sending for more than "
                                    f"{stream.timeout:g} s (timeout) after {len(stream.pieces)} piece(s)") from None
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            if self._stopped(call, cancel, stream):
                return b""
            if call.timed_out:       # the watcher broke a read that outlived the deadline
                raise RemoteEngineError(f"the server at {self._host_label} stopped sending for more than "
                                        f"{stream.timeout:g} s (timeout) after {len(stream.pieces)} piece(s)") from None
            if stream.saw_data:
                return b""            # kept, and marked incomplete: the final event never came
            raise RemoteEngineError(f"the connection to {self._host_label} broke off before the answer "
                                    f"began") from None

    @staticmethod
    def _usage(obj: dict, stream: _Stream) -> None:
        usage = obj.get("usage")
        if isinstance(usage, dict):
            p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(p, int) and not isinstance(p, bool):
                stream.prompt_tokens = p
            if isinstance(c, int) and not isinstance(c, bool):
                stream.completion_tokens = c

    def _read_sse(self, resp, call, cancel, stream) -> None:
        """Read ``data: {...}`` events until ``data: [DONE]``, the end of the body, the piece limit
        or a cancel."""
        buf = b""
        while True:
            chunk = self._read_some(resp, call, cancel, stream)
            if not chunk:
                if buf and not stream.cancelled:
                    self._event(buf, stream)
                return
            buf += chunk
            while True:
                end = buf.find(b"\n")
                if end < 0:
                    break
                line, buf = buf[:end], buf[end + 1:]
                if self._event(line, stream):
                    return
                if self._stopped(call, cancel, stream):
                    return
            if len(buf) > _MAX_LINE:
                raise RemoteEngineError(f"the server at {self._host_label} sent an event line longer than "
                                        f"{_MAX_LINE} bytes")

    def _event(self, line: bytes, stream: _Stream) -> bool:
        """Handle one SSE line; True when reading must stop (``[DONE]``, or the piece limit passed)."""
        line = line.rstrip(b"\r")
        if not line.startswith(b"data:"):
            return False          # blank separators, ": comments", event:, id:, retry:
        data = line[5:].strip()
        if not data:
            return False
        if data == b"[DONE]":
            stream.saw_data = stream.done = True
            return True
        obj = self._json_object(data, "stream event")
        stream.saw_data = True
        if obj.get("error"):
            raise RemoteEngineError(f"the server at {self._host_label} reported an error while answering: "
                                    f"{_error_text(data, self._secrets)}")
        if obj.get("usage") is not None:
            stream.progress()
        self._usage(obj, stream)
        for choice in self._choices(obj):
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta is None:
                delta = {}
            elif not isinstance(delta, dict):
                self._malformed("a choice's delta is not an object")
            thought = self._thought(delta)
            pieces = [(name, text) for name, text in (("content", self._text(delta, "content")),
                                                      ("reasoning", thought)) if text]
            if pieces:
                if stream.tokens >= stream.limit or stream.chars > stream.limit * _MAX_CHARS_PER_PIECE:
                    stream.overrun = True       # the server ignores max_tokens: we stop here
                    return True
                stream.tokens += 1
                stream.progress()
            for name, text in pieces:
                stream.chars += len(text)
                self._deliver(text, stream, reasoning=name != "content")
            if self._finish(choice, stream):
                stream.progress()
        return False

    def _json_object(self, data: bytes, what: str) -> dict:
        """``data`` as a JSON object; anything else is a ``RemoteEngineError`` naming ``what``."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            self._malformed(f"a {what} that is not UTF-8 text")
        except ValueError:
            self._malformed(f"a {what} that is not JSON: {_error_text(data, self._secrets)}")
        if not isinstance(obj, dict):
            self._malformed(f"a {what} that is not a JSON object: {_error_text(data, self._secrets)}")
        return obj

    def _choices(self, obj: dict) -> List[dict]:
        choices = obj.get("choices")
        if choices is None:
            return []
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            self._malformed("'choices' that is not a list of objects")
        return choices

    def _text(self, obj: dict, name: str) -> str:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            self._malformed(f"a {name!r} that is not text")
        return value or ""

    def _thought(self, obj: dict) -> str:
        """The reasoning text of a message or delta: the first of ``REASONING_FIELDS`` that holds one
        (vLLM, renaming the field, sent the same thought under both names)."""
        return next((t for t in (self._text(obj, n) for n in REASONING_FIELDS) if t), "")

    def _finish(self, choice: dict, stream: _Stream) -> bool:
        """Note the choice's finish reason; True when it has one."""
        reason = choice.get("finish_reason")
        if reason is None:
            return False
        if not isinstance(reason, str):
            self._malformed("a 'finish_reason' that is not text")
        stream.finish = reason
        return True

    def _malformed(self, what: str) -> NoReturn:
        raise RemoteEngineError(f"the server at {self._host_label} sent {what}; is {self.url} an "
                                f"OpenAI-compatible chat completions endpoint?")
