"""The openai backend and judge against a real OpenAI-compatible server: `transformers
serve` on 127.0.0.1 (tests/transformers_serve.py), serving the bundled tiny-llava for the
backend and a tiny text chat model built here for the judge; one server of each per
session (starting one takes ~10-20 s). Faults too: the server killed mid-eval and
restarted, down at start, a wrong model name, slower than --timeout."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import time

import pytest

from emidbench.common.errors import UserError
from emidbench.common.hf import resolve_model
from emidbench.common.io import read_jsonl
from emidbench.eval import run_eval
from emidbench.rundir import RunDir
from emidbench.score import run_score
from tests.helpers import REPO, build_tiny_llama, make_answered_run, run_cli
from tests.transformers_serve import TransformersServe, free_port

FAST = {"retries": 1, "timeout": 120}  # one retry: the client's first backoff is 0.5 s


def build_random_judge(path):
    """A tiny Llama chat model whose every reply is random words from its 15-word vocabulary
    (no digits: never two scores). Its output layer is zeroed, so each next token is drawn
    uniformly, </s> included: replies stay short. do_sample in its generation config:
    `transformers serve` samples only when the checkpoint says so (a request's temperature
    alone does not switch sampling on)."""
    import torch
    from transformers import LlamaForCausalLM

    build_tiny_llama(path)
    model = LlamaForCausalLM.from_pretrained(path)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    model.generation_config.do_sample = True
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    """Both servers, started together (each takes ~10-20 s), stopped at the end."""
    logs = tmp_path_factory.mktemp("serve-logs")
    judge_dir = build_random_judge(tmp_path_factory.mktemp("judge") / "tiny-judge")
    llava = TransformersServe(resolve_model("tiny-llava"), logs).start()
    judge = TransformersServe(judge_dir, logs).start()
    try:
        llava.wait_ready()
        judge.wait_ready()
        yield type("Servers", (), {"llava": llava, "judge": judge})
    finally:
        llava.stop()
        judge.stop()


def answers(run, name, scenario):
    return read_jsonl(RunDir(run).responses_path(name, scenario))


def assert_complete(run, name, scenario):
    """One line per question, in question order, each a real (non-empty, not failed) answer."""
    recs = answers(run, name, scenario)
    assert [r["question_id"] for r in recs] == [q["question_id"] for q in RunDir(run).read_scenario(scenario)]
    assert all(r["text"].strip() and "error" not in r["metadata"] for r in recs), recs
    return recs


# --------------------------------------------------------------------------- answers

def test_every_item_answered_and_equal_to_the_hf_backends_greedy_answers(small_run, servers):
    llava = servers.llava
    settings = {"max_new_tokens": 6, "system_prompt": "Answer briefly.", "scenarios": "bench"}
    s = run_eval(small_run, llava.model, backend="openai", base_url=llava.url, concurrency=2, api=FAST, **settings)
    assert (s.done, s.failed, s.exit_code) == (6, 0, 0)
    # The same weights through transformers in-process, with the same settings.
    h = run_eval(small_run, "tiny-llava", name="hf", backend="hf", batch_size=1, **settings)
    assert h.failed == 0
    # The served folder's last part names the answers' folder (as for the hf backend).
    served = assert_complete(small_run, "tiny-llava", "bench")
    assert [r["text"] for r in served] == [r["text"] for r in answers(small_run, "hf", "bench")]
    assert len({r["text"] for r in served}) > 1  # the answers depend on the input


def test_the_model_is_named_as_the_server_names_it(small_run, servers):
    llava = servers.llava
    # Pinned to a folder, the server knows the model by that path only: one line saying so.
    with pytest.raises(UserError, match=re.escape(f"does not serve model 'tiny-llava'; it serves: {llava.model} "
                                                  "(pass --model as the server names it)")):
        run_eval(small_run, "tiny-llava", backend="openai", base_url=llava.url, api=FAST)
    assert not any(answers(small_run, "tiny-llava", sc) for sc in ("bench", "bench_defocus_blur_5")
                   if RunDir(small_run).responses_path("tiny-llava", sc).exists())
    proc = run_cli("eval", small_run, "--model", "tiny-llava", "--backend", "openai", "--base-url", llava.url,
                   "--retries", "1")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "does not serve model 'tiny-llava'" in proc.stderr
    # A base URL without /v1: the server's own 404.
    proc = run_cli("eval", small_run, "--model", llava.model, "--backend", "openai", "--base-url",
                   llava.url.removesuffix("/v1"), "--retries", "1")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "HTTP 404 (wrong --base-url or model name" in proc.stderr


def test_a_random_tiny_judges_unparsable_replies_are_failed_and_excluded(tmp_path, servers):
    judge = servers.judge
    import torch

    from emidbench.embedders import make_embedder
    from emidbench.score.club import CLUB, save_club

    run = make_answered_run(tmp_path / "run", n_images=1, scenarios=("bench", "bench_blur"))
    # The estimator is not what this test is about: a saved (untrained) one skips the fit.
    dim = make_embedder("offline").dim
    torch.manual_seed(0)
    save_club(CLUB(dim, dim), tmp_path / "club.pt")
    path = run_score(run, "m", judge=f"openai:{judge.model}", judge_base_url=judge.url, concurrency=2,
                     judge_api=FAST, estimator=str(tmp_path / "club.pt"))
    with open(path, newline="") as f:
        rows = {r["scenario"]: r for r in csv.DictReader(f)}
    for sc in ("bench", "bench_blur"):
        recs = read_jsonl(run / "scores" / "m" / "judge" / f"{sc}.jsonl")
        assert len(recs) == 3 and all(r["failed"] and r["scores"] is None for r in recs)
        assert rows[sc]["judge_n"] == "0" and rows[sc]["judge_failed"] == "3"
        assert rows[sc]["rp_score"] == "" and rows[sc]["emi"] != ""  # excluded; EMI still measured
    # Nothing unparsable is cached: a rerun asks again.
    assert not (run / "cache" / "judge").exists() or not any((run / "cache" / "judge").rglob("*.json"))


# --------------------------------------------------------------------------- faults

def test_server_killed_mid_eval_then_restarted_loses_and_duplicates_nothing(make_run, image_bytes, servers):
    llava = servers.llava
    run = make_run({"s": [(i, image_bytes(i), "What color is the circle?") for i in range(16)]})
    path = RunDir(run).responses_path("tiny-llava", "s")
    args = ["eval", run, "--model", llava.model, "--backend", "openai", "--base-url", llava.url,
            "--concurrency", "1", "--max-new-tokens", "4", "--retries", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "emidbench", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None and not (path.exists() and path.read_text().count("\n") >= 1):
            time.sleep(0.01)
        llava.kill()  # mid-eval: batches of 4 are written as they finish, the 3 others are to come
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        llava.restart()
    assert proc.returncode == 1, err  # some answers were kept: 1, not 2
    assert len(err.strip().splitlines()) == 1 and "cannot connect" in err and "went away after" in err, err
    before = {r["question_id"]: r["text"] for r in read_jsonl(path)}
    assert 4 <= len(before) < 16 and all(t.strip() for t in before.values())
    # After the restart: the rest, nothing lost, nothing twice.
    proc2 = run_cli(*args)
    assert proc2.returncode == 0, proc2.stderr
    recs = assert_complete(run, "tiny-llava", "s")
    assert len(recs) == 16 and {r["question_id"]: r["text"] for r in recs if r["question_id"] in before} == before
    assert f"{len(before)} already done" in proc2.stderr


def test_server_down_at_start_is_one_line_and_exit_2(small_run):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens there
    proc = run_cli("eval", small_run, "--model", "m", "--backend", "openai", "--base-url", url)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"cannot connect to {url} (ConnectionRefusedError" in proc.stderr and "is the server running" in proc.stderr
    rd = RunDir(small_run)
    assert not any(p.read_text().strip() for p in rd.responses_dir("m").glob("*.jsonl"))


def test_a_server_slower_than_the_timeout_is_retried_then_the_item_fails(make_run, image_bytes, servers):
    llava = servers.llava
    run = make_run({"s": [(i, image_bytes(i), "How many shapes are in the image?") for i in range(3)]})
    # 1 ms: no generation answers that fast; each item is asked twice (one retry), then failed.
    s = run_eval(run, llava.model, backend="openai", base_url=llava.url, concurrency=1, max_new_tokens=4,
                 api={"timeout": 0.001, "retries": 1})
    assert (s.done, s.failed, s.exit_code) == (0, 3, 1)  # the run went on to every item
    recs = answers(run, "tiny-llava", "s")
    assert [r["question_id"] for r in recs] == [0, 1, 2]
    assert all(r["text"] == "" and r["metadata"]["error"] == "timed out after 2 tries (--timeout 0.001 s)"
               for r in recs)
    s = run_eval(run, llava.model, backend="openai", base_url=llava.url, concurrency=1, max_new_tokens=4, api=FAST)
    assert (s.done, s.failed) == (3, 0)
    assert_complete(run, "tiny-llava", "s")
