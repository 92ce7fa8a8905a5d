"""The openai backend's edges a real server cannot produce on demand (tests/fake_openai.py):
a 429 with Retry-After, a torn response, answers without choices or with an empty message,
a 401 echoing the key, requests in flight, the response cache's request counts. The
backend against a real server (`transformers serve`) and its faults: test_openai_served.py."""

import base64
import io
import json
import subprocess
import sys
import time

import pytest
from PIL import Image

from emidbench.common.chat import ChatClient, ChatOptions
from emidbench.common.errors import UserError
from emidbench.common.io import read_jsonl
from emidbench.eval import run_eval
from emidbench.rundir import RunDir
from tests.fake_openai import fake_openai  # noqa: F401 - the fixture

KEY = "sk-test-123-very-secret"
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
FAST = {"retries": 2, "timeout": 30}


def echo(body) -> str:
    """`echo: <question> | <image size>`: the image and the question reached the server."""
    content = body["messages"][-1]["content"]
    question = next(p["text"] for p in content if p["type"] == "text")
    url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    return f"echo: {question} | {image.size[0]}x{image.size[1]}"


def answers(run, model, scenario):
    return read_jsonl(RunDir(run).responses_path(model, scenario))


def test_answers_with_retry_after_auth_and_data_urls(small_run, fake_openai, monkeypatch):  # noqa: F811
    server = fake_openai(echo, key=KEY)
    monkeypatch.setenv("MY_KEY", KEY)
    server.script = [("status", 429, {"Retry-After": "1"}), ("status", 503, {})]
    s = run_eval(small_run, "served-model", backend="openai", base_url=server.url, api_key_env="MY_KEY",
                 concurrency=1, max_new_tokens=20, system_prompt="Answer briefly.", api=FAST)
    assert (s.done, s.failed) == (12, 0)
    assert len(server.requests) == 12 + 2  # two retried
    # The 429 asked for 1 s; the client's own first backoff is at most 0.5 s.
    assert server.requests[1][3] - server.requests[0][3] >= 1.0
    rd = RunDir(small_run)
    for sc in ("bench", "bench_defocus_blur_5"):
        recs = answers(small_run, "served-model", sc)
        questions = rd.read_scenario(sc)
        assert [r["question_id"] for r in recs] == [0, 1, 2, 3, 4, 5]
        assert [r["text"] for r in recs] == [f"echo: {q['text']} | 48x40" for q in questions]
    path, auth, body = server.requests[-1][:3]
    assert path == "/v1/chat/completions" and auth == f"Bearer {KEY}"
    assert body["model"] == "served-model" and body["max_tokens"] == 20 and body["temperature"] == 0.0
    assert "seed" not in body  # greedy needs none
    assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = base64.b64decode(url.split(",", 1)[1])
    assert sent in {(rd.images / q["image"]).read_bytes() for q in rd.read_scenario("bench") +
                    rd.read_scenario("bench_defocus_blur_5")}
    record = json.loads((rd.responses_dir("served-model") / "eval.json").read_text())
    assert record["options"] == {"base_url": server.url, "api_key_env": "MY_KEY", "concurrency": 1,
                                 "api_type": "openai", "api_version": None, "organization": None, "headers": [],
                                 "timeout": 30.0, "retries": 2}
    for p in small_run.rglob("*"):  # the key never reaches RUN
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p


def test_concurrency_headers_organization_and_no_key_for_a_local_server(small_run, fake_openai,  # noqa: F811
                                                                        monkeypatch):
    def echo_in_company(body):
        """Answers once another request is in flight too (or after 10 s): with --concurrency
        working, two always meet; without, max_in_flight stays 1."""
        deadline = time.monotonic() + 10
        while server.in_flight < 2 and server.max_in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        return echo(body)

    server = fake_openai(echo_in_company)
    monkeypatch.delenv("UNSET_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-be-used")  # only the named variable counts
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-the-environment")
    s = run_eval(small_run, "m", backend="openai", base_url=server.url, api_key_env="UNSET_KEY", concurrency=3,
                 api={"headers": {"X-Gateway-Token": "gw-secret"}, "organization": "org-42", **FAST})
    assert s.done == 12
    assert {r[1] for r in server.requests} == {None}  # no key: no Authorization header
    posts = [r[4] for r in server.requests]
    assert posts and all(h["x-gateway-token"] == "gw-secret" and h["openai-organization"] == "org-42"
                         and "openai-project" not in h for h in posts)
    assert server.max_in_flight >= 2  # --concurrency puts several requests in flight
    record = json.loads((RunDir(small_run).responses_dir("m") / "eval.json").read_text())
    assert record["options"]["headers"] == ["X-Gateway-Token"]  # the name, never the value
    assert b"gw-secret" not in b"".join(p.read_bytes() for p in small_run.rglob("*") if p.is_file())


