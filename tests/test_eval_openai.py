"""The openai backend against a real HTTP server on 127.0.0.1 speaking the chat-completions wire format."""

import base64
import io
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from emidbench.common.chat import ChatClient
from emidbench.common.errors import UserError
from emidbench.common.io import read_jsonl
from emidbench.eval import run_eval
from emidbench.rundir import RunDir

KEY = "sk-test-123-very-secret"
REPO = Path(__file__).resolve().parents[1]


class ChatServer(BaseHTTPRequestHandler):
    """Answers `echo: <question> | <image size>`; scripted failures first, from `script`:
    a list of (status, headers) or ("stall", seconds) consumed one per request."""

    protocol_version = "HTTP/1.1"
    state: dict = {}

    def do_POST(self):
        st = self.state
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with st["lock"]:
            st["requests"].append((self.path, self.headers.get("Authorization"), body))
            step = st["script"].pop(0) if st["script"] else None
            st["in_flight"] += 1
            st["max_in_flight"] = max(st["max_in_flight"], st["in_flight"])
        try:
            if self.headers.get("Authorization") != f"Bearer {st['key']}":
                return self._send(401, {"error": {"message": f"Incorrect API key provided: "
                                                             f"{self.headers.get('Authorization')}"}})
            if step and step[0] == "stall":
                time.sleep(step[1])
            elif step:
                return self._send(step[0], {"error": {"message": "scripted"}}, step[1])
            content = body["messages"][-1]["content"]
            question = next(p["text"] for p in content if p["type"] == "text")
            url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
            image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
            if "reject" in question:
                return self._send(400, {"error": {"message": "image too large"}})
            time.sleep(st["delay"])
            reply = f"echo: {question} | {image.size[0]}x{image.size[1]}"
            self._send(200, {"id": "c1", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": reply}}]})
        finally:
            with st["lock"]:
                st["in_flight"] -= 1

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
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out test)
            pass

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    state = {"lock": threading.Lock(), "requests": [], "script": [], "key": KEY, "delay": 0.02, "in_flight": 0,
             "max_in_flight": 0}
    handler = type("Handler", (ChatServer,), {"state": state})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield state
    srv.shutdown()
    srv.server_close()


def answers(run, model, scenario):
    return read_jsonl(RunDir(run).responses_path(model, scenario))


def test_answers_over_http_with_retry_auth_and_data_urls(small_run, server, monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    server["script"] = [(429, {"Retry-After": "0"}), (503, {"Retry-After": "0"})]
    s = run_eval(small_run, "served-model", backend="openai", base_url=server["url"], api_key_env="MY_KEY",
                 concurrency=3, max_new_tokens=20, system_prompt="Answer briefly.")
    assert (s.done, s.failed) == (12, 0)
    assert len(server["requests"]) == 12 + 2  # two retried
    rd = RunDir(small_run)
    for sc in ("bench", "bench_defocus_blur_5"):
        recs = answers(small_run, "served-model", sc)
        questions = rd.read_scenario(sc)
        assert [r["question_id"] for r in recs] == [0, 1, 2, 3, 4, 5]
        assert [r["text"] for r in recs] == [f"echo: {q['text']} | 48x40" for q in questions]
    path, auth, body = server["requests"][-1]
    assert path == "/v1/chat/completions" and auth == f"Bearer {KEY}"
    assert body["model"] == "served-model" and body["max_tokens"] == 20 and body["temperature"] == 0.0
    assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = base64.b64decode(url.split(",", 1)[1])
    assert sent in {(rd.images / q["image"]).read_bytes() for q in rd.read_scenario("bench") +
                    rd.read_scenario("bench_defocus_blur_5")}
    assert server["max_in_flight"] >= 2  # --concurrency puts several requests in flight
    record = json.loads((rd.responses_dir("served-model") / "eval.json").read_text())
    assert record["options"] == {"base_url": server["url"], "api_key_env": "MY_KEY", "concurrency": 3}
    for p in small_run.rglob("*"):  # the key never reaches RUN
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p


def test_wrong_or_missing_key_is_a_clear_error_without_the_key(small_run, server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-wrong-key-000")
    with pytest.raises(UserError, match=r"HTTP 401 \(check the key in \$MY_KEY: it was rejected\)") as err:
        run_eval(small_run, "served-model", backend="openai", base_url=server["url"], api_key_env="MY_KEY")
    assert "sk-wrong-key-000" not in str(err.value)  # the server echoed it; scrubbed
    # Refused before any answer: no RUN/responses/<model>/ (its eval.json would say an eval ran).
    assert not (small_run / "responses" / "served-model").exists()
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(UserError, match=r"\$MY_KEY: it is not set"):
        run_eval(small_run, "served-model", backend="openai", base_url=server["url"], api_key_env="MY_KEY")


def test_wrong_url_is_404_and_unreachable_server_is_a_clear_error(small_run, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server["script"] = [(404, {})]
    with pytest.raises(UserError, match="HTTP 404 \\(wrong --base-url or model name\\)"):
        run_eval(small_run, "served-model", backend="openai", base_url=server["url"])
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(f"http://127.0.0.1:{port}/v1", backoff=0.01)
    with pytest.raises(UserError, match="cannot connect to .*is the server running"):
        client.complete({"model": "m", "messages": []})


def test_rejected_item_is_recorded_and_the_run_goes_on(make_run, image_bytes, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    run = make_run({"s": [(0, image_bytes(0), "fine?"), (1, image_bytes(1), "please reject me"),
                          (2, image_bytes(2), "fine too?")]})
    s = run_eval(run, "m", backend="openai", base_url=server["url"])
    assert (s.done, s.failed, s.exit_code) == (2, 1, 1)
    recs = answers(run, "m", "s")
    assert recs[1]["text"] == "" and "HTTP 400" in recs[1]["metadata"]["error"]
    assert recs[2]["text"] == "echo: fine too? | 48x40"


def test_timeouts_and_5xx_are_retried_with_backoff(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server["script"] = [("stall", 1.5), (500, {}), (502, {})]
    client = ChatClient(server["url"], timeout=0.5, backoff=0.01)
    png = base64.b64encode(io.BytesIO(_png()).getvalue()).decode()
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}, {"type": "text", "text": "hi"}]}]}
    assert client.complete(body) == "echo: hi | 8x8"
    assert len(server["requests"]) == 4
    server["script"] = [(500, {})] * 3
    with pytest.raises(RuntimeError, match="gave up after 3 tries: HTTP 500"):
        ChatClient(server["url"], retries=2, backoff=0.01).complete(body)
    # the backoff doubles, with jitter in [0.5, 1) from a seeded RNG (same seed, same waits)
    a, b = ChatClient("http://x", backoff=1.0, seed=3), ChatClient("http://x", backoff=1.0, seed=3)
    waits = [a._delay(k, None) for k in range(1, 6)]
    assert waits == [b._delay(k, None) for k in range(1, 6)]
    assert all(2 ** (k - 1) * 0.5 <= w < 2 ** (k - 1) for k, w in enumerate(waits, start=1))
    assert a._delay(3, 7.0) == 7.0 and a._delay(3, 999.0) == 60.0  # Retry-After wins, capped


def test_identical_requests_across_scenarios_are_sent_once(make_run, image_bytes, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    shared = [(2 * i + j, image_bytes(i), q) for i in range(3) for j, q in enumerate(("What color?", "How many?"))]
    other = [(qid, image_bytes(9, blur=1.0) if qid == 0 else img, q) for qid, img, q in shared]
    run = make_run({"id": shared, "id_again": shared, "shifted": other})
    s = run_eval(run, "m", backend="openai", base_url=server["url"], concurrency=2)
    assert len(server["requests"]) == 6 + 1  # 18 items, 7 distinct requests
    assert (s.generated, s.done, s.cached) == (7, 7, 11)
    assert [r["text"] for r in answers(run, "m", "id")] == [r["text"] for r in answers(run, "m", "id_again")]
    same = [(r["question_id"], r["text"], r["prompt"], r["metadata"]["request_key"]) for r in answers(run, "m", "id")]
    assert [(r["question_id"], r["text"], r["prompt"], r["metadata"]["request_key"])
            for r in answers(run, "m", "shifted")][1:] == same[1:]
    # another model name in the same RUN: the same requests, all from the cache
    s = run_eval(run, "m", name="m-again", backend="openai", base_url=server["url"])
    assert len(server["requests"]) == 7 and (s.cached, s.generated) == (18, 0)
    # other settings are other requests
    run_eval(run, "m", name="m-long", backend="openai", base_url=server["url"], max_new_tokens=300)
    assert len(server["requests"]) == 14


def test_key_stays_out_of_cli_output_and_files(small_run, server, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MY_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "emidbench", "eval", str(small_run), "--model", "served",
                           "--backend", "openai", "--base-url", server["url"], "--api-key-env", "MY_KEY"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "12 answered" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    env["MY_KEY"] = "sk-another-secret-999"
    proc = subprocess.run([sys.executable, "-m", "emidbench", "eval", str(small_run), "--model", "served2",
                           "--backend", "openai", "--base-url", server["url"], "--api-key-env", "MY_KEY"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "HTTP 401" in proc.stderr and "sk-another-secret-999" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    for p in small_run.rglob("*"):
        if p.is_file():
            assert KEY.encode() not in p.read_bytes() and b"sk-another-secret-999" not in p.read_bytes()


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    return buf.getvalue()
