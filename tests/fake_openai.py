"""A scripted chat-completions server on 127.0.0.1, for what a real server (see
test_openai_served.py: `transformers serve`) cannot produce on demand: a 429 with
Retry-After, a torn response, an answer without choices or with an empty message, a 401
echoing the key, a judge whose scores are known in advance, and a count of the requests
it got and of how many were in flight at once.

    with FakeOpenAI(reply=lambda body: "text") as server:
        server.script = [("status", 429, {"Retry-After": "1"}), ("torn",), ("no_choices",),
                         ("empty",), ("not_json",), ("stall", 1.5)]   # consumed one per request
        ... base_url=server.url ...
        server.requests  # [(path, authorization header, body, time received, headers (lower-case names))]
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeOpenAI:
    def __init__(self, reply, key: str | None = None):
        self.reply = reply  # body -> the assistant's text
        self.key = key  # when set, any other Authorization is a 401 echoing what was sent
        self.script: list[tuple] = []
        self.requests: list[tuple] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        # shutdown() waits for serve_forever without a time-out: a stuck server fails the test
        # loudly instead of hanging the suite
        stopper = threading.Thread(target=self._server.shutdown, daemon=True)
        stopper.start()
        stopper.join(10)
        if stopper.is_alive():
            raise RuntimeError("the fake OpenAI server did not stop within 10 s")
        self._server.server_close()

    def _next(self, request: tuple):
        with self.lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.script.pop(0) if self.script else None

    def _done(self):
        with self.lock:
            self.in_flight -= 1


def _handler(fake: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            auth = self.headers.get("Authorization")
            step = fake._next((self.path, auth, body, time.monotonic(),
                                {k.lower(): v for k, v in self.headers.items()}))
            try:
                if fake.key is not None and auth != f"Bearer {fake.key}":
                    return self._send(401, {"error": {"message": f"Incorrect API key provided: {auth}"}})
                kind = step[0] if step else None
                if kind == "status":
                    return self._send(step[1], {"error": {"message": "scripted"}}, step[2] if len(step) > 2 else {})
                if kind == "torn":  # promises more than it sends, then hangs up
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "400")
                    self.end_headers()
                    self.wfile.write(b'{"id": "c1", "choices": [{"index": 0, "mess')
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if kind == "not_json":  # a 200 that is no completion at all
                    data = b"<html>gateway says hello</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if kind == "stall":
                    time.sleep(step[1])
                choices = [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": fake.reply(body)}}]
                if kind == "no_choices":
                    choices = []
                elif kind == "empty":
                    choices[0]["message"]["content"] = ""
                self._send(200, {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": choices})
            finally:
                fake._done()

        def do_GET(self):  # GET /v1/models: this fake serves any model (an empty list)
            self._send(200, {"object": "list", "data": []})

        def _send(self, code, obj, headers=None):
            data = json.dumps(obj).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a time-out)
                pass

        def log_message(self, *a):
            pass

    return Handler


@pytest.fixture
def fake_openai():
    """A factory: fake_openai(reply, key=None) -> a running FakeOpenAI (closed after the test)."""
    servers = []

    def make(reply, key: str | None = None) -> FakeOpenAI:
        server = FakeOpenAI(reply, key).__enter__()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()