def test_wrong_key_is_one_line_without_the_key(small_run, fake_openai, monkeypatch):  # noqa: F811
    server = fake_openai(echo, key=KEY)
    monkeypatch.setenv("MY_KEY", "sk-wrong-key-000")
    with pytest.raises(UserError, match=r"HTTP 401 \(check the key in \$MY_KEY: it was rejected\)") as err:
        run_eval(small_run, "served-model", backend="openai", base_url=server.url, api_key_env="MY_KEY", api=FAST)
    assert "sk-wrong-key-000" not in str(err.value)  # the server echoed it; scrubbed
    # Refused before any answer: no RUN/responses/<model>/ (its eval.json would say an eval ran).
    assert not (small_run / "responses" / "served-model").exists()
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(UserError, match=r"\$MY_KEY: it is not set"):
        run_eval(small_run, "served-model", backend="openai", base_url=server.url, api_key_env="MY_KEY", api=FAST)


def test_torn_no_choices_and_empty_messages_are_counted_item_failures(make_run, image_bytes, fake_openai):  # noqa: F811
    server = fake_openai(echo)
    run = make_run({"s": [(i, image_bytes(i), f"question {i}?") for i in range(5)]})
    # item 0: torn twice then fine (retried by the client); 1: torn on every try; 2: no
    # choices; 3: an empty message; 4: not JSON. concurrency 1: the script meets the items in order.
    server.script = [("torn",), ("torn",), None, ("torn",), ("torn",), ("torn",), ("no_choices",), ("empty",),
                     ("not_json",)]
    s = run_eval(run, "m", backend="openai", base_url=server.url, concurrency=1, api=FAST)
    assert (s.done, s.failed, s.exit_code) == (1, 4, 1)
    recs = answers(run, "m", "s")
    assert [r["question_id"] for r in recs] == [0, 1, 2, 3, 4]
    assert "malformed response" in recs[4]["metadata"]["error"]
    assert recs[0]["text"] == "echo: question 0? | 48x40" and "error" not in recs[0]["metadata"]
    assert "connection lost or response torn after 3 tries" in recs[1]["metadata"]["error"]
    assert recs[2]["metadata"]["error"] == "the server answered without choices"
    assert "empty message" in recs[3]["metadata"]["error"]
    assert all(r["text"] == "" for r in recs[1:])  # no empty answer counted as good
    # The next run asks the failed ones again, and only those.
    n = len(server.requests)
    s = run_eval(run, "m", backend="openai", base_url=server.url, concurrency=1, api=FAST)
    assert (s.done, s.skipped, s.failed) == (4, 1, 0) and len(server.requests) == n + 4
    assert [r["question_id"] for r in answers(run, "m", "s")] == [0, 1, 2, 3, 4]


def test_rejected_item_is_recorded_and_the_run_goes_on(make_run, image_bytes, fake_openai):  # noqa: F811
    server = fake_openai(echo)
    run = make_run({"s": [(0, image_bytes(0), "fine?"), (1, image_bytes(1), "reject me"),
                          (2, image_bytes(2), "fine too?")]})
    server.script = [None, ("status", 400, {})]
    s = run_eval(run, "m", backend="openai", base_url=server.url, concurrency=1, api=FAST)
    assert (s.done, s.failed, s.exit_code) == (2, 1, 1)
    recs = answers(run, "m", "s")
    assert recs[1]["text"] == "" and "HTTP 400" in recs[1]["metadata"]["error"]
    assert recs[2]["text"] == "echo: fine too? | 48x40"


def test_identical_requests_across_scenarios_are_sent_once(make_run, image_bytes, fake_openai):  # noqa: F811
    server = fake_openai(echo)
    shared = [(2 * i + j, image_bytes(i), q) for i in range(3) for j, q in enumerate(("What color?", "How many?"))]
    other = [(qid, image_bytes(9, blur=1.0) if qid == 0 else img, q) for qid, img, q in shared]
    run = make_run({"id": shared, "id_again": shared, "shifted": other})
    s = run_eval(run, "m", backend="openai", base_url=server.url, concurrency=2)
    assert len(server.requests) == 6 + 1  # 18 items, 7 distinct requests
    assert (s.generated, s.done, s.cached) == (7, 7, 11)
    assert [r["text"] for r in answers(run, "m", "id")] == [r["text"] for r in answers(run, "m", "id_again")]
    same = [(r["question_id"], r["text"], r["prompt"], r["metadata"]["request_key"]) for r in answers(run, "m", "id")]
    assert [(r["question_id"], r["text"], r["prompt"], r["metadata"]["request_key"])
            for r in answers(run, "m", "shifted")][1:] == same[1:]
    # another model name in the same RUN: the same requests, all from the cache
    s = run_eval(run, "m", name="m-again", backend="openai", base_url=server.url)
    assert len(server.requests) == 7 and (s.cached, s.generated) == (18, 0)
    # other settings are other requests
    run_eval(run, "m", name="m-long", backend="openai", base_url=server.url, max_new_tokens=300)
    assert len(server.requests) == 14


