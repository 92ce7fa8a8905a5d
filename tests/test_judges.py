"""LLM judges: the LLaVA-Bench prompt (against LLaVA's rule.json when it is there), reply
parsing, aggregation by LLaVA's summarize convention with failed items excluded, the
openai judge against a scripted server on 127.0.0.1 (tests/fake_openai.py: cache,
retries, debias, an endpoint that goes down; against a real server: test_openai_served.py), a tiny local LLM through transformers, the offline proxy."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from emidbench.common.errors import UserError
from emidbench.common.io import read_jsonl
from emidbench.rundir import RunDir
from emidbench.score import JUDGES, run_score
from emidbench.score.judges import make_judge
from emidbench.score.judges.protocol import (
    OWN_VERSION,
    SYSTEM,
    Rules,
    aggregate,
    build_prompt,
    context_kind,
    parse_scores,
)
from tests.fake_openai import fake_openai  # noqa: F401 - the fixture
from tests.helpers import build_tiny_llama, make_answered_run, quiet_console, reference_dir

KEY = "sk-judge-test-secret-42"


# --------------------------------------------------------------------------- the prompt

def _llava_coco_content(rule: dict, caps: list[str], boxes: list[dict], question: str, a1: str, a2: str) -> str:
    """The review text as LLaVA's eval_gpt_review_visual.py lays it out (restated here)."""
    cap_str = "\n".join(caps)
    box_str = "\n".join(f"{b['category']}: {b['bbox']}" for b in boxes)
    role = rule["role"]
    return (f"[Context]\n{cap_str}\n\n{box_str}\n\n[Question]\n{question}\n\n"
            f"[{role} 1]\n{a1}\n\n[End of {role} 1]\n\n[{role} 2]\n{a2}\n\n[End of {role} 2]\n\n"
            f"[System]\n{rule['prompt']}\n\n")


def test_prompt_is_llavas_exact_content_with_rule_json():
    ref = reference_dir("llava-bench-coco")
    if ref is None or not (ref / "rule.json").is_file():
        pytest.skip("../shared/reference/llava-bench-coco is not beside this clone")
    rule_json = json.loads((ref / "rule.json").read_text())
    questions = [json.loads(x) for x in (ref / "qa90_questions.jsonl").read_text().splitlines()]
    answers = {a["question_id"]: a for a in map(json.loads, (ref / "qa90_gpt4_answer.jsonl").read_text().splitlines())}
    contexts = {c["image"]: c for c in map(json.loads, (ref / "caps_boxes_coco2014_val_80.jsonl").read_text()
                                           .splitlines())}
    rules = Rules(ref / "rule.json")
    assert rules.version.startswith("rules:")
    for q in questions[:6]:  # conv, detail, complex on two images
        c = contexts[q["image"]]
        context = "\n".join(c["captions"]) + "\n\n" + "\n".join(f"{b['category']}: {b['bbox']}"
                                                                for b in c["instances"])
        ref_answer, model_answer = answers[q["question_id"]]["text"], "A model's answer."
        p = build_prompt(rules, context, q["text"], ref_answer, model_answer, q["category"])
        assert p.system == SYSTEM
        assert p.content == _llava_coco_content(rule_json[q["category"]], c["captions"], c["instances"], q["text"],
                                                ref_answer, model_answer)
    # A caption-only context (In-the-Wild) takes the llava_bench_<category> prompt, as
    # LLaVA's eval_gpt_review_bench.py does.
    p = build_prompt(rules, "A photo of a ramen shop at night.", "What is the name?", "Ichiran", "Unknown", "conv")
    rule = rule_json["llava_bench_conv"]
    assert p.content == ("[Context]\nA photo of a ramen shop at night.\n\n[Question]\nWhat is the name?\n\n"
                         "[Assistant 1]\nIchiran\n\n[End of Assistant 1]\n\n[Assistant 2]\nUnknown\n\n"
                         f"[End of Assistant 2]\n\n[System]\n{rule['prompt']}\n\n")
    # Our own wording is ours: none of LLaVA's prompt sentences is shipped.
    import emidbench.score.judges.protocol as protocol

    source = Path(protocol.__file__).read_text()
    for r in rule_json.values():
        for sentence in re.split(r"(?<=\.)\s", r["prompt"]):
            if len(sentence) > 40:
                assert sentence.strip() not in source


