"""A recording OpenAI-compatible chat-completions server on 127.0.0.1 (stdlib), for tests."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.server.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        try:
            self.server.behaviour(self, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@contextlib.contextmanager
def serve(behaviour):
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.behaviour, srv.received, srv.stopping = behaviour, [], threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stopping.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def url(srv, suffix="/v1"):
    return f"http://127.0.0.1:{srv.server_address[1]}{suffix}"


def delta(text, finish=None):
    return {"id": "c1", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


def sse_events(pieces, finish="stop", usage=None, done=True):
    events = ["data: " + json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant"},
                                                    "finish_reason": None}]})]
    events += ["data: " + json.dumps(delta(p)) for p in pieces]
    events.append("data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
    if usage:
        events.append("data: " + json.dumps({"choices": [], "usage": usage}))
    if done:
        events.append("data: [DONE]")
    return [e + "\n\n" for e in events]


def stream(events, delay=0.0, chunked=True, terminate=True):
    """A behaviour sending ``events`` (str or bytes, any iterable, endless ones too) as an SSE body,
    ``delay`` seconds apart (stoppable)."""
    def behaviour(handler, body):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.close_connection = True
        handler.end_headers()
        for ev in events:
            if delay and handler.server.stopping.wait(delay):
                return
            data = ev if isinstance(ev, bytes) else ev.encode()
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            handler.wfile.flush()
        if not terminate:
            handler.close_connection = True       # chunked body cut off: no terminating chunk
            return
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
    return behaviour


def error(status, text, content_type="application/json"):
    def behaviour(handler, body):
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return behaviour