def test_key_stays_out_of_cli_output_and_files(small_run, fake_openai, tmp_path):  # noqa: F811
    server = fake_openai(echo, key=KEY)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MY_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "emidbench", "eval", str(small_run), "--model", "served",
                           "--backend", "openai", "--base-url", server.url, "--api-key-env", "MY_KEY"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "12 answered" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    env["MY_KEY"] = "sk-another-secret-999"
    proc = subprocess.run([sys.executable, "-m", "emidbench", "eval", str(small_run), "--model", "served2",
                           "--backend", "openai", "--base-url", server.url, "--api-key-env", "MY_KEY"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "HTTP 401" in proc.stderr and "sk-another-secret-999" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    for p in small_run.rglob("*"):
        if p.is_file():
            assert KEY.encode() not in p.read_bytes() and b"sk-another-secret-999" not in p.read_bytes()


@pytest.mark.parametrize("url, option, expected", [
    ("localhost:8000/v1", "--base-url", "is not a URL"),
    ("ftp://example.org/v1", "--base-url", "is not a URL"),
    ("http://127.0.0.1:80x/v1", "--base-url", "is not a URL: its port is not a number"),
])
def test_base_url_that_is_not_a_url(url, option, expected):
    with pytest.raises(UserError, match=f"{option} '{url}' {expected}"):
        ChatClient(url, "UNSET_KEY")


def test_keys_required_by_openai_and_azure_and_azure_options(monkeypatch):
    monkeypatch.delenv("UNSET_KEY", raising=False)
    with pytest.raises(UserError, match=r"\$UNSET_KEY is not set: https://api.openai.com/v1 needs an API key"):
        ChatClient(None, "UNSET_KEY")
    with pytest.raises(UserError, match=r"needs an api_version \(--api-version\)"):
        ChatOptions.parse({"api_type": "azure"})
    azure = ChatOptions.parse({"api_type": "azure", "api_version": "2024-10-21"})
    with pytest.raises(UserError, match=r"\$UNSET_KEY is not set"):
        ChatClient("https://myres.openai.azure.com", "UNSET_KEY", azure)
    monkeypatch.setenv("AZ_KEY", "az-secret")
    client = ChatClient("https://myres.openai.azure.com", "AZ_KEY", azure)
    assert "az-secret" not in repr(client)
    with pytest.raises(UserError, match=r"unknown key 'retry' \(did you mean 'retries'\?\)"):
        ChatOptions.parse({"retry": 3}, "eval api options")
    with pytest.raises(UserError, match="timeout must be a positive number"):
        ChatOptions.parse({"timeout": 0})


def test_azure_requests_go_to_the_deployment_with_the_api_version(fake_openai, monkeypatch):  # noqa: F811
    server = fake_openai(lambda body: "azure says hi")
    monkeypatch.setenv("AZ_KEY", "az-secret")
    base = server.url.rsplit("/v1", 1)[0]
    client = ChatClient(base, "AZ_KEY", ChatOptions.parse({"api_type": "azure", "api_version": "2024-10-21"}))
    assert client.complete({"model": "my-deployment", "messages": [{"role": "user", "content": "hi"}]}) == "azure says hi"
    path = server.requests[-1][0]
    assert path == "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    assert server.requests[-1][4]["api-key"] == "az-secret" and server.requests[-1][1] is None


def test_api_options_in_a_run_config_are_checked_before_any_stage(tmp_path):
    from emidbench.pipeline import load_run_config

    def config(text: str, models: str = "models: [tiny-llava]\n"):  # a model the up-front check finds
        path = tmp_path / "c.yaml"
        path.write_text("out: runs/x\nbenchmark: mini\n" + models + text)
        return load_run_config(path)

    cfg = config("eval:\n  backend: openai\n  base_url: http://127.0.0.1:8000/v1\n"
                 "  api: {api_type: azure, api_version: '2024-10-21', headers: {X-Team: a}, retries: 2}\n"
                 "score:\n  judge: openai:j\n  judge_api: {timeout: 30}\n")
    assert cfg["eval"]["api"]["api_type"] == "azure" and cfg["score"]["judge_api"] == {"timeout": 30}
    with pytest.raises(UserError, match=r"c.yaml: eval.api: unknown key 'header' \(did you mean 'headers'\?\)"):
        config("eval:\n  api: {header: {X: y}}\n")
    with pytest.raises(UserError, match=r"c.yaml: score.judge_api: retries must be 0 or a positive integer"):
        config("score:\n  judge_api: {retries: -1}\n")
    with pytest.raises(UserError, match=r"c.yaml: models\[0\].base_url: 'localhost:8000' is not a URL"):
        config("eval:\n  backend: openai\n", models="models:\n  - model: m\n    base_url: localhost:8000\n")


def test_cli_api_options_are_checked_before_any_work(small_run):
    from tests.helpers import run_cli

    proc = run_cli("eval", small_run, "--model", "m", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                   "--header", "X-Team")
    assert proc.returncode == 2 and proc.stderr.strip() == "emidbench: error: --header 'X-Team': expected NAME=VALUE", proc.stderr
    proc = run_cli("score", small_run, "--model", "m", "--judge", "openai:j", "--judge-retries", "-1")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--judge-api options: retries must be 0 or a positive integer (got -1)" in proc.stderr