def test_own_prompts_follow_the_protocol():
    rules = Rules()
    assert rules.version == OWN_VERSION
    coco = build_prompt(rules, "Two cats.\n\ncat: [0.1, 0.2, 0.5, 0.9]", "Q?", "ref", "ans", "detail")
    wild = build_prompt(rules, "Two cats on a sofa.", "Q?", "ref", "ans", "detail")
    assert context_kind("Two cats.\n\ncat: [0.1, 0.2, 0.5, 0.9]") == "boxes" and context_kind("Two cats.") == "caption"
    for p in (coco, wild):
        assert p.content.startswith("[Context]\n") and "\n\n[Question]\nQ?\n\n[Assistant 1]\nref\n\n" in p.content
        assert "[End of Assistant 2]\n\n[System]\n" in p.content and p.content.endswith("\n\n")
        assert "first output a single line" in p.content
    assert "bounding box" in coco.content and "bounding box" not in wild.content
    swapped = build_prompt(rules, None, "Q?", "ans", "ref", "conv", reference_slot=2)
    assert swapped.content.startswith("[Context]\n\n\n[Question]") and swapped.reference_slot == 2


def test_bad_rules_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        Rules(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not a readable rule.json"):
        Rules(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"coding": {"role": "Assistant", "prompt": "x"}}))
    with pytest.raises(UserError, match="no judge prompts"):
        Rules(tmp_path / "other.json")


# --------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("reply, expected", [
    ("8 7\nAssistant 1 was more detailed.", (8.0, 7.0)),
    ("8,7\nok", (8.0, 7.0)),
    ("8, 7", (8.0, 7.0)),
    ("  9.5   6  \nwhy", (9.5, 6.0)),
    ("**7 4**\nexplanation", (7.0, 4.0)),
    ("10 10", (10.0, 10.0)),
    ("Assistant 1: 8\nAssistant 2: 7", None),
    ("8 7 6", None),
    ("8", None),
    ("", None),
    ("eight seven", None),
    ("85 90", None),
    ("nan 5", None),
    (None, None),
])
def test_parse_scores(reply, expected):
    assert parse_scores(reply) == expected


# --------------------------------------------------------------------------- aggregation

def test_aggregate_follows_llavas_summarize_convention_without_failed_items():
    records = [
        {"category": "conv", "scores": [8.0, 6.0], "failed": False},
        {"category": "detail", "scores": [9.0, 9.0], "failed": False},
        {"category": "complex", "scores": [7.0, 8.0], "failed": False},
        {"category": "conv", "scores": [10.0, 5.0], "failed": False},
        {"category": "detail", "scores": None, "failed": True},
    ]
    out = aggregate(records)
    # summarize_gpt_review.py: 100 * mean(score 2) / mean(score 1), over the items kept.
    assert out["rp_score"] == pytest.approx(100 * (6 + 9 + 8 + 5) / (8 + 9 + 7 + 10))
    assert out["rp_conv"] == pytest.approx(100 * (6 + 5) / (8 + 10))
    assert out["rp_detail"] == pytest.approx(100.0)
    assert out["rp_complex"] == pytest.approx(100 * 8 / 7)
    assert out["win_rate"] == pytest.approx((0 + 0.5 + 1 + 0) / 4)  # a tie counts half
    assert (out["judge_n"], out["judge_failed"]) == (4, 1)
    # LLaVA would have averaged the failed item in as (-1, -1): a different (inflated) number.
    llava = 100 * (6 + 9 + 8 + 5 - 1) / (8 + 9 + 7 + 10 - 1)
    assert out["rp_score"] != pytest.approx(llava)
    assert "rp_lo" not in out
    boot = aggregate(records, n_boot=200, seed=3, label="s")
    assert boot["rp_lo"] <= out["rp_score"] <= boot["rp_hi"] and boot["win_lo"] <= out["win_rate"] <= boot["win_hi"]
    assert aggregate(records, n_boot=200, seed=3, label="s") == boot  # fixed seed
    assert aggregate([{"category": "conv", "scores": None, "failed": True}]) == {"judge_n": 0, "judge_failed": 1}


# --------------------------------------------------------------------------- a judge server

def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def _quality(answer: str) -> int:
    """What the test server scores an answer: 8 for a reference-like one, else by length."""
    return 8 if answer.endswith("calm.") else 3 + len(answer.split()) % 6


def judge_reply(server, body) -> str:
    """Judges like a (position-biased) LLM: an answer ending like the references ("calm.")
    gets 8, another 3 + (#words mod 6); Assistant 1 gets `server.bias` extra points. Answers
    containing GARBLE get an unparsable reply; FLAKY gets one on its first ask only."""
    content = body["messages"][-1]["content"]
    with server.lock:
        first_time = content not in server.seen
        server.seen.add(content)
    a1 = _between(content, "[Assistant 1]\n", "\n\n[End of Assistant 1]")
    a2 = _between(content, "[Assistant 2]\n", "\n\n[End of Assistant 2]")
    if "GARBLE" in a1 + a2 or ("FLAKY" in a1 + a2 and first_time):
        return "I cannot decide.\nBoth are fine."
    s1, s2 = (_quality(a) for a in (a1, a2))
    return f"{s1 + server.bias} {s2}\nAssistant 1 is better."


@pytest.fixture
def judge_server(monkeypatch, fake_openai):  # noqa: F811
    """A judge whose scores are known in advance (tests/fake_openai.py); the judge against a
    real server (transformers serve, a random tiny model): test_openai_served.py."""
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    server = fake_openai(lambda body: judge_reply(server, body), key=KEY)
    server.seen, server.bias = set(), 0
    return server


def calls(server) -> int:
    return len(server.requests)


def _openai(run, server, **kw):
    return run_score(run, "m", judge="openai:judge-1", judge_base_url=server.url,
                     judge_api_key_env="TEST_JUDGE_KEY", concurrency=3, judge_api={"retries": 2}, **kw)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return {r["scenario"]: r for r in csv.DictReader(f)}


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_openai_judge_scores_caches_and_never_writes_the_key(tmp_path, judge_server):
    run = make_answered_run(tmp_path / "run", n_images=2, drop={"bench_typo": [0]})
    rows = _rows(_openai(run, judge_server))
    n_prompts = 6 + 6 + 5
    assert calls(judge_server) == n_prompts
    assert {r[1] for r in judge_server.requests} == {f"Bearer {KEY}"}
    rd = RunDir(run)
    for name in ("bench", "bench_blur", "bench_typo"):
        recs = read_jsonl(run / "scores" / "m" / "judge" / f"{name}.jsonl")
        answers = {a["question_id"]: a["text"] for a in read_jsonl(rd.responses_path("m", name))}
        assert [r["question_id"] for r in recs] == [q["question_id"] for q in rd.read_scenario(name)
                                                     if q["question_id"] in answers]
        for r in recs:
            assert r["scores"] == [8.0, float(_quality(answers[r["question_id"]]))]
            assert r["judge"] == "openai:judge-1" and r["prompt_version"] == OWN_VERSION and r["failed"] is False
            assert r["raw"][0].startswith(f"8 {_quality(answers[r['question_id']])}\n")
        want = 100 * np.mean([_quality(answers[r["question_id"]]) for r in recs]) / 8
        assert float(rows[name]["rp_score"]) == pytest.approx(want)
        assert rows[name]["judge_n"] == str(len(recs)) and rows[name]["judge_failed"] == "0"
        assert float(rows[name]["win_rate"]) == pytest.approx(np.mean([(_quality(answers[r["question_id"]]) > 8)
                                                                      + 0.5 * (_quality(answers[r["question_id"]]) == 8)
                                                                      for r in recs]))
        for cat in ("conv", "detail", "complex"):
            assert rows[name][f"rp_{cat}"] != ""
    record = json.loads((run / "scores" / "m" / "score.json").read_text())
    assert record["judge"]["spec"] == "openai:judge-1" and record["judge"]["api_key_env"] == "TEST_JUDGE_KEY"
    # The key is nowhere in RUN.
    assert KEY.encode() not in _all_bytes(run)
    # A rerun: zero calls, the same bytes.
    before = (run / "scores" / "m" / "metrics.csv").read_bytes()
    judge_records = (run / "scores" / "m" / "judge" / "bench.jsonl").read_bytes()
    _openai(run, judge_server)
    assert calls(judge_server) == n_prompts
    assert (run / "scores" / "m" / "metrics.csv").read_bytes() == before
    assert (run / "scores" / "m" / "judge" / "bench.jsonl").read_bytes() == judge_records


def _set_answer(run, scenario, qid, text):
    path = RunDir(run).responses_path("m", scenario)
    recs = read_jsonl(path)
    for r in recs:
        if r["question_id"] == qid:
            r["text"] = text
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_failed_replies_are_retried_then_excluded_and_counted(tmp_path, judge_server):
    run = make_answered_run(tmp_path / "run", n_images=2)
    _set_answer(run, "bench", 1, "GARBLE forever")
    _set_answer(run, "bench", 2, "FLAKY but fine in the end")
    rows = _rows(_openai(run, judge_server))
    assert calls(judge_server) == 18 + 2 + 1  # GARBLE asked 3 times, FLAKY twice
    recs = {r["question_id"]: r for r in read_jsonl(run / "scores" / "m" / "judge" / "bench.jsonl")}
    assert recs[1]["failed"] is True and recs[1]["scores"] is None
    assert recs[1]["raw"] == ["I cannot decide.\nBoth are fine."]
    assert recs[2]["failed"] is False and recs[2]["scores"] == [8.0, float(_quality("FLAKY but fine in the end"))]
    assert rows["bench"]["judge_n"] == "5" and rows["bench"]["judge_failed"] == "1"
    kept = [r for r in recs.values() if not r["failed"]]
    assert float(rows["bench"]["rp_score"]) == pytest.approx(100 * np.mean([r["scores"][1] for r in kept]) / 8)
    # A rerun asks again only for the failed one (failures are not cached).
    _openai(run, judge_server)
    assert calls(judge_server) == 21 + 3


def test_debias_judges_both_orders_and_averages(tmp_path, judge_server):
    judge_server.bias = 1  # the judge favours Assistant 1
    run = make_answered_run(tmp_path / "run", n_images=1)
    plain = _rows(_openai(run, judge_server))
    assert calls(judge_server) == 9
    answers = {a["question_id"]: a["text"] for a in read_jsonl(RunDir(run).responses_path("m", "bench"))}
    for r in read_jsonl(run / "scores" / "m" / "judge" / "bench.jsonl"):
        assert r["scores"] == [9.0, float(_quality(answers[r["question_id"]]))]
    debiased = _rows(_openai(run, judge_server, debias=True))
    rd = RunDir(run)
    swapped_new = 0  # an answer equal to the reference gives the same prompt in both orders
    for name in ("bench", "bench_blur", "bench_typo"):
        got = {a["question_id"]: a["text"] for a in read_jsonl(rd.responses_path("m", name))}
        swapped_new += sum(got[q["question_id"]] != q["reference"] for q in rd.read_scenario(name))
    assert 0 < swapped_new < 9
    assert calls(judge_server) == 9 + swapped_new  # the reference-first replies came from the cache
    for r in read_jsonl(run / "scores" / "m" / "judge" / "bench.jsonl"):
        q = float(_quality(answers[r["question_id"]]))
        assert r["orders"] == ["reference-first", "model-first"] and len(r["raw"]) == 2
        assert r["scores_by_order"] == [[9.0, q], [8.0, q + 1]]
        assert r["scores"] == [8.5, q + 0.5]
    assert float(debiased["bench"]["rp_score"]) > float(plain["bench"]["rp_score"])
    record = json.loads((run / "scores" / "m" / "score.json").read_text())
    assert record["judge"]["debias"] is True


def test_endpoint_down_keeps_what_was_written(tmp_path, judge_server):
    run = make_answered_run(tmp_path / "run", n_images=2)
    _openai(run, judge_server)
    out = run / "scores" / "m"
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # New answers; the key is revoked half-way: a clear error, outputs untouched, the
    # replies that arrived are cached.
    for qid in range(6):
        _set_answer(run, "bench_blur", qid, f"a new answer number {qid} with several words")
    judge_server.script = [None] * 3 + [("status", 401, {})] * 100  # the key is revoked after 3
    with pytest.raises(UserError, match="HTTP 401"):
        _openai(run, judge_server)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    judge_server.script = []
    got = calls(judge_server)
    _openai(run, judge_server)
    assert calls(judge_server) - got == 3  # only what had not arrived before
    # The server gone altogether: one clear line.
    judge_server.close()
    _set_answer(run, "bench_blur", 0, "yet another answer")
    with pytest.raises(UserError, match="cannot connect"):
        _openai(run, judge_server)


def test_judge_spec_errors(tmp_path):
    run = make_answered_run(tmp_path / "run", n_images=1)
    with pytest.raises(UserError, match="unknown judge 'gpt'"):
        run_score(run, "m", judge="gpt")
    with pytest.raises(UserError, match="needs a model name"):
        run_score(run, "m", judge="openai")
    with pytest.raises(UserError, match="needs a model"):
        run_score(run, "m", judge="hf:")
    with pytest.raises(UserError, match="does not exist"):
        run_score(run, "m", judge=f"hf:{tmp_path / 'no-model'}/")
    assert {"openai", "hf", "offline"} <= set(JUDGES)


# --------------------------------------------------------------------------- offline and hf

def test_offline_judge_is_position_blind_and_runs_end_to_end(tmp_path):
    judge = make_judge("offline")
    p = build_prompt(Rules(), "ctx", "Q?", "the red cat sat", "the red dog sat", "conv")
    q = build_prompt(Rules(), "ctx", "Q?", "the red dog sat", "the red cat sat", "conv", reference_slot=2)
    assert parse_scores(judge.reply(p)) == (10.0, 7.8)  # F1 = 0.75 -> 1 + 9 * 0.75 = 7.75 -> 7.8
    assert parse_scores(judge.reply(q)) == (7.8, 10.0)
    run = make_answered_run(tmp_path / "run", n_images=2)
    rows = _rows(run_score(run, "m", judge="offline", bootstrap=50))
    debiased = _rows(run_score(run, "m", judge="offline", debias=True, bootstrap=50))
    for name in rows:
        assert rows[name]["rp_score"] == debiased[name]["rp_score"]
        assert float(rows[name]["rp_lo"]) <= float(rows[name]["rp_score"]) <= float(rows[name]["rp_hi"])
    # Less faithful answers in the more shifted scenarios (make_answered_run): a lower score.
    assert float(rows["bench"]["rp_score"]) > float(rows["bench_typo"]["rp_score"])


def test_a_damaged_judge_cache_entry_is_judged_again_not_an_error(tmp_path):
    """Like the response cache: a damaged entry is a miss, judged again and rewritten;
    the scores are those of the intact cache."""
    run = make_answered_run(tmp_path / "run", n_images=2)
    out, cache = run / "scores" / "m", run / "cache" / "judge"
    run_score(run, "m", judge="offline")
    intact = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.suffix in (".csv", ".jsonl")}
    entries = {p: p.read_bytes() for p in sorted(cache.rglob("*.json"))}
    assert len(entries) == 18 and len(intact) == 1 + 3
    damaged = list(entries)[::3]
    damage = [entries[damaged[0]][: len(entries[damaged[0]]) // 2],  # truncated JSON (a torn copy)
              b"",
              b'{"reply": "8 \xff\xfe 7"}',  # not UTF-8
              b'["8 7"]',  # JSON, not an object
              json.dumps({"reply": "no scores in here", "judge": "offline:token-f1-v1"}).encode(),
              json.dumps({"judge": "offline:token-f1-v1"}).encode()]
    for path, data in zip(damaged, damage, strict=True):
        path.write_bytes(data)

    console, buf = quiet_console()
    run_score(run, "m", judge="offline", console=console)
    said = buf.getvalue()
    assert "judging 6 prompts (12 from the cache)" in said and "judge offline: 6 new judgments; 0 items" in said
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.suffix in (".csv", ".jsonl")} == intact
    assert {p: p.read_bytes() for p in sorted(cache.rglob("*.json"))} == entries  # rewritten as they were


def test_hf_judge_garbage_replies_are_failed_items(tmp_path):
    path = build_tiny_llama(tmp_path / "llama")
    judge = make_judge(f"hf:{path}", max_tokens=12)
    prompts = [build_prompt(Rules(), "ctx", "Q?", "ref answer", f"answer {i}", "conv") for i in range(3)]
    replies = dict(judge.judge(prompts))
    assert sorted(replies) == [0, 1, 2] and all(isinstance(r, str) for r in replies.values())
    # Batched with left padding = one at a time.
    assert [dict(judge.judge([p]))[0] for p in prompts] == [replies[i] for i in range(3)]
    assert all(parse_scores(r) is None for r in replies.values())

    run = make_answered_run(tmp_path / "run", n_images=1, scenarios=("bench", "bench_blur"))
    rows = _rows(run_score(run, "m", judge=f"hf:{path}"))
    assert rows["bench"]["judge_n"] == "0" and rows["bench"]["judge_failed"] == "3"
    assert rows["bench"]["rp_score"] == "" and rows["bench"]["emi"] != ""
    recs = read_jsonl(run / "scores" / "m" / "judge" / "bench.jsonl")
    assert all(r["failed"] and r["scores"] is None and isinstance(r["raw"][0], str) for r in recs)
    assert not (run / "cache" / "judge").exists() or not any((run / "cache" / "judge").rglob("*.json"))
